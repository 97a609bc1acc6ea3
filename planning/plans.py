"""The plan: every decision preprocessing and training take from a dataset, as editable JSON.

``$LW_preprocessed/<Name>/plans.json`` holds one :class:`Plans`. Ambiguous choices of the paper are
entries here with the team's defaults (see ``../shared/method.md``), never buried constants. The
*data identifier* is derived from everything that changes the cached arrays (slice size,
normalisation, teacher: architecture, weights, input scaling and feature tap; feature dtype,
augmentation and view count), so edited plans write a new cache instead of mixing with the old one.

Like nnU-Net's ``2d`` and ``3d_fullres``, the plans hold two configurations: the 2D distillation one
(the top-level entries) and ``3d`` (the multi-organ 3D U-Net: volume size, its normalisation, the
organ classes and the label values that make them), with its own identifier ``lw3d_...``. Plans
written before the ``3d`` entry existed get it the next time they are planned; their 2D identifier
does not change.

``PLANS_VERSION`` is the version of this file format, not liverwild's (``liverwild.__version__``): plans
version 2 fixed the teacher's input scaling, which version 1 got wrong (ImageNet mean/std applied on top
of the per-scan z-score). Version-1 plans, caches and models are refused, never reused.

Older plans carry ``evaluation_resolution``, an entry that nothing read: the paper's
evaluation grid belongs to the experiment, not the dataset (128² multi-DG, 192² single-DG for the same
datasets), and is chosen where the evaluation runs (``lw_evaluate --protocol``, ``lw_experiment
--evaluation paper``). Such plans still load; the entry is dropped, with a warning when it was edited.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liverwild.atomic import write_json_atomic
from liverwild.errors import ConfigurationError, LiverwildError
from liverwild.log import get_logger

logger = get_logger(__name__)

PLANS_VERSION = 2  # the version of the plans format (plans.json, caches, models), not liverwild's
RETIRED_ENTRIES = {"evaluation_resolution": [128, 128]}  # read by nothing; dropped on loading (their old default)
FEATURE_DTYPES = ("float16", "float32")  # how the 2D cache stores teacher features (``feature_dtype``)
OUTDATED_PLANS = (
    "made with plans version {version}, whose teacher input scaling was wrong (ImageNet mean/std "
    "applied on top of the per-scan z-score); its cache and the models trained on it are not reused. "
    "Re-plan and re-cache: lw_plan_and_preprocess -d {dataset} --replan"
)


def default_augmentation(views_per_slice: int = 2, seed: int = 0) -> dict:
    """Table A1 of the paper's supplement; ``views_per_slice`` augmented copies of every slice."""
    return {
        "views_per_slice": views_per_slice,
        "seed": seed,
        "elastic": {"p": 0.9, "sigma_px": 3.5, "control_points": 8},
        "noise": {"p": 0.6, "sigma": 0.15},
        "blur": {"p": 0.6, "sigma_px": 0.7},
        # Table A1 is garbled here ('log [0.1, 0.9]', 'σ 0.15'); read as log-gamma ~ ±2σ → γ ∈ [0.74, 1.35]
        "gamma": {"p": 0.6, "range": [0.74, 1.35], "retain_stats": True},
        # 'dropout augmentation p 0.2': pixel dropout; the dropped fraction is not given
        "dropout": {"p": 0.2, "fraction": 0.05},
    }


NORMALIZATION_PRESETS = ("default", "single-dg", "single-dg-0-125")
CT_WINDOWS = {"default": [0.0, 500.0], "single-dg": [-125.0, 275.0], "single-dg-0-125": [0.0, 125.0]}
"""CT window (HU) per preset. ``single-dg``: the abdominal window [−125, 275] HU of the single-source CT→MR
works the supplement follows (its "thresholding at 125 HU" read as the ±125 HU lower bound; see
documentation/preprocessing.md); ``single-dg-0-125``: the literal [0, 125] HU reading, kept reachable."""


