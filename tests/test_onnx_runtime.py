"""lw_export --onnx and lw_predict --runtime onnx|auto|torch: the exported graph's masks and probabilities
against the torch path's (computed independently, in the same test), the process without torch, stale
exports, and the options the ONNX path refuses."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from liverwild.checkpoints import load_checkpoint
from liverwild.cli import export as export_cli
from liverwild.errors import ConfigurationError
from liverwild.inference import predict
from liverwild.inference.export import export_onnx
from liverwild.inference.onnx_runtime import export_paths
from liverwild.io import read_image, read_label, write_volume
from liverwild.phantoms import DOMAINS, generate_case
from liverwild.shipped import DEFAULT_MODEL_DIR
from preprocessing.lean import context_slices, resize_slices, upsample_threshold
from preprocessing.slices import resize_stack

ROOT = Path(__file__).resolve().parents[1]
TORCH_MODULES = ("torch", "torchvision", "timm")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2 * int((a & b).sum()) / total


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A CT and an MR phantom (unseen seeds), one RAS-stored, in a folder."""
    folder = tmp_path_factory.mktemp("onnx_scans")
    for domain, seed in (("PhantomPortalCT", 71), ("PhantomT2MR", 72)):
        image, _, _ = generate_case(DOMAINS[domain].scaled(0.4), seed=seed, case=0, n_slices=14)
        write_volume(image.array, image.geometry, folder / f"{domain}.nii.gz")
    return folder


@pytest.fixture(scope="module")
def default_copy(tmp_path_factory):
    """The shipped default model (EfficientNet-Lite0 teacher) copied and exported to ONNX."""
    folder = tmp_path_factory.mktemp("default_model") / "default"
    shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("*.onnx", "*.onnx.json"))
    assert export_cli.main([str(folder), "--onnx", "-q"]) == 0
    return folder


@pytest.mark.parametrize(
    "shape, size",
    [((3, 512, 512), (224, 224)), ((2, 101, 122), (224, 224)), ((2, 300, 180), (224, 224)), ((2, 7, 9), (224, 224))],
)
def test_numpy_resizes_match_torch(shape, size):
    """The runtime path's resizes against the torch path's: antialiased when shrinking (resize_stack), and
    plain bilinear back from 224² (as the slice predictor does on probabilities)."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.testing.assert_allclose(resize_slices(x, size), resize_stack(x, size), atol=5e-5)
    back = F.interpolate(torch.from_numpy(x)[:, None], size=size[::-1], mode="bilinear", align_corners=False)
    np.testing.assert_allclose(resize_slices(x, size[::-1], antialias=False), back[:, 0].numpy(), atol=5e-5)


def test_numpy_resize_is_the_same_in_threads_and_batches():
    """Batches shared by threads write their own slices: the result equals one thread's, bit for bit."""
    x = np.random.default_rng(1).random((7, 60, 50), dtype=np.float32)
    for size in ((224, 224), (31, 20)):
        one = resize_slices(x, size, batch=16, workers=1)
        np.testing.assert_array_equal(resize_slices(x, size, batch=2, workers=3), one)
        assert np.abs(one - resize_slices(x[::-1], size, workers=1)[::-1]).max() == 0


