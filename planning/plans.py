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
from dataclasses import dataclass, field, fields
from pathlib import Path

from liverwild.atomic import write_json_atomic
from liverwild.backbones.config import TeacherConfig
from liverwild.errors import ConfigurationError, LiverwildError
from liverwild.log import get_logger

from .sections import Augmentation, Config3D, Normalization

logger = get_logger(__name__)

PLANS_VERSION = 2  # the version of the plans format (plans.json, caches, models), not liverwild's
RETIRED_ENTRIES = {"evaluation_resolution": [128, 128]}  # read by nothing; dropped on loading (their old default)
FEATURE_DTYPES = ("float16", "float32")  # how the 2D cache stores teacher features (``feature_dtype``)
OUTDATED_PLANS = (
    "made with plans version {version}, whose teacher input scaling was wrong (ImageNet mean/std "
    "applied on top of the per-scan z-score); its cache and the models trained on it are not reused. "
    "Re-plan and re-cache: lw_plan_and_preprocess -d {dataset} --replan"
)


def default_augmentation(views_per_slice: int = 2, seed: int = 0) -> Augmentation:
    """Table A1 of the paper's supplement; ``views_per_slice`` augmented copies of every slice."""
    return Augmentation(views_per_slice=views_per_slice, seed=seed)


NORMALIZATION_PRESETS = ("default", "single-dg", "single-dg-0-125")
CT_WINDOWS = {"default": [0.0, 500.0], "single-dg": [-125.0, 275.0], "single-dg-0-125": [0.0, 125.0]}
"""CT window (HU) per preset. ``single-dg``: the abdominal window [−125, 275] HU of the single-source CT→MR
works the supplement follows (its "thresholding at 125 HU" read as the ±125 HU lower bound; see
documentation/preprocessing.md); ``single-dg-0-125``: the literal [0, 125] HU reading, kept reachable."""


def default_normalization(
    modality: str, fingerprint_aggregate: dict | None = None, preset: str = "default"
) -> Normalization:
    """CT: window :data:`CT_WINDOWS` of ``preset`` ([0, 500] HU by default). MR (every preset): intensities
    divided by the scan's body median, then window [0, r] with r the dataset's median p99.5/p50 ratio (the
    paper's '[0, 1.5]' has no stated unit). Both then clip at the scan's 2nd/98th percentiles, rescale to
    [0, 1] and z-score per scan."""
    if preset not in NORMALIZATION_PRESETS:
        raise LiverwildError(f"unknown normalisation preset {preset!r}; use one of {', '.join(NORMALIZATION_PRESETS)}")
    if modality == "CT":
        return Normalization(list(CT_WINDOWS[preset]), False, [2.0, 98.0], preset=preset)
    ratio = 1.5
    if fingerprint_aggregate and fingerprint_aggregate.get("n_cases"):
        ratio = round(float(fingerprint_aggregate["median_ratio_p99.5_to_p50_body"]), 3)
    return Normalization([0.0, ratio], True, [2.0, 98.0], preset=preset)


VOLUME_SIZE = [64, 128, 128]  # (z, y, x): the source paper's 128 × 128 × 64 volumes
CT_WINDOW_3D = [-200.0, 250.0]  # the source paper's soft-tissue window (HU)


def default_config_3d(
    modality: str, fingerprint_aggregate: dict | None = None, organ_labels: dict | None = None
) -> Config3D:
    """The ``3d`` configuration (voxel-level Siamese multi-organ 3D U-Net, Lee et al.): whole canonical
    volumes resized to ``volume_size`` (z, y, x); CT windowed to [−200, 250] HU, MR divided by the
    scan's body median and windowed to [0, r] (r: the fingerprint's median p99.5/p50 ratio, as in the
    2D plan); then rescaled and z-scored per volume, without percentile clipping (the paper clips only
    at the window). ``classes``: the organs of :data:`liverwild.datasets.organs.ORGANS` the dataset
    labels, from ``organ_labels`` (``dataset.json``), each with the label values that make it
    (``label_values``) in the organ maps (``labelsTr_organs``) — or liver alone from ``labelsTr``."""
    from liverwild.datasets.organs import class_values

    if modality == "CT":
        normalization = Normalization(list(CT_WINDOW_3D), relative_to_body_median=False, clip_percentiles=None)
    else:
        window = default_normalization(modality, fingerprint_aggregate).window
        normalization = Normalization(window, relative_to_body_median=True, clip_percentiles=None)
    values = class_values(organ_labels)
    return Config3D(list(VOLUME_SIZE), normalization, list(values), values, "organs" if organ_labels else "liver")


