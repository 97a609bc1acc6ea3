"""Named experiment protocols: which (fold, trainer, seed) runs make up a table of the paper.

- ``multi-dg`` — every leave-one-dataset-out fold of ``splits.json`` (Table 1): one column per target.
- ``single-dg`` — one CT source → each MR dataset (Table 2, CT→MR): folds ``single_<CT>_to_<MR>``
  are added to ``splits.json``.
- ``ablations`` — the Table 3/4 trainer variants on one fold (``--fold``, default the first LOO fold).
- ``seeds`` — the reference trainer on one fold with several seeds: the run-to-run spread every claim
  is compared with (with several ``--trainers``, e.g. cached vs online augmentation, rows are trainers
  and the paired tests pair the same seed and scan).
- ``organs-3d`` — the ``3d`` configuration's multi-organ trainers (the source paper's Table I/II rows:
  voxel-level Siamese, 3D U-Net, supervised contrastive — the representation rows twice, with the
  tuned λ and with the paper's λ read literally) on one fold or more (``--fold``, default the first LOO
  fold), evaluated per organ (Dice, HD95, ASSD) on the target's organ maps.

A 3d trainer may also be a row of ``multi-dg``, ``single-dg`` or ``seeds``: it is then evaluated on the
liver alone (its organ map's liver label), beside the 2D models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REFERENCE_TRAINER = "ContrastiveDistillationTrainer"
ABLATION_TRAINERS = (
    REFERENCE_TRAINER,
    "NoDistillationTrainer",
    "NoFocalTrainer",
    "NoTverskyTrainer",
    "NoLogIoUTrainer",
    "NoEntropyTrainer",
    "Positives2ApartTrainer",
    "TwoNegativesTrainer",
    "Scans5PerSourceTrainer",
    "Scans10PerSourceTrainer",
    "Scans15PerSourceTrainer",
)


@dataclass(frozen=True)
class Run:
    fold: str
    trainer: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.fold}/{self.trainer}/seed{self.seed}"


ORGAN_TRAINERS = (
    "Siamese3DTrainer",
    "UNet3DTrainer",
    "SupervisedContrastive3DTrainer",
    "Siamese3DPaperWeightTrainer",  # the paper's λ read literally: 10
    "SupervisedContrastive3DPaperWeightTrainer",  # and 100
)
PROTOCOLS = ("multi-dg", "single-dg", "ablations", "seeds", "organs-3d")


@dataclass
class Plan:
    """The runs of one experiment, and the trainer the others are tested against."""

    name: str
    runs: list = field(default_factory=list)
    reference: str = REFERENCE_TRAINER
    rows: str = "trainer"  # what the report's rows are: 'trainer' or 'seed'
    evaluation: str = "liver"  # what is measured: 'liver' (binary) or 'organs' (per organ, 3d trainers)


def single_dg_folds(splits: dict, modalities: dict, val_per_source: int = 5, seed: int = 0) -> dict:
    """``single_<CT>_to_<MR>`` folds for every CT dataset with cases and every MR dataset."""
    from preprocessing.splits import held_out

    datasets: dict[str, set] = {}
    for fold in splits.get("folds", {}).values():
        for name, cases in {**fold.get("train", {}), **fold.get("test", {})}.items():
            datasets.setdefault(name, set()).update(cases)
        for name, cases in fold.get("val", {}).items():
            datasets.setdefault(name, set()).update(cases)
    cts = sorted(n for n in datasets if modalities.get(n) == "CT")
    mrs = sorted(n for n in datasets if modalities.get(n) == "MR")
    folds = {}
    for ct in cts:
        cases = sorted(datasets[ct])
        val = held_out(cases, val_per_source, seed, ct)
        for mr in mrs:
            folds[f"single_{ct}_to_{mr}"] = {
                "sources": [ct],
                "target": mr,
                "train": {ct: [c for c in cases if c not in val]},
                "val": {ct: val},
                "test": {mr: sorted(datasets[mr])},
                "excluded": {},
            }
    return folds


def make_plan(name: str, splits: dict, trainers=None, seeds=None, fold=None) -> Plan:
    """The runs of protocol ``name`` over the folds in ``splits`` (single-dg folds must be added first).
    ``fold``: one fold name or a list of them (multi-dg and single-dg: a subset of their folds)."""
    from ..errors import LiverwildError
    from ..training import get_trainer

    folds = splits.get("folds", {})
    loo = sorted(f for f, v in folds.items() if v.get("auto") and f.startswith("loo_"))
    wanted = [fold] if isinstance(fold, str) else list(fold or [])
    seeds = list(seeds) if seeds else None
    if name in ("ablations", "seeds") and len(wanted) > 1:
        raise LiverwildError(f"protocol {name} runs on one fold, not {len(wanted)}")
    reference = REFERENCE_TRAINER
    if name == "multi-dg":
        chosen, trainers, seeds = wanted or loo, list(trainers or [REFERENCE_TRAINER]), seeds or [0]
    elif name == "single-dg":
        singles = sorted(f for f in folds if f.startswith("single_"))
        chosen, trainers, seeds = wanted or singles, list(trainers or [REFERENCE_TRAINER]), seeds or [0]
    elif name == "ablations":
        chosen, trainers, seeds = wanted or loo[:1], list(trainers or ABLATION_TRAINERS), seeds or [0]
    elif name == "seeds":
        chosen, trainers, seeds = wanted or loo[:1], list(trainers or [REFERENCE_TRAINER]), seeds or [0, 1, 2]
    elif name == "organs-3d":
        chosen, trainers, seeds = wanted or loo[:1], list(trainers or ORGAN_TRAINERS), seeds or [0]
        reference = ORGAN_TRAINERS[0]
        flat = [t for t in trainers if get_trainer(t).configuration != "3d"]
        if flat:
            raise LiverwildError(
                f"protocol organs-3d measures organs, which {', '.join(flat)} (2D liver trainers) do not segment; "
                f"use the 3d trainers ({', '.join(ORGAN_TRAINERS)}), or compare on the liver with multi-dg"
            )
    else:
        raise LiverwildError(f"unknown protocol {name!r}; use {', '.join(PROTOCOLS)}")
    missing = [f for f in chosen if f not in folds]
    if missing or not chosen:
        raise LiverwildError(
            f"protocol {name}: no usable fold ({', '.join(missing) or 'none found'} in splits.json); "
            "run lw_plan_and_preprocess on the datasets first"
        )
    for trainer in trainers:  # unknown names and impossible pairings fail before training
        needs = get_trainer(trainer).min_sources
        short = [f for f in chosen if len(folds[f].get("sources", [])) < needs]
        if short:
            raise LiverwildError(
                f"{trainer} needs at least {needs} source datasets per fold, and {', '.join(short)} "
                f"{'has' if len(short) == 1 else 'have'} fewer (single-source folds suit "
                "SupervisedUNetTrainer, DualNormTrainer and DomainRandomizationTrainer)"
            )
    runs = [Run(f, t, s) for f in chosen for t in trainers for s in seeds]
    return Plan(
        name,
        runs,
        trainers[0] if reference not in trainers else reference,
        "seed" if name == "seeds" and len(trainers) == 1 else "trainer",
        "organs" if name == "organs-3d" else "liver",
    )