def blobs(n: int, size: int, seed: int) -> np.ndarray:
    """``(n, size, size)`` float32 probability-like maps: a smooth blob per slice, shrinking and moving with
    the slice, some slices empty, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    maps = [
        1.3 - 4 * (y - 0.3 * np.sin(k)) ** 2 - 6 * (x + 0.2 * np.cos(k)) ** 2 - 0.08 * k + rng.normal(0, 0.03, y.shape)
        for k in range(n)
    ]
    return np.clip(maps, 0, 1).astype(np.float32)


@pytest.mark.parametrize("size, out_shape", [(224, (512, 512)), (224, (333, 290)), (37, (512, 100))])
def test_upsampled_mask_equals_torch_interpolation_thresholded(size, out_shape):
    """The mask interpolated only near the coarse samples ≥ 0.5 equals torch's bilinear interpolation of
    the whole grid thresholded at 0.5, voxel for voxel (except within 1e-5 of 0.5, where float32 rounding
    may decide), and is 0 on slices that never reach 0.5."""
    small = blobs(20, size, seed=3)
    small[4] = 0.49  # a slice just below the threshold everywhere
    small[5] = 0.0
    small[5, -1, -1] = 0.9  # a lone corner pixel: its box reaches the grid's edge
    full = F.interpolate(torch.from_numpy(small)[:, None], size=out_shape, mode="bilinear", align_corners=False)
    full = full[:, 0].numpy()
    for dtype in (np.uint8, bool):
        out = np.full((20, *out_shape), 7 if dtype == np.uint8 else True, dtype)  # stale values are cleared
        upsample_threshold(small, out)
        decided = np.abs(full - 0.5) > 1e-5
        assert np.array_equal(out.astype(bool)[decided], (full >= 0.5)[decided])
        reach = (-(-out_shape[0] // size) + 1, -(-out_shape[1] // size) + 1)  # outputs one coarse sample touches
        assert out.max() == 1 and not out[4].any() and out[5, -1, -1]
        assert out[5, : -reach[0]].sum() == 0 and out[5, :, : -reach[1]].sum() == 0
        assert 0.02 < out.mean() < 0.5, "the blobs should cover part of the grid, or the test says little"


def test_upsampled_mask_is_the_same_in_threads():
    small = blobs(9, 50, seed=4)
    one, three = np.empty((9, 120, 130), np.uint8), np.empty((9, 120, 130), np.uint8)
    upsample_threshold(small, one, workers=1)
    upsample_threshold(small, three, workers=3)
    np.testing.assert_array_equal(one, three)
    values = resize_slices(small, (120, 130), antialias=False)
    decided = np.abs(values - 0.5) > 1e-6  # the two sum in another order: float32 rounding may decide a tie
    np.testing.assert_array_equal(one.astype(bool)[decided], (values >= 0.5)[decided])
    assert one.any() and not one.all()


def test_context_slices_stays_importable_from_features():
    from preprocessing.features import context_slices as old

    assert old is context_slices


def test_batches_side_by_side_give_what_one_at_a_time_gives(default_copy, scans):
    """Several threads calling the session write their own slices: probabilities and mask equal those of
    one batch at a time, and of another batch size."""
    from liverwild.inference.base import PredictorOptions
    from liverwild.inference.onnx_runtime import OnnxModel, OnnxSlicePredictor
    from liverwild.io import Volume

    model = OnnxModel(default_copy)
    volume = read_image(next(iter(sorted(scans.glob("*.nii.gz")))))
    outputs = []
    for workers, batch in ((1, 4), (3, 4), (3, 5)):
        model.workers = workers
        predictor = OnnxSlicePredictor(model, PredictorOptions(batch_size=batch))
        copy = Volume(volume.array.copy(), volume.geometry, volume.path)
        outputs.append(predictor.predict_volume(copy, keep_probabilities=True)[:2])
    assert outputs[0][0].sum() > 0
    for mask, probs in outputs[1:]:
        np.testing.assert_array_equal(mask, outputs[0][0])
        np.testing.assert_allclose(probs, outputs[0][1], atol=1e-6)
    # without probabilities the mask is interpolated near the liver only: the same voxels (float32 rounding
    # of the two interpolations may decide a voxel within 1e-6 of 0.5: at most 0.01 % of the liver)
    mask_alone, probs_alone = predictor.predict_volume(Volume(volume.array.copy(), volume.geometry, volume.path))[:2]
    assert probs_alone is None
    assert np.count_nonzero(mask_alone != outputs[0][0]) <= 1e-4 * outputs[0][0].sum()


def agreement(model: Path, scans: Path, tmp_path: Path) -> list:
    """Predict ``scans`` with torch and with the ONNX graph; the masks' Dice, the probabilities' max abs
    difference, and the same geometry as the input for every scan."""
    reports = {}
    for runtime in ("torch", "onnx"):
        reports[runtime] = predict(
            scans,
            tmp_path / runtime,
            model=model,
            device="cpu",
            save_probabilities=True,
            progress=False,
            runtime=runtime,
        )
        assert reports[runtime]["n_ok"] == 2 and reports[runtime]["runtime"] == runtime
    assert reports["onnx"]["postprocessing"] == reports["torch"]["postprocessing"]
    out = []
    for scan in sorted(scans.glob("*.nii.gz")):
        masks = [read_label(tmp_path / r / scan.name) for r in ("torch", "onnx")]
        probs = [
            read_image(tmp_path / r / scan.name.replace(".nii.gz", "_prob.nii.gz")).array for r in ("torch", "onnx")
        ]
        assert masks[1].geometry == read_image(scan).geometry == masks[0].geometry
        out.append((scan.name, dice(masks[0].array, masks[1].array), float(np.abs(probs[0] - probs[1]).max())))
        assert masks[0].array.sum() > 0, "the torch mask is empty: the agreement would say nothing"
    return out


def test_default_model_onnx_agrees_with_torch(default_copy, scans, tmp_path):
    for name, d, diff in agreement(default_copy, scans, tmp_path):
        assert d >= 0.999, (name, d)
        assert diff < 1e-3, (name, diff)
    side = json.loads(export_paths(default_copy)[1].read_text(encoding="utf-8"))
    assert side["max_abs_difference"] < 1e-3 and side["model"]["default_model"]
    assert set(side["normalization"]) == {"CT", "MR"} and side["input"]["shape"] == ["batch", 1, 224, 224]


@pytest.mark.slow  # 13 s: the three development scans through both runtimes (CI's slow set)
def test_real_scans_onnx_agrees_with_torch(default_copy, real_data_dir, tmp_path):
    """The development scans (CT, MR, a LiTS crop) with the default model: Dice ≥ 0.999 each."""
    scans = tmp_path / "real"
    scans.mkdir()
    for name in ("lits117", "totalseg_ct", "totalseg_mr"):
        (scans / f"{name}.nii.gz").symlink_to(real_data_dir / name / "image.nii.gz")
    for runtime in ("torch", "onnx"):
        report = predict(scans, tmp_path / runtime, model=default_copy, device="cpu", progress=False, runtime=runtime)
        assert report["n_ok"] == 3 and report["runtime"] == runtime
    for mask in sorted((tmp_path / "torch").glob("*.nii.gz")):
        torch_mask = read_label(mask).array
        assert torch_mask.sum() > 1000, mask.name
        assert dice(torch_mask, read_label(tmp_path / "onnx" / mask.name).array) >= 0.999, mask.name


def test_trained_model_onnx_agrees_with_torch(trained_model, scans, tmp_path):
    """The test model (random ViT-Tiny teacher, pretrained=False) copied, exported, and compared."""
    model = tmp_path / "model"
    shutil.copytree(trained_model["output"], model)
    export_onnx(model)
    for name, d, diff in agreement(model, scans, tmp_path):
        assert d >= 0.999, (name, d)
        assert diff < 1e-3, (name, diff)


def run_isolated(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LW_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", env=env, timeout=300
    )


def test_onnx_runtime_process_never_imports_torch(default_copy, scans, tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys\nfrom liverwild.cli.predict import main\n"
        f"rc = main(['-i', {str(scans)!r}, '-o', {str(out)!r}, '-m', {str(default_copy)!r}, '--runtime', 'auto', "
        "'--device', 'cpu', '--no-progress', '--save-probabilities', '--overlays'])\n"
        f"print(rc, sorted(m for m in {TORCH_MODULES!r} if m in sys.modules))"
    )
    done = run_isolated(code)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    report = json.loads((out / "prediction_report.json").read_text(encoding="utf-8"))
    assert report["runtime"] == "onnx" and report["n_ok"] == 2 and "onnxruntime" in report["versions"]
    assert report["batch_size"] == 4  # the ONNX runtime's CPU default, not the torch path's 16
    assert (out / "overlays" / "PhantomT2MR.png").is_file()


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_no_torch(args):
    code = (
        "import sys\nfrom liverwild.cli.predict import main\ntry:\n    main(" + repr(args) + ")\n"
        "except SystemExit:\n    pass\n"
        f"print(sorted(m for m in {TORCH_MODULES!r} if m in sys.modules))"
    )
    done = run_isolated(code)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_a_ct_through_the_onnx_runtime_imports_neither_torch_nor_scipy(default_copy, scans, tmp_path):
    """The default post-processing of a CT labels with SimpleITK: SciPy (about 0.3 s to import) and
    scikit-image stay unloaded, like torch, and the mask is written."""
    out = tmp_path / "out"
    ct = scans / "PhantomPortalCT.nii.gz"
    code = (
        "import sys\nfrom liverwild.cli.predict import main\n"
        f"rc = main(['-i', {str(ct)!r}, '-o', {str(out)!r}, '-m', {str(default_copy)!r}, '--device', 'cpu', "
        "'--no-progress'])\n"
        "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'timm', 'scipy', 'skimage'}))"
    )
    done = run_isolated(code)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    report = json.loads((out / "prediction_report.json").read_text(encoding="utf-8"))
    assert report["runtime"] == "onnx" and report["scans"][0]["modality"] == "CT"
    assert read_label(out / "PhantomPortalCT.nii.gz").array.sum() > 0


def test_stale_export_is_refused_and_auto_falls_back_to_torch(default_copy, scans, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(default_copy, model)
    state = load_checkpoint(model / "checkpoint_best.pth")
    name = next(k for k, v in state["network"].items() if v.dtype.is_floating_point)
    state["network"][name] = state["network"][name] + 0.01  # as if retrained
    torch.save(state, model / "checkpoint_best.pth")
    (model / "provenance.json").unlink()  # a retrained folder: not the shipped model's recorded checkpoint
    with pytest.raises(ConfigurationError, match="stale"):
        predict(scans, tmp_path / "a", model=model, device="cpu", progress=False, runtime="onnx")
    report = predict(scans, tmp_path / "b", model=model, device="cpu", progress=False, runtime="auto")
    assert report["runtime"] == "torch" and report["n_ok"] == 2
    export_onnx(model)  # re-exported: current again
    assert predict(scans, tmp_path / "c", model=model, device="cpu", progress=False)["runtime"] == "onnx"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"int8_teacher": True}, "--int8-teacher"),
        ({"backbone_weights": "teacher.pth"}, "--backbone-weights"),
        ({"device": "mps"}, "--device mps"),
        ({"checkpoint": "final"}, "no ONNX export"),
    ],
)
def test_options_the_onnx_path_cannot_honour_are_refused(default_copy, scans, tmp_path, options, message):
    with pytest.raises(ConfigurationError, match=message):
        predict(scans, tmp_path / "out", model=default_copy, progress=False, runtime="onnx", **options)
    assert not (tmp_path / "out" / "prediction_report.json").exists()


def test_cuda_without_onnxruntime_gpu_is_refused(default_copy, scans, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ConfigurationError, match="onnxruntime-gpu"):
        predict(scans, tmp_path / "out", model=default_copy, device="cuda", progress=False, runtime="onnx")


def test_auto_without_export_uses_torch_and_unknown_runtime_is_refused(trained_model, scans, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(trained_model["output"], model, ignore=shutil.ignore_patterns("*.onnx", "*.onnx.json"))
    report = predict(scans, tmp_path / "out", model=model, device="cpu", progress=False)
    assert report["runtime"] == "torch"
    with pytest.raises(ConfigurationError, match="--runtime tensorflow"):
        predict(scans, tmp_path / "x", model=model, device="cpu", progress=False, runtime="tensorflow")


def test_export_needs_a_format(capsys):
    with pytest.raises(SystemExit):
        export_cli.main(["default"])
    assert "--onnx" in capsys.readouterr().err


# ---- the shipped default model's ONNX graph: what lw_predict runs by default on CPU -------------------


def test_the_shipped_default_model_carries_a_current_export_of_its_checkpoint(default_copy):
    from liverwild.inference.onnx_runtime import export_status

    sidecar, why = export_status(DEFAULT_MODEL_DIR)
    assert why == "" and sidecar is not None
    provenance = json.loads((DEFAULT_MODEL_DIR / "provenance.json").read_text(encoding="utf-8"))
    assert sidecar["checkpoint"]["sha256"] == provenance["checkpoint_sha256"]  # recorded when the model was built
    assert "folder" not in sidecar["model"] and "checkpoint" not in sidecar["model"]  # no path of the exporter
    import onnxruntime

    x = np.random.default_rng(3).standard_normal((3, 1, 224, 224)).astype(np.float32)
    shipped, fresh = (
        onnxruntime.InferenceSession(str(export_paths(folder)[0]), providers=["CPUExecutionProvider"]).run(
            ["probabilities"], {"slices": x}
        )[0]
        for folder in (DEFAULT_MODEL_DIR, default_copy)
    )
    assert np.abs(shipped - fresh).max() < 1e-5  # the shipped graph is the model exported now


def test_lw_predict_with_the_default_model_runs_onnx_without_importing_torch(scans, tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys\nfrom liverwild.cli.predict import main\n"
        f"rc = main(['-i', {str(scans)!r}, '-o', {str(out)!r}, '--device', 'cpu', '--no-progress', '-q'])\n"
        f"print(rc, sorted(m for m in {TORCH_MODULES!r} if m in sys.modules))"
    )
    done = run_isolated(code)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    report = json.loads((out / "prediction_report.json").read_text(encoding="utf-8"))
    assert report["runtime"] == "onnx" and report["n_ok"] == 2 and report["model"]["default_model"]
