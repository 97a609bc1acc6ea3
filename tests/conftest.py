import os
from pathlib import Path

import numpy as np
import pytest

from liverwild.io import Geometry

ROOT = Path(__file__).resolve().parents[1]
PHANTOM_DOMAINS = ["PhantomNativeCT", "PhantomPortalCT", "PhantomT2MR"]
TRAINED_FOLD = "loo_PhantomT2MR"


def small(**changes):
    """Test-sized trainer configuration (the paper's is 150 epochs at lr 1e-4)."""
    from liverwild.training import SliceTrainerConfig

    return SliceTrainerConfig().updated(**{"epochs": 8, "lr": 1e-2, "val_batch_size": 16, "seed": 0, **changes})


def preprocess_phantoms(root, domains, views: int = 1, **options) -> list:
    """``lw_plan_and_preprocess`` of the phantom datasets in ``root/raw`` into ``root/pre`` with the test
    teacher (random ViT-Tiny), ``views`` augmented views, in-process and silent; ``options``: more of
    ``plan_and_preprocess``'s (``configurations``, ``volume_size``)."""
    from preprocessing.pipeline import plan_and_preprocess

    return plan_and_preprocess(
        list(domains),
        raw=str(root / "raw"),
        preprocessed=str(root / "pre"),
        random_backbone=True,
        backbone="vit_tiny_patch16_224",
        views=views,
        workers=0,
        progress=False,
        **options,
    )


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory):
    """Three tiny phantom domains, raw (``raw/``) and preprocessed (``pre/``; random ViT-Tiny teacher, one
    augmented view): shared by the training and prediction tests, so read-only — copy before changing."""
    from liverwild.phantoms import write_phantoms

    root = tmp_path_factory.mktemp("phantom_study")
    write_phantoms(root / "raw", PHANTOM_DOMAINS, n_cases=5, scale=0.4, n_slices=12, progress=False)
    preprocess_phantoms(root, PHANTOM_DOMAINS)
    return root


@pytest.fixture(scope="session")
def trained_model(phantom_study, tmp_path_factory):
    """One training of the paper's trainer on ``loo_PhantomT2MR`` (sources NativeCT and PortalCT) with
    :func:`small`, shared by the tests of training artefacts and of prediction: ``train_fold``'s summary."""
    from liverwild.training import train_fold

    results = tmp_path_factory.mktemp("trained")
    return train_fold(
        TRAINED_FOLD,
        preprocessed=str(phantom_study / "pre"),
        results=str(results),
        device="cpu",
        config=small(),
        progress=False,
    )


ORGAN_DOMAINS = ["PhantomNativeCT", "PhantomPortalCT", "PhantomT2MR"]
VOLUME_SIZE = (16, 32, 32)  # the 3d tests' volumes (the paper's are 64 × 128 × 128)


def tiny_3d(trainer: str = "Siamese3DTrainer", **changes):
    """Test-sized configuration of a 3d trainer: its recipe with a 3D U-Net of depth 2 and 4 channels,
    two feature layers of width 16, 200 sampled voxels, 2 epochs of batch 2."""
    from liverwild.training import get_trainer

    small_net = {"unet3d_channels": 4, "unet3d_depth": 2, "feature_layers": 2, "feature_hidden": 16}
    sampling = {"voxel_samples": 200, "false_negative_samples": 50}
    return (
        get_trainer(trainer)
        .default_config()
        .updated(**{"epochs": 2, "batch_size": 2, "seed": 0, **small_net, **sampling, **changes})
    )


def preprocess_3d(root, domains) -> list:
    """:func:`preprocess_phantoms` for the 3d configuration alone (``-c 3d --volume-size 16 32 32``)."""
    return preprocess_phantoms(root, domains, configurations=("3d",), volume_size=VOLUME_SIZE)


@pytest.fixture(scope="session")
def organ_study(tmp_path_factory):
    """Three tiny phantom domains with organ maps, raw and preprocessed for the 3d configuration only
    (16 × 32 × 32 volumes): shared, read-only."""
    from liverwild.phantoms import write_phantoms

    root = tmp_path_factory.mktemp("organ_study")
    write_phantoms(root / "raw", ORGAN_DOMAINS, n_cases=4, scale=0.3, n_slices=16, progress=False)
    preprocess_3d(root, ORGAN_DOMAINS)
    return root