def default_normalization(modality: str, fingerprint_aggregate: dict | None = None, preset: str = "default") -> dict:
    """CT: window :data:`CT_WINDOWS` of ``preset`` ([0, 500] HU by default). MR (every preset): intensities
    divided by the scan's body median, then window [0, r] with r the dataset's median p99.5/p50 ratio (the
    paper's '[0, 1.5]' has no stated unit). Both then clip at the scan's 2nd/98th percentiles, rescale to
    [0, 1] and z-score per scan."""
    if preset not in NORMALIZATION_PRESETS:
        raise LiverwildError(f"unknown normalisation preset {preset!r}; use one of {', '.join(NORMALIZATION_PRESETS)}")
    common = {"clip_percentiles": [2.0, 98.0], "rescale": True, "zscore": True}
    common.update({"preset": preset} if preset != "default" else {})
    if modality == "CT":
        return {"window": list(CT_WINDOWS[preset]), "relative_to_body_median": False, **common}
    ratio = 1.5
    if fingerprint_aggregate and fingerprint_aggregate.get("n_cases"):
        ratio = round(float(fingerprint_aggregate["median_ratio_p99.5_to_p50_body"]), 3)
    return {"window": [0.0, ratio], "relative_to_body_median": True, **common}


VOLUME_SIZE = [64, 128, 128]  # (z, y, x): the source paper's 128 × 128 × 64 volumes
CT_WINDOW_3D = [-200.0, 250.0]  # the source paper's soft-tissue window (HU)


def default_config_3d(
    modality: str, fingerprint_aggregate: dict | None = None, organ_labels: dict | None = None
) -> dict:
    """The ``3d`` configuration (voxel-level Siamese multi-organ 3D U-Net, Lee et al.): whole canonical
    volumes resized to ``volume_size`` (z, y, x); CT windowed to [−200, 250] HU, MR divided by the
    scan's body median and windowed to [0, r] (r: the fingerprint's median p99.5/p50 ratio, as in the
    2D plan); then rescaled and z-scored per volume, without percentile clipping (the paper clips only
    at the window). ``classes``: the organs of :data:`liverwild.datasets.organs.ORGANS` the dataset
    labels, from ``organ_labels`` (``dataset.json``), each with the label values that make it
    (``label_values``) in the organ maps (``labelsTr_organs``) — or liver alone from ``labelsTr``."""
    from liverwild.datasets.organs import class_values

    if modality == "CT":
        normalization = {"window": list(CT_WINDOW_3D), "relative_to_body_median": False}
    else:
        window = default_normalization(modality, fingerprint_aggregate)["window"]
        normalization = {"window": window, "relative_to_body_median": True}
    normalization.update({"clip_percentiles": None, "rescale": True, "zscore": True})
    values = class_values(organ_labels)
    return {
        "volume_size": list(VOLUME_SIZE),
        "normalization": normalization,
        "classes": list(values),
        "label_values": values,
        "label_maps": "organs" if organ_labels else "liver",
    }


def scan_normalization(image, modality: str, configuration: str = "2d") -> dict:
    """The default normalisation of ``configuration`` (``"2d"``: :func:`default_normalization`; ``"3d"``:
    :func:`default_config_3d`'s) for one scan of a ``modality`` that no plans had — the rule both
    predictors use when a model's sources lack the scan's modality. MR: the window [0, r] with r this
    scan's own p99.5/p50 body-intensity ratio (the scan as a one-case fingerprint); CT: the fixed window."""
    aggregate = None
    if modality == "MR":
        import numpy as np

        from .fingerprint import body_mask

        p50, p995 = np.percentile(image[body_mask(image, "MR")], [50, 99.5])
        aggregate = {"n_cases": 1, "median_ratio_p99.5_to_p50_body": float(p995 / max(p50, 1e-6))}
    if configuration == "3d":
        return default_config_3d(modality, aggregate)["normalization"]
    return default_normalization(modality, aggregate)


class OutdatedPlansError(LiverwildError):
    """Plans, a cache or a model made before the current plans version."""


