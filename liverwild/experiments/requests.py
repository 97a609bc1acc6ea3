"""What one run of a protocol is made of under a request, decided before anything trains: the settings
each trainer reads (``trainer_settings``), its resolved configuration (``run_config``), the reference
masks it is scored on, and ``request_run``'s :class:`RunRequest` with the configuration record that
``run.json`` keeps (:mod:`.records`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, LiverwildError
from ..log import get_logger
from .protocols import Run
from .records import canonical, configuration_hash

if TYPE_CHECKING:
    from ..training.config import TrainerConfig

logger = get_logger(__name__)


def trainer_settings(trainers, settings: dict | None = None) -> dict[str, dict]:
    """``{trainer: its share of the experiment's settings}``: the fields it reads (of ``loss_weights``, the
    terms it reads), so that a setting of one family (``unet_channels`` for the U-Net baselines) leaves
    the other rows' configurations as they are. A setting that none of the trainers reads is refused,
    and so is one a trainer's ``overrides`` would replace (:func:`~liverwild.training.registry.check_changes`)."""
    from ..training.config import setting_names
    from ..training.registry import check_changes, get_trainer

    settings = dict(settings or {})
    shares: dict[str, dict] = {}
    for trainer in dict.fromkeys(trainers):
        cls = get_trainer(trainer)
        read = cls.config_fields()
        share = {}
        for key, value in settings.items():
            if key == "loss_weights":
                terms = {t: w for t, w in value.items() if f"loss_weights.{t}" in read}
                if terms:
                    share[key] = terms
            elif key in read:
                share[key] = value
        check_changes(cls, share)
        shares[trainer] = share
    for name in setting_names(settings):
        readers = [t for t, share in shares.items() if name in setting_names(share)]
        if not readers:
            raise ConfigurationError(
                f"none of the experiment's trainers ({', '.join(shares)}) reads {name}: setting it would change "
                "nothing; drop it or add a trainer that reads it (--trainers)"
            )
        if len(readers) < len(shares):
            others = ", ".join(t for t in shares if t not in readers)
            logger.info(f"{name}: set for {', '.join(readers)} only (not read by {others})")
    return shares


def run_config(trainer: str, config=None, settings: dict | None = None, quick: bool = False):
    """The configuration of one run: ``config`` (or the trainer's own default), then ``settings``, then
    the trainer's ``quick`` values. A setting that ``quick`` would replace is refused, not dropped, and so
    is one the trainer does not read or its overrides replace (:func:`~liverwild.training.registry.check_changes`)."""
    from ..training.registry import check_changes, get_trainer

    cls = get_trainer(trainer)
    check_changes(cls, settings or {})
    clash = sorted(set(settings or {}) & set(cls.quick)) if quick else []
    if clash:
        options = ", ".join("--" + k.replace("_", "-") for k in clash)
        raise ConfigurationError(f"--quick sets {options} itself (a smoke test): drop {options} or --quick")
    chosen = (config or cls.default_config()).updated(**(settings or {}))
    return chosen.updated(**cls.quick) if quick else chosen


EVALUATIONS = ("native", "paper", "multi-dg", "single-dg")  # lw_experiment --evaluation


def evaluation_choice(evaluation: str, experiment: str) -> tuple[str, bool]:
    """``(grid protocol, post-processing)`` for ``lw_experiment --evaluation``. ``paper`` is the paper's
    protocol in one flag: its in-plane grid for the experiment (192² for ``single-dg``, else 128²) and no
    post-processing, which the paper does not describe. ``native``, ``multi-dg`` and ``single-dg`` name
    the grid alone and keep ``lw_predict``'s default post-processing."""
    if evaluation not in EVALUATIONS:
        raise ConfigurationError(f"unknown evaluation {evaluation!r}; use one of {', '.join(EVALUATIONS)}")
    if evaluation == "paper":
        return ("single-dg" if experiment == "single-dg" else "multi-dg"), False
    return evaluation, True


def reference_folder(raw: Path, target: str, evaluation: str) -> Path:
    """Where the target's references are: its organ maps for an ``organs`` evaluation (when it has
    them; else its liver labels), ``labelsTr`` for the liver."""
    from ..datasets import load_dataset_json
    from ..datasets.format import ORGAN_FOLDER

    if evaluation == "organs":
        extra = load_dataset_json(raw / target).extra
        if extra.get("organ_labels"):
            return raw / target / extra.get("organ_label_folder", ORGAN_FOLDER)
    return raw / target / "labelsTr"


@dataclass
class RunRequest:
    """One run as the experiment asks for it: its configuration record (:mod:`.records`) and hash, the
    trainer configuration, where its model is trained, and what its target is measured against."""

    run: Run
    config: TrainerConfig  # what the run trains with (its seed set)
    record: dict
    digest: str
    model: Path  # the model folder lw_train writes
    images: Path
    references: Path
    measure: str
    evaluation: str
    liver_only: bool
    postprocess: bool

    @property
    def quick(self) -> bool:
        return bool(self.record["quick"])


def request_run(
    run: Run,
    splits: dict,
    raw: Path,
    preprocessed: Path,
    output: Path,
    config,
    evaluation: str,
    measure: str = "liver",
    quick: bool = False,
    postprocess: bool = True,
) -> RunRequest:
    """What ``run`` is made of under this request: everything that decides its numbers (the record
    that ``run.json`` keeps, see :mod:`.records`), without training anything. ``evaluation``: the grid
    protocol; ``postprocess``: whether predictions are post-processed (liver measure only: organ maps
    are measured as predicted, as the source paper reports)."""
    from .. import __version__
    from ..evaluation.evaluate import PROTOCOLS
    from ..inference.postprocessing import steps_from
    from ..io.image import image_suffix
    from ..training import get_trainer
    from ..training.config import EXECUTION_FIELDS

    fold = splits["folds"][run.fold]
    seeded = config.updated(seed=run.seed)
    cls = get_trainer(run.trainer)
    # the trainer as train_fold builds it (overrides applied, plans read): its configuration, plans and model folder
    trainer = cls(run.fold, fold, preprocessed, output / "models" / f"seed{run.seed}", seeded, "cpu")
    target = fold["target"]
    images = raw / target / "imagesTr"
    if not images.is_dir():
        raise LiverwildError(f"{images}: the target's raw images are needed for evaluation (set --raw or LW_raw)")
    references = reference_folder(raw, target, measure)
    liver_only = cls.configuration == "3d" and measure == "liver"
    postprocess = postprocess and measure == "liver"  # organs: raw argmax, as the source paper reports
    record = canonical(
        {
            "liverwild_version": __version__,
            "trainer": run.trainer,
            "fold": run.fold,
            "fold_definition": {k: fold.get(k) for k in ("sources", "target", "train", "val")},
            "seed": run.seed,
            "config": {k: v for k, v in trainer.config.to_json().items() if k not in EXECUTION_FIELDS},
            "quick": bool(quick),
            "plans": trainer.plans_id,
            "data": {source: trainer.data_identifier(source) for source in fold["sources"]},
            "evaluation_protocol": evaluation,
            "evaluation_inplane_size": PROTOCOLS.get(evaluation),
            "measure": measure,
            "liver_only": liver_only,
            "postprocessing": list(steps_from(postprocess)),
            "references": references.name,
            "target_scans": sorted(p.name for p in images.iterdir() if image_suffix(p) and not p.name.startswith(".")),
        }
    )
    return RunRequest(
        run,
        seeded,
        record,
        configuration_hash(record),
        trainer.output,
        images,
        references,
        measure,
        evaluation,
        liver_only,
        postprocess,
    )