def scan_normalization(image, modality: str, configuration: str = "2d") -> Normalization:
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
        return default_config_3d(modality, aggregate).normalization
    return default_normalization(modality, aggregate)


class OutdatedPlansError(LiverwildError):
    """Plans, a cache or a model made before the current plans version."""


@dataclass
class Plans:
    """One dataset's plans. The sections are typed (:mod:`planning.sections`,
    :class:`liverwild.backbones.TeacherConfig`); :meth:`from_json` and :meth:`to_json` read and write
    ``plans.json``. ``backbone`` None: no teacher planned; ``config_3d`` None: the ``3d`` configuration
    is not planned (JSON key ``3d`` absent)."""

    dataset: str
    modality: str
    normalization: Normalization
    slice_size: list = field(default_factory=lambda: [224, 224])
    backbone: TeacherConfig | None = None  # liverwild.backbones.teacher_config(...)
    feature_dtype: str = "float16"
    augmentation: Augmentation = field(default_factory=default_augmentation)
    config_3d: Config3D | None = None
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

    def teacher(self) -> TeacherConfig:
        """The planned teacher; a ConfigurationError when these plans name none."""
        if self.backbone is None:
            raise ConfigurationError(f"the plans of {self.dataset} name no teacher (backbone); re-plan with --backbone")
        return self.backbone

    @property
    def views(self) -> int:
        return int(self.augmentation.views_per_slice)

    def data_identifier(self) -> str:
        """``lwdata_<backbone>_<weights>_<K>v_<hash>``; the hash covers everything cached."""
        teacher = self.backbone.to_json() if self.backbone is not None else {}
        relevant = {
            "slice_size": self.slice_size,
            "normalization": self.normalization.to_json(),
            "backbone": {k: teacher.get(k) for k in ("name", "weights_tag", "input", "tap")},
            **({"context": teacher["context"]} if teacher.get("context") else {}),
            "feature_dtype": self.feature_dtype,
            "augmentation": self.augmentation.to_json(),
            "version": self.plans_version,
        }
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:8]
        name = (teacher.get("teacher") or teacher.get("name") or "none").replace("/", "-")
        return f"lwdata_{name}_{teacher.get('weights_tag') or 'noweights'}_{self.views}v_{digest}"

    def planned_3d(self) -> Config3D:
        """The ``3d`` configuration; a LiverwildError saying how to plan it when these plans have none."""
        if self.config_3d is None:
            raise LiverwildError(
                f"the plans of {self.dataset} have no 3d configuration: run lw_plan_and_preprocess -d {self.dataset} "
                "-c 3d (without --preprocess-only) to plan it"
            )
        return self.config_3d

    def data_identifier_3d(self) -> str:
        """``lw3d_<z>x<y>x<x>_<classes>c_<hash>``: the ``3d`` cache's folder; the hash covers its entry."""
        config = self.planned_3d()
        relevant = config.to_json()
        relevant["version"] = self.plans_version
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:8]
        size = "x".join(str(int(v)) for v in config.volume_size)
        return f"lw3d_{size}_{len(config.classes)}c_{digest}"

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["normalization"] = self.normalization.to_json()
        d["backbone"] = self.backbone.to_json() if self.backbone is not None else {}
        d["augmentation"] = self.augmentation.to_json()
        d["slice_size"] = list(self.slice_size)
        d["data_identifier"] = self.data_identifier()
        config_3d = d.pop("config_3d")
        if config_3d is not None:
            d["3d"] = {**config_3d.to_json(), "data_identifier": self.data_identifier_3d()}
        return d

    @classmethod
    def from_json(cls, d: dict) -> Plans:
        """Plans from ``plans.json``'s dict (or a model's copy of it); each section is checked, and plans of
        an older plans version are refused (:func:`check_plans_version`)."""
        check_plans_version(d, "plans")
        known = {f.name for f in fields(cls)} - {"config_3d"}
        values = {k: v for k, v in d.items() if k in known}
        if "normalization" not in values:
            raise ConfigurationError("missing normalization")
        values["normalization"] = Normalization.from_json(d["normalization"])
        if "augmentation" not in d:
            raise ConfigurationError("missing augmentation")
        values["augmentation"] = Augmentation.from_json(d["augmentation"])
        values["backbone"] = TeacherConfig.from_json(d["backbone"]) if d.get("backbone") else None
        if d.get("3d"):
            values["config_3d"] = Config3D.from_json({k: v for k, v in d["3d"].items() if k != "data_identifier"})
        return cls(**values)


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
