"""The domain-randomised phantom family and the default model shipped inside the package."""

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import liverwild
from liverwild.default_model import DEFAULT_MODEL_DIR, DISCLAIMER, Recipe, build_default_model
from liverwild.phantoms import LIVER_TISSUES, generate_case
from liverwild.phantoms.randomized import FAMILY, case_domain, write_randomized

ROOT = Path(__file__).resolve().parents[1]


def sha256(path) -> str:
    """The file's SHA-256, computed here independently of liverwild's own helper."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_randomised_domains_are_deterministic_and_varied():
    assert case_domain(0, "MR", 3) == case_domain(0, "MR", 3)
    assert case_domain(0, "MR", 3) != case_domain(0, "MR", 4) != case_domain(1, "MR", 3)
    mr = [case_domain(0, "MR", c) for c in range(40)]
    ct = [case_domain(0, "CT", c) for c in range(40)]
    liver_vs_spleen = [d.intensities["LIVER"][0] > d.intensities["SPLEEN"][0] for d in mr]
    liver_vs_fat = [d.intensities["LIVER"][0] > d.intensities["FAT"][0] for d in mr]
    assert 5 < sum(liver_vs_spleen) < 35 and 5 < sum(liver_vs_fat) < 35  # darker and brighter livers both occur
    assert len({d.extra["contrast"] for d in mr}) >= 4
    assert len({d.direction for d in mr + ct}) >= 4
    assert min(d.slice_mm for d in ct) < 3 and max(d.slice_mm for d in mr) > 6
    assert any(d.bias_field > 0.3 for d in mr) and any(d.streaks > 0 for d in ct) and any(d.ghosting for d in mr)
    assert any(d.intensities["LIVER"][0] < 40 for d in ct)  # fatty livers
    assert len({round(d.anatomy_scale[0], 2) for d in ct}) > 20
    assert all(d.n_slices() <= 96 for d in mr + ct)


def test_randomised_case_labels_follow_the_anatomy():
    domain = case_domain(0, "CT", 1, max_slices=24)
    image, label, tissues = generate_case(domain, 0, 1)
    assert image.geometry == label.geometry and image.geometry.size[2] == domain.n_slices()
    assert label.array.sum() == np.isin(tissues, LIVER_TISSUES).sum() > 0
    scaled = case_domain(0, "CT", 1, max_slices=24)
    assert scaled.anatomy_scale != (1.0, 1.0, 1.0)


def test_write_randomized_records_each_case_and_verifies(tmp_path):
    from liverwild.datasets import verify_dataset

    folder = write_randomized(tmp_path, "MR", 3, seed=5, max_slices=10, progress=False)
    assert folder.name == FAMILY["MR"]
    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    cases = info["phantom"]["cases"]
    assert sorted(cases) == ["phantomrandommr_000", "phantomrandommr_001", "phantomrandommr_002"]
    assert cases["phantomrandommr_001"]["modality"] == "MR" and "LIVER" in cases["phantomrandommr_001"]["intensities"]
    assert verify_dataset(folder).ok


def test_shipped_default_model_matches_its_provenance_and_loads():
    from liverwild.inference.model import TrainedModel, resolve_model_dir

    assert resolve_model_dir(None) == DEFAULT_MODEL_DIR == resolve_model_dir("default")
    provenance = json.loads((DEFAULT_MODEL_DIR / "provenance.json").read_text(encoding="utf-8"))
    assert sha256(DEFAULT_MODEL_DIR / "checkpoint_best.pth") == provenance["checkpoint_sha256"]
    assert provenance["teacher_config"]["teacher"] == "imagenet-effnet-lite0"
    assert provenance["generator"] == "liverwild.phantoms.randomized" and "synthetic" in provenance["description"]
    assert provenance["command"].startswith("lw_build_default_model")
    assert (DEFAULT_MODEL_DIR / "checkpoint_best.pth").stat().st_size < 2_000_000
    model = TrainedModel(DEFAULT_MODEL_DIR)
    assert not model.random_backbone and model.backbone.feature_channels == 112
    assert set(model.plans) == {"PhantomRandomCT", "PhantomRandomMR"}
    assert model.describe()["note"] == DISCLAIMER


def test_a_changed_checkpoint_is_refused_against_its_provenance(tmp_path):
    """A model folder whose checkpoint no longer has the SHA-256 its provenance.json records (edited, damaged,
    half-copied) is refused before it segments anything; the intact copy loads."""
    import shutil

    from liverwild.errors import LiverwildError
    from liverwild.inference.model import TrainedModel

    copy = tmp_path / "default"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    assert TrainedModel(copy).configuration == "2d"
    data = bytearray((copy / "checkpoint_best.pth").read_bytes())
    data[-100] ^= 0xFF  # one flipped byte, inside the zip's data
    (copy / "checkpoint_best.pth").write_bytes(bytes(data))
    with pytest.raises(
        LiverwildError, match="checkpoint_best.pth: its SHA-256 .* is not the .* provenance.json records"
    ):
        TrainedModel(copy)


def test_checkpoints_without_a_configuration_entry_are_read_from_their_network():
    from liverwild.inference.model import configuration_of

    assert configuration_of({"architecture": "unet3d", "in_channels": 1}) == "3d"
    assert configuration_of({"architecture": "unet2d"}) == "2d"
    assert configuration_of({"code_channels": 70}) == "2d"  # the distillation network names no architecture


def test_lw_predict_without_model_uses_the_default(tmp_path, capsys):
    from liverwild.cli import predict as predict_cli
    from liverwild.io import read_image, write_volume

    image, _, _ = generate_case(case_domain(0, "CT", 2, max_slices=12), 0, 2)
    write_volume(image.array, image.geometry, tmp_path / "in" / "scan.nii.gz")
    assert predict_cli.main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "synthetic phantoms only" in capsys.readouterr().out
    mask = read_image(tmp_path / "out" / "scan.nii.gz", dtype=None)
    assert mask.geometry == read_image(tmp_path / "in" / "scan.nii.gz").geometry
    report = json.loads((tmp_path / "out" / "prediction_report.json").read_text(encoding="utf-8"))
    assert report["model"]["default_model"] and "not a medical device" in report["model"]["note"]


@pytest.mark.slow
def test_quick_build_writes_a_verified_model_with_its_provenance(tmp_path):
    provenance = build_default_model(
        tmp_path / "work", output=tmp_path / "model", recipe=Recipe().quick(), device="cpu"
    )
    checkpoint = tmp_path / "model" / "checkpoint_best.pth"
    assert provenance["checkpoint_sha256"] == sha256(checkpoint)  # recorded after the last write
    assert provenance["recipe"]["ct_cases"] == 4 and provenance["generator_version"] >= 1
    assert provenance["device"].startswith("cpu (")  # the device used, not the option ("auto")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, encoding="utf-8")
    if head.returncode == 0:  # a git checkout (CI clones one): the revision the model was built from
        assert provenance["git_revision"].split("+")[0] == head.stdout.strip()
    assert provenance["versions"]["liverwild"] == liverwild.__version__
    from liverwild.inference.model import TrainedModel

    assert TrainedModel(tmp_path / "model").config["default_model"] is True


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_default_model_segments_randomised_phantoms(tmp_path, modality):
    """Sanity on held-out synthetic cases (seed 99, never seen in training): the liver is found."""
    import torch

    from liverwild.evaluation.metrics import dice
    from liverwild.inference import SlicePredictor
    from liverwild.inference.model import TrainedModel

    predictor = SlicePredictor(TrainedModel(DEFAULT_MODEL_DIR), torch.device("cpu"))
    image, label, _ = generate_case(case_domain(99, modality, 0, max_slices=24), 99, 0)
    mask, _, info, _ = predictor.predict_volume(image)
    assert info["modality"] == modality
    assert dice(mask > 0, label.array > 0) > 0.6


def test_build_command_recipe_options_reach_the_recipe():
    from liverwild.cli.build_default_model import build_parser, recipe_from_args

    args = build_parser().parse_args(["--teacher", "dinov2-vits14", "--slice-context", "neighbours", "--epochs", "30"])
    recipe = recipe_from_args(args)
    assert (recipe.teacher, recipe.slice_context, recipe.epochs) == ("dinov2-vits14", "neighbours", 30)
    assert recipe.ct_cases == Recipe().ct_cases  # the rest stays the shipped recipe
    assert recipe_from_args(build_parser().parse_args([])) == Recipe()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--epochs", "many"])


def test_default_means_the_shipped_model_even_beside_a_folder_named_default(tmp_path, monkeypatch):
    from liverwild.inference.model import resolve_model_dir

    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("default") == DEFAULT_MODEL_DIR
    assert resolve_model_dir(None) == DEFAULT_MODEL_DIR
    assert resolve_model_dir("./default") == Path("./default")  # the user's folder, named as a path


def test_export_keeps_what_says_how_the_model_predicts(tmp_path):
    """A ``3d`` run's configuration, classes and volume size survive the slim export (a model folder
    without them would be read as a 2D liver model), and so do the versions and git revision that
    trained it."""
    import torch

    from liverwild.default_model import export_model
    from liverwild.inference.model import CHECKPOINTS

    run = tmp_path / "run"
    run.mkdir()
    state = {
        "trainer": "UNet3DTrainer",
        "network": {"w": torch.zeros(2)},
        "network_config": {"kind": "unet3d"},
        "plans": {},
        "config": {},
        "epochs_done": 1,
        "best_dice": 0.5,
        "configuration": "3d",
        "classes": ["liver", "spleen"],
        "volume_size": [16, 32, 32],
        "git_revision": "0123abc",
        "versions": {"liverwild": "0.1.0", "torch": "2.0"},
        "optimizer": {"lr": torch.ones(1)},  # training state: dropped
    }
    torch.save(state, run / CHECKPOINTS["best"])
    (run / "config.json").write_text("{}", encoding="utf-8")
    out = export_model(run, tmp_path / "model", {"recipe": {}})
    slim = torch.load(out / "checkpoint_best.pth", weights_only=True)
    assert (slim["configuration"], slim["classes"], slim["volume_size"]) == ("3d", ["liver", "spleen"], [16, 32, 32])
    assert slim["git_revision"] == "0123abc" and slim["versions"] == state["versions"]
    assert "optimizer" not in slim
    assert json.loads((out / "provenance.json").read_text())["checkpoint_sha256"] == sha256(out / "checkpoint_best.pth")
