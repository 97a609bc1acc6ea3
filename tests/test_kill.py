"""kill -9 anywhere, then re-run the same command: the outputs equal an uninterrupted run's.

Each command runs once to completion (the reference); then, for seeded random moments, it is started
again in a fresh folder, killed with SIGKILL, re-run unchanged, and its outputs are compared with the
reference — bit-identical arrays for caches, masks, converted scans and trained weights (all are
deterministic on CPU), and no temporary file left behind.
"""

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from liverwild.io import read_image, write_volume
from liverwild.phantoms import generate_case, write_phantoms

pytestmark = pytest.mark.slow
TRIALS = 2
ENV = {**os.environ, "LW_THREADS": "1"}


def run_to_end(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def kill_then_rerun(cmd, cwd, rng, reference_seconds):
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.3, 0.9) * reference_seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_to_end(cmd, cwd)


def arrays(folder: Path, pattern: str) -> dict:
    out = {}
    for path in sorted(folder.rglob(pattern)):
        rel = str(path.relative_to(folder))
        out[rel] = np.load(path) if path.suffix == ".npy" else read_image(path, dtype=None).array
    return out


def no_temporaries(folder: Path):
    left = [str(p) for p in folder.rglob("*") if ".tmp" in p.name]
    assert left == [], left


def check_trials(make_cmd, workdir: Path, collect, seed: int):
    rng = random.Random(seed)
    start = time.perf_counter()
    run_to_end(make_cmd(workdir / "reference"), workdir)
    seconds = time.perf_counter() - start
    reference = collect(workdir / "reference")
    assert reference
    for trial in range(TRIALS):
        out = workdir / f"trial{trial}"
        kill_then_rerun(make_cmd(out), workdir, rng, seconds)
        got = collect(out)
        assert got.keys() == reference.keys(), trial
        for key in reference:
            assert np.array_equal(got[key], reference[key]), (trial, key)
        no_temporaries(out)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    write_phantoms(root / "raw", ["PhantomNativeCT", "PhantomT2MR"], 4, 0, 0.4, 10, workers=1, progress=False)
    return root / "raw"


PLAN = ["--random-backbone", "--backbone", "vit_tiny_patch16_224", "--views", "1", "--workers", "0", "--no-progress"]


def test_kill_plan_and_preprocess(raw, tmp_path):
    def cmd(out):
        return [
            "lw_plan_and_preprocess",
            "-d",
            "PhantomNativeCT",
            "PhantomT2MR",
            "--raw",
            str(raw),
            "--preprocessed",
            str(out),
            *PLAN,
        ]

    check_trials(cmd, tmp_path, lambda out: arrays(out, "*.npy"), seed=1)


def test_kill_train(raw, tmp_path):
    import torch

    pre = tmp_path / "pre"
    run_to_end(
        [
            "lw_plan_and_preprocess",
            "-d",
            "PhantomNativeCT",
            "PhantomT2MR",
            "--raw",
            str(raw),
            "--preprocessed",
            str(pre),
            *PLAN,
        ],
        tmp_path,
    )

    def cmd(out):
        return [
            "lw_train",
            "loo_PhantomT2MR",
            "--epochs",
            "4",
            "--steps-per-epoch",
            "6",
            "--batch-size",
            "4",
            "--lr",
            "0.01",
            "--device",
            "cpu",
            "--no-progress",
            "--preprocessed",
            str(pre),
            "--results",
            str(out),
        ]

    def weights(out):
        finals = list(out.rglob("checkpoint_final.pth"))
        state = torch.load(finals[0], weights_only=True)["network"] if finals else {}
        return {k: v.numpy() for k, v in state.items()}

    check_trials(cmd, tmp_path, weights, seed=2)


PLAN_3D = ["-c", "3d", "--volume-size", "16", "32", "32", "--workers", "0", "--no-progress"]
TINY_3D = ["--set", "unet3d_channels=4", "unet3d_depth=2", "feature_layers=2", "feature_hidden=16", "voxel_samples=200"]


def preprocess_3d_command(raw, out):
    datasets = ["-d", "PhantomNativeCT", "PhantomT2MR"]
    return ["lw_plan_and_preprocess", *datasets, "--raw", str(raw), "--preprocessed", str(out), *PLAN_3D]


def test_kill_plan_and_preprocess_3d(raw, tmp_path):
    check_trials(lambda out: preprocess_3d_command(raw, out), tmp_path, lambda out: arrays(out, "*.npy"), seed=5)


def test_kill_train_3d(raw, tmp_path):
    import torch

    pre = tmp_path / "pre"
    run_to_end(preprocess_3d_command(raw, pre), tmp_path)

    def cmd(out):
        train = ["lw_train", "loo_PhantomT2MR", "-tr", "Siamese3DTrainer", "--epochs", "4", "--steps-per-epoch", "3"]
        folders = ["--preprocessed", str(pre), "--results", str(out)]
        return [*train, "--batch-size", "2", *TINY_3D, "--device", "cpu", "--no-progress", *folders]

    def weights(out):
        finals = list(out.rglob("checkpoint_final.pth"))
        state = torch.load(finals[0], weights_only=True) if finals else {}
        both = {**state.get("network", {}), **{f"aux.{k}": v for k, v in state.get("auxiliary", {}).items()}}
        return {k: v.numpy() for k, v in both.items()}

    check_trials(cmd, tmp_path, weights, seed=6)


def test_kill_predict(tmp_path):
    scans = tmp_path / "scans"
    for case in range(3):
        image, _, _ = generate_case("PhantomPortalCT", seed=7, case=case, n_slices=16)
        write_volume(image.array, image.geometry, scans / f"scan{case}.nii.gz")

    def cmd(out):
        return ["lw_predict", "-i", str(scans), "-o", str(out), "--device", "cpu", "--no-progress"]

    check_trials(cmd, tmp_path, lambda out: arrays(out, "*.nii.gz"), seed=3)


def test_kill_convert(tmp_path):
    src = tmp_path / "BTCV" / "RawData" / "Training"
    for case in range(1, 5):
        image, label, _ = generate_case("PhantomNativeCT", seed=4, case=case, n_slices=20)
        write_volume(image.array, image.geometry, src / "img" / f"img{case:04d}.nii.gz")
        write_volume(label.array * 6, label.geometry, src / "label" / f"label{case:04d}.nii.gz")

    def cmd(out):
        return ["lw_convert", "btcv", str(tmp_path / "BTCV"), "--raw", str(out)]

    check_trials(cmd, tmp_path, lambda out: arrays(out, "*.nii.gz"), seed=4)
    shutil.rmtree(tmp_path / "BTCV")