@dataclass
class Plans:
    dataset: str
    modality: str
    normalization: dict
    slice_size: list = field(default_factory=lambda: [224, 224])
    backbone: dict = field(default_factory=dict)  # liverwild.backbones.teacher_config(...)
    feature_dtype: str = "float16"
    augmentation: dict = field(default_factory=default_augmentation)
    config_3d: dict = field(default_factory=dict)  # the ``3d`` configuration (JSON key "3d"); {}: not planned
    plans_version: int = PLANS_VERSION
    notes: str = (
        "Edit and re-run lw_plan_and_preprocess --preprocess-only. Changing anything that "
        "affects the cache gives a new data_identifier."
    )

    def __post_init__(self) -> None:
        if self.feature_dtype not in FEATURE_DTYPES:
            raise ConfigurationError(
                f"feature_dtype {self.feature_dtype!r}: the cache stores teacher features as "
                f"{' or '.join(FEATURE_DTYPES)}; set one of them in plans.json"
            )

    @property
    def views(self) -> int:
        return int(self.augmentation.get("views_per_slice", 0))

    def data_identifier(self) -> str:
        """``lwdata_<backbone>_<weights>_<K>v_<hash>``; the hash covers everything cached."""
        relevant = {
            "slice_size": self.slice_size,
            "normalization": self.normalization,
            "backbone": {k: self.backbone.get(k) for k in ("name", "weights_tag", "input", "tap")},
            **({"context": self.backbone["context"]} if self.backbone.get("context") else {}),
            "feature_dtype": self.feature_dtype,
            "augmentation": self.augmentation,
            "version": self.plans_version,
        }
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:8]
        name = (self.backbone.get("teacher") or self.backbone.get("name") or "none").replace("/", "-")
        return f"lwdata_{name}_{self.backbone.get('weights_tag') or 'noweights'}_{self.views}v_{digest}"

    def data_identifier_3d(self) -> str:
        """``lw3d_<z>x<y>x<x>_<classes>c_<hash>``: the ``3d`` cache's folder; the hash covers its entry."""
        if not self.config_3d:
            raise LiverwildError(
                f"the plans of {self.dataset} have no 3d configuration: run lw_plan_and_preprocess -d {self.dataset} "
                "-c 3d (without --preprocess-only) to plan it"
            )
        relevant = {k: self.config_3d.get(k) for k in ("volume_size", "normalization", "classes", "label_values")}
        relevant["label_maps"] = self.config_3d.get("label_maps")
        relevant["version"] = self.plans_version
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:8]
        size = "x".join(str(int(v)) for v in self.config_3d["volume_size"])
        return f"lw3d_{size}_{len(self.config_3d['classes'])}c_{digest}"

    def to_json(self) -> dict:
        d = asdict(self)
        d["data_identifier"] = self.data_identifier()
        config_3d = d.pop("config_3d")
        if config_3d:
            d["3d"] = {**config_3d, "data_identifier": self.data_identifier_3d()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Plans:
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in d.items() if k in known}
        if "3d" in d:
            fields["config_3d"] = {k: v for k, v in d["3d"].items() if k != "data_identifier"}
        return cls(**fields)


def save_plans(plans: Plans, path) -> Path:
    return write_json_atomic(path, plans.to_json())


def load_plans(path) -> Plans:
    path = Path(path)
    if not path.is_file():
        raise LiverwildError(f"{path}: missing; run lw_plan_and_preprocess -d {path.parent.name}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        check_plans_version(data, path)
        for key, default in RETIRED_ENTRIES.items():
            if key in data and data[key] != default:
                logger.warning(
                    f"{path}: {key} {data[key]} is not read (the paper's evaluation grid is chosen when "
                    "evaluating: lw_evaluate --protocol multi-dg|single-dg, lw_experiment --evaluation paper)"
                )
        normalization = data.get("normalization") or {}
        if normalization.get("preset") == "single-dg" and normalization.get("window") == CT_WINDOWS["single-dg-0-125"]:
            logger.warning(
                f"{path}: CT window [0, 125] HU under preset single-dg is the earlier reading of the supplement; "
                "single-dg now means [-125, 275] HU. Kept as written; re-run lw_plan_and_preprocess with "
                "--normalization single-dg for the new window (a new data identifier), or single-dg-0-125 to keep it"
            )
        return Plans.from_json(data)
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise LiverwildError(f"{path}: not a valid plans file ({exc})") from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


def check_plans_version(data: dict, where) -> None:
    """Refuse plans (and caches or models that embed them) written before the input-scaling fix."""
    version = int(data.get("plans_version", 1))
    if version < PLANS_VERSION:
        raise OutdatedPlansError(
            f"{where}: " + OUTDATED_PLANS.format(version=version, dataset=data.get("dataset", "NAME"))
        )
    if version > PLANS_VERSION:
        raise LiverwildError(
            f"{where}: plans version {version} is newer than this liverwild understands "
            f"({PLANS_VERSION}); upgrade liverwild"
        )
