"""lw_adapt: exact BatchNorm re-estimation, the stopping rule, the three methods on a trained fold and on
the shipped default model, the adapted model's provenance and its modality check, refusals."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import liverwild
from liverwild.adaptation import AdaptationSettings, adapt_model
from liverwild.adaptation.forward import held_out_measures
from liverwild.adaptation.statistics import reestimate_batch_norms
from liverwild.adaptation.target import AdaptationData
from liverwild.checkpoints import load_checkpoint
from liverwild.cli.adapt import main as adapt_main
from liverwild.errors import ConfigurationError, LiverwildError
from liverwild.inference import predict
from liverwild.inference.model import TrainedModel
from liverwild.io import read_image
from liverwild.revision import git_revision
from planning.content import content_digest


class TwoBlockNet(nn.Module):
    """An image 'model' with two BatchNorms and dropout, called like a U-Net: ``net(slices)``."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 3, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.5)
        self.b = nn.Conv2d(3, 1, 1)
        self.bn_b = nn.BatchNorm2d(1)

    def forward(self, x):
        return self.bn_b(self.b(self.drop(torch.relu(self.bn_a(self.a(x))))))


def image_data(n=10, size=12, seed=0, scale=3.0, shift=2.0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(n, 1, size, size, generator=g) * scale + shift
    return AdaptationData(centre, centre, None, np.arange(n) // 2, [{"name": str(i)} for i in range(n // 2)])


def test_batch_norm_statistics_are_the_population_statistics_layer_by_layer():
    torch.manual_seed(0)
    net = TwoBlockNet().eval()
    data = image_data()
    reestimate_batch_norms(net, [net.bn_b, net.bn_a], data, 3, "cpu")  # any order in, forward order used
    # independent reconstruction: moments of each layer's input over all 10 slices at once
    with torch.no_grad():
        x = net.a(data.centre).double()
        mean_a, var_a = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        y = (x - mean_a[None, :, None, None]) / torch.sqrt(var_a[None, :, None, None] + net.bn_a.eps)
        y = y * net.bn_a.weight.double()[None, :, None, None] + net.bn_a.bias.double()[None, :, None, None]
        z = net.b(torch.relu(y).float()).double()
    assert torch.allclose(net.bn_a.running_mean.double(), mean_a, atol=1e-5)
    assert torch.allclose(net.bn_a.running_var.double(), var_a, rtol=1e-4)
    assert torch.allclose(net.bn_b.running_mean.double(), z.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(net.bn_b.running_var.double(), z.var(dim=(0, 2, 3), unbiased=False), rtol=1e-4)
    assert not net.training  # left in eval mode


def test_held_out_split_keeps_whole_scans_apart():
    data = image_data(n=10)  # 5 scans of 2 slices
    adapt, held = data.split_scans(0.2, seed=3)
    assert len(held) == 2 and len(adapt) == 8
    assert set(held.scan_index).isdisjoint(set(adapt.scan_index))
    single = AdaptationData(data.centre, data.centre, None, np.zeros(10, int), [{"name": "one"}])
    adapt, held = single.split_scans(0.2, seed=0)
    assert len(held) == 2 and len(adapt) == 8  # every fifth slice of a lone scan


# ---- on a trained fold (sources NativeCT + PortalCT; random ViT-Tiny teacher) ---------------------------


@pytest.fixture(scope="module")
def mr_scans(phantom_study, tmp_path_factory):
    """Three of the T2MR phantoms (unseen by the trained fold): the scans to adapt to."""
    folder = tmp_path_factory.mktemp("mr_scans")
    for path in sorted((phantom_study / "raw" / "PhantomT2MR" / "imagesTr").glob("*.nii.gz"))[:3]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def bn_adapted(trained_model, mr_scans, tmp_path_factory):
    out = tmp_path_factory.mktemp("bn") / "adapted"
    provenance = adapt_model(trained_model["output"], mr_scans, out, device="cpu")
    return out, provenance


def test_bn_adapted_model_records_its_scans_and_changes_only_statistics(bn_adapted, trained_model, mr_scans):
    out, provenance = bn_adapted
    assert provenance["method"] == "bn" and provenance["modality"] == "MR"
    assert provenance["source_model"] == str(Path(trained_model["output"]))
    digests = {}
    for path in sorted(mr_scans.glob("*.nii.gz")):
        volume = read_image(path)
        digests[path.name] = content_digest(volume.array, volume.geometry)
    assert {Path(s["file"]).name: s["digest"] for s in provenance["scans"]} == digests
    source = load_checkpoint(Path(trained_model["output"]) / "checkpoint_best.pth")["network"]
    adapted = load_checkpoint(out / "checkpoint_best.pth")["network"]
    moved = {k for k in source if not torch.equal(source[k], adapted[k])}
    assert moved and all(k.endswith(("running_mean", "running_var")) for k in moved)
    assert json.loads((out / "config.json").read_text())["adaptation"]["modality"] == "MR"
    report = json.loads((out / "adaptation_report.json").read_text())
    for record in (provenance, report):  # the code that adapted, in both records
        assert record["versions"]["liverwild"] == liverwild.__version__ and record["git_revision"] == git_revision()


def test_adapted_model_predicts_its_modality_and_refuses_the_other(bn_adapted, phantom_study, tmp_path):
    out, _ = bn_adapted
    mr = sorted((phantom_study / "raw" / "PhantomT2MR" / "imagesTr").glob("*.nii.gz"))[0]
    ct = sorted((phantom_study / "raw" / "PhantomPortalCT" / "imagesTr").glob("*.nii.gz"))[0]
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(mr, inputs / mr.name)
    shutil.copy(ct, inputs / ct.name)
    report = predict(inputs, tmp_path / "out", model=str(out), device="cpu", progress=False)
    by_name = {r["name"]: r for r in report["scans"]}
    mr_name, ct_name = mr.name[: -len("_0000.nii.gz")], ct.name[: -len("_0000.nii.gz")]
    assert by_name[mr_name]["error"] == "" and (tmp_path / "out" / f"{mr_name}.nii.gz").is_file()
    assert "adapted by lw_adapt to MR scans only" in by_name[ct_name]["error"]
    assert not (tmp_path / "out" / f"{ct_name}.nii.gz").exists()
    mask = read_image(tmp_path / "out" / f"{mr_name}.nii.gz")
    assert mask.geometry == read_image(mr).geometry


@pytest.mark.slow
def test_entropy_lowers_held_out_entropy_within_the_volume_bound(trained_model, mr_scans, tmp_path):
    settings = AdaptationSettings(method="entropy", steps=20, eval_every=5, lr=1e-2, max_volume_change=0.5)
    adapt_model(trained_model["output"], mr_scans, tmp_path / "a", settings=settings, device="cpu")
    report = json.loads((tmp_path / "a" / "adaptation_report.json").read_text())
    start, history = report["held_out_start"], report["history"]
    kept = next(h for h in history if h["step"] == report["kept_step"])
    assert report["kept_step"] > 0 and kept["entropy"] < start["entropy"]
    assert kept["volume_change"] <= 0.5


@pytest.mark.slow
def test_entropy_runaway_is_stopped_and_the_last_safe_state_kept(trained_model, mr_scans, tmp_path):
    settings = AdaptationSettings(method="entropy", steps=60, eval_every=2, lr=0.5, max_volume_change=0.02)
    adapt_model(trained_model["output"], mr_scans, tmp_path / "a", settings=settings, device="cpu")
    report = json.loads((tmp_path / "a" / "adaptation_report.json").read_text())
    assert "liver volume changed" in report["stop"]
    # measured again on the saved model: its held-out volume is the kept state's, within the bound
    model = TrainedModel(tmp_path / "a", device="cpu")
    from liverwild.adaptation.target import load_adaptation_data

    data = load_adaptation_data(model, mr_scans)
    _, held = data.split_scans(0.2, 0)
    kept = next(h for h in report["history"] if h["step"] == report["kept_step"])
    assert held_out_measures(model.net, held, 16, "cpu")["liver_pixels"] == kept["liver_pixels"]
    assert kept["volume_change"] <= 0.02


@pytest.mark.slow
def test_adversarial_moves_the_head_only_with_cached_source_features(trained_model, mr_scans, phantom_study, tmp_path):
    settings = AdaptationSettings(method="adversarial", steps=6, critic_steps=2, eval_every=3, source="cache")
    provenance = adapt_model(
        trained_model["output"],
        mr_scans,
        tmp_path / "a",
        settings=settings,
        device="cpu",
        preprocessed=phantom_study / "pre",
    )
    assert provenance["source_features"].startswith("cache")
    source = load_checkpoint(Path(trained_model["output"]) / "checkpoint_best.pth")["network"]
    adapted = load_checkpoint(tmp_path / "a" / "checkpoint_best.pth")["network"]
    moved = {k for k in source if not torch.equal(source[k], adapted[k])}
    report = json.loads((tmp_path / "a" / "adaptation_report.json").read_text())
    if report["kept_step"] > 0:
        assert moved and all(k.startswith("head.") for k in moved)
    else:
        assert not moved
    with pytest.raises(ConfigurationError, match="training cache"):
        adapt_model(trained_model["output"], mr_scans, tmp_path / "b", settings=settings, device="cpu")


def test_refusals(trained_model, mr_scans, phantom_study, bn_adapted, tmp_path, capsys):
    model = str(trained_model["output"])
    assert adapt_main([model, "-i", str(mr_scans), "-o", str(tmp_path / "x"), "--steps", "5"]) == 1
    assert "--method bn does not use --steps" in capsys.readouterr().err
    assert adapt_main([model, "-i", str(mr_scans), "-o", model]) == 1
    assert "another folder than its source model" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert adapt_main([model, "-i", str(mr_scans), "-o", str(tmp_path / "full")]) == 1
    assert "not empty" in capsys.readouterr().err and (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert adapt_main([str(bn_adapted[0]), "-i", str(mr_scans), "-o", str(tmp_path / "y")]) == 1
    assert "already adapted" in capsys.readouterr().err
    mixed = tmp_path / "mixed"
    shutil.copytree(mr_scans, mixed)
    ct = sorted((phantom_study / "raw" / "PhantomPortalCT" / "imagesTr").glob("*.nii.gz"))[0]
    shutil.copy(ct, mixed / ct.name)
    assert adapt_main([model, "-i", str(mixed), "-o", str(tmp_path / "z")]) == 1
    assert "holds both CT and MR scans" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


def test_a_bad_scan_is_reported_and_the_others_used(trained_model, mr_scans, tmp_path, caplog):
    folder = tmp_path / "scans"
    shutil.copytree(mr_scans, folder)
    (folder / "broken_0000.nii.gz").write_bytes(b"not a nifti")
    provenance = adapt_model(trained_model["output"], folder, tmp_path / "a", device="cpu")
    assert len(provenance["scans"]) == 3
    assert any("FAILED" in r.message and "broken_0000.nii.gz" in r.message for r in caplog.records)
    empty = tmp_path / "only_bad"
    empty.mkdir()
    (empty / "broken_0000.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(LiverwildError, match="no readable scan"):
        adapt_model(trained_model["output"], empty, tmp_path / "b", device="cpu")


@pytest.mark.parametrize(
    "setting, refusal",
    [
        ({"batch_size": 0}, "--batch-size 0: must be at least 1"),
        ({"max_slices": -2}, "--max-slices -2: must be at least 1"),
        ({"held_out_share": 1.0}, "--held-out-share 1.0: must be between 0 and 1"),
        ({"lr": -1e-3}, "--lr -0.001: must be above 0"),
        ({"gradient_penalty": -1.0}, "--gradient-penalty -1.0: must be at least 0"),
    ],
)
def test_settings_out_of_range_are_refused(setting, refusal):
    with pytest.raises(ConfigurationError) as info:
        AdaptationSettings(**setting)
    assert str(info.value) == refusal
    assert AdaptationSettings(steps=None, lr=None, held_out_share=0.5).held_out_share == 0.5


def test_3d_models_are_refused(trained_3d, mr_scans, tmp_path):
    with pytest.raises(ConfigurationError, match="lw_adapt adapts 2D models"):
        adapt_model(trained_3d["output"], mr_scans, tmp_path / "a", device="cpu")


def test_default_model_adapts_to_a_real_mr_scan(real_data_dir, tmp_path):
    """The shipped model (real EfficientNet-Lite0 teacher) adapted with bn to the development MR scan:
    its BatchNorm means move, and the adapted model segments the scan in its geometry."""
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(real_data_dir / "totalseg_mr" / "image.nii.gz", scans / "mr.nii.gz")
    provenance = adapt_model("default", scans, tmp_path / "a", device="cpu")
    assert provenance["modality"] == "MR" and provenance["source_provenance"]["recipe"]["teacher"]
    report = predict(scans, tmp_path / "out", model=str(tmp_path / "a"), device="cpu", progress=False)
    assert report["scans"][0]["error"] == "" and report["scans"][0]["liver_ml"] > 100
    assert read_image(tmp_path / "out" / "mr.nii.gz").geometry == read_image(scans / "mr.nii.gz").geometry


def test_adversarial_aligns_with_the_sources_of_the_target_modality():
    from types import SimpleNamespace

    from liverwild.adaptation.source import aligned_sources

    both = SimpleNamespace(plans={"CTa": SimpleNamespace(modality="CT"), "MRb": SimpleNamespace(modality="MR")})
    assert aligned_sources(both, "MR") == ["MRb"] and aligned_sources(both, "CT") == ["CTa"]
    ct_only = SimpleNamespace(plans={"X": SimpleNamespace(modality="CT"), "A": SimpleNamespace(modality="CT")})
    assert aligned_sources(ct_only, "MR") == ["A", "X"]  # cross-modality: every source