@pytest.fixture(scope="session")
def trained_3d(organ_study, tmp_path_factory):
    """A Siamese3DTrainer model of ``loo_PhantomT2MR`` (:func:`tiny_3d`, 3 epochs): ``train_fold``'s summary."""
    from liverwild.training import train_fold

    return train_fold(
        "loo_PhantomT2MR",
        "Siamese3DTrainer",
        preprocessed=str(organ_study / "pre"),
        results=str(tmp_path_factory.mktemp("trained_3d")),
        device="cpu",
        config=tiny_3d(epochs=3),
        progress=False,
    )


REAL_SCANS = ("lits117", "totalseg_ct", "totalseg_mr")


def locate_real_data(environ) -> tuple:
    """``(folder, None)`` when the real scans are usable, ``(None, why)`` to skip, or raises
    ``ValueError(why)`` when the tests must fail instead: the folder (env LW_REAL_DATA, default
    ../shared/data/real) exists but lacks a scan, or is absent under LW_REQUIRE_REAL_DATA=1 (which
    ``.ci/run`` sets when ``../shared/data/real`` exists)."""
    folder = Path(environ.get("LW_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
    if not folder.is_dir():
        if environ.get("LW_REQUIRE_REAL_DATA") == "1":
            raise ValueError(f"real scans required (LW_REQUIRE_REAL_DATA=1) but {folder} does not exist")
        return None, f"real scans not found in {folder} (set LW_REAL_DATA)"
    missing = [name for name in REAL_SCANS if not (folder / name / "image.nii.gz").is_file()]
    if missing:
        raise ValueError(f"{folder} exists but lacks {', '.join(missing)}/image.nii.gz")
    return folder, None


@pytest.fixture(scope="session")
def real_data_dir():
    """Folder of the real scans: skips when absent, fails when required or incomplete (:func:`locate_real_data`)."""
    try:
        folder, why = locate_real_data(os.environ)
    except ValueError as exc:
        pytest.fail(str(exc))
    if folder is None:
        pytest.skip(why)
    return folder


def asymmetric_volume(shape=(7, 9, 11), seed=0):
    """A volume whose every axis flip or permutation gives a different array."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1000, size=shape).astype(np.int16)


def geometry_for(shape, spacing=(0.7, 0.9, 2.5), origin=(-120.5, 33.0, 411.25), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    nz, ny, nx = shape
    return Geometry((nx, ny, nz), tuple(map(float, spacing)), tuple(map(float, origin)), tuple(map(float, direction)))


SIGNED_PERMUTATIONS = []
for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
    for signs in ((1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1), (-1, -1, 1), (-1, -1, -1)):
        d = np.zeros((3, 3))
        for col, row in enumerate(perm):
            d[row, col] = signs[col]
        SIGNED_PERMUTATIONS.append(tuple(d.reshape(-1)))


class _Weights(dict):
    """``loss_weights`` that records the terms read."""

    def __init__(self, values, seen):
        super().__init__(values)
        self.seen = seen

    def __getitem__(self, key):
        self.seen.add(f"loss_weights.{key}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.seen.add(f"loss_weights.{key}")
        return super().get(key, default)


def recording_config(config, seen: set):
    """``config`` as an instance that adds to ``seen`` every field read outside the configuration's own
    code (``updated``, ``to_json``, dataclass copies)."""
    import copy
    import dataclasses
    import sys
    from dataclasses import fields

    from liverwild.training import config as config_module

    family = type(config)
    names = {f.name for f in fields(family)}
    own_code = {config_module.__file__, dataclasses.__file__, copy.__file__}

    class Recording(family):
        def __getattribute__(self, name):
            value = object.__getattribute__(self, name)
            if name in names:
                if sys._getframe(1).f_code.co_filename not in own_code:
                    if name == "loss_weights":
                        return _Weights(value, seen)
                    seen.add(name)
            return value

    return Recording(**{f.name: getattr(config, f.name) for f in fields(family)})


def fields_read_in_one_step(trainer) -> set:
    """The configuration fields a trainer reads while it sets up, trains one step and steps its scheduler."""
    seen: set = set()
    trainer.config = recording_config(trainer.config, seen)
    trainer.initialize()
    batch = next(iter(trainer.loader(0)))
    trainer.train_step(trainer.prepare_batch({k: v.to(trainer.device) for k, v in batch.items()}))
    trainer.step_scheduler(0.5)
    return seen
