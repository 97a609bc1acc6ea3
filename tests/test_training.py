import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TRAINED_FOLD, fields_read_in_one_step, small

import liverwild
from liverwild.checkpoints import load_checkpoint
from liverwild.cli import train as train_cli
from liverwild.errors import LiverwildError
from liverwild.revision import git_revision
from liverwild.training import (
    TRAINERS,
    SliceTrainer,
    SliceTrainerConfig,
    TrainerBase,
    VolumeTrainerConfig,
    get_trainer,
    parse_settings,
    train_fold,
)
from liverwild.training.registry import check_changes
from preprocessing.splits import load_splits

FOLD = TRAINED_FOLD


@pytest.fixture(scope="module")
def preprocessed(phantom_study):
    return phantom_study / "pre"


def test_training_learns_and_writes_artefacts(trained_model, preprocessed, tmp_path):
    """The shared training run (conftest.trained_model: 8 epochs at lr 1e-2 on loo_PhantomT2MR). Its best
    validation Dice varies with the seed between 0.53 and 0.78 at this budget (benchmarks/
    bench_positive_pairs.py, seeds 0–3, either sampling): 0.5 is the bar every seed clears."""
    summary = trained_model
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    fresh = get_trainer("ContrastiveDistillationTrainer")(FOLD, fold, preprocessed, tmp_path, small(), "cpu")
    fresh.initialize()
    untrained = fresh.validate()["val_dice"]
    out = Path(summary["output"])
    assert out.parent.name == FOLD
    log = pd.read_csv(out / "log.csv")
    assert len(log) == 8
    for column in (
        "loss",
        "loss_distillation",
        "loss_focal",
        "loss_tversky",
        "loss_log_iou",
        "loss_entropy",
        "val_dice",
        "lr",
        "sim_self",
        "sim_pos",
        "sim_neg",
        "epoch_seconds",
    ):
        assert column in log.columns, column
    assert log["loss"].iloc[-2:].mean() < log["loss"].iloc[:2].mean(), "training loss must decrease"
    assert summary["best_val_dice"] > 0.5 and summary["best_val_dice"] > untrained + 0.3, untrained
    assert log["val_dice"].iloc[-1] > log["val_dice"].iloc[0]
    assert summary["best_val_dice"] == pytest.approx(log["val_dice"].max())
    fresh.network.load_state_dict(load_checkpoint(out / "checkpoint_best.pth")["network"])
    assert fresh.validate()["val_dice"] == pytest.approx(summary["best_val_dice"], abs=1e-6), "the best is kept"
    for name in (
        "checkpoint_latest.pth",
        "checkpoint_best.pth",
        "checkpoint_final.pth",
        "progress.png",
        "log.json",
        "config.json",
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["fold"]["target"] == "PhantomT2MR" and config["backbone_weights"] == "random"
    assert config["config"]["lr"] == 1e-2 and 5e4 < config["trainable_parameters"] < 3e5
    assert config["versions"]["liverwild"] == liverwild.__version__ and config["git_revision"] == git_revision()
    checkpoint = load_checkpoint(out / "checkpoint_best.pth")
    assert checkpoint["versions"] == config["versions"] and checkpoint["git_revision"] == config["git_revision"]
    assert re.fullmatch(r"ContrastiveDistillationTrainer__lwPlans_vit_tiny_patch16_224_random_1v_[0-9a-f]{6}", out.name)


def test_target_is_never_loaded(preprocessed, tmp_path):
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    trainer = get_trainer("ContrastiveDistillationTrainer")(FOLD, fold, preprocessed, tmp_path, small(), "cpu")
    trainer.build_datasets()
    used = {str(c.folder) for c in trainer.train_set.cases} | {
        str(c.folder) for cs in trainer.val_cases.values() for c in cs
    }
    assert used and not any("PhantomT2MR" in u for u in used)
    assert not set(fold["val"]["PhantomNativeCT"]) & {c.name for c in trainer.train_set.cases if "native" in c.name}


def test_resume_after_kill_ends_where_an_uninterrupted_run_does(preprocessed, tmp_path, monkeypatch, caplog):
    config = small(epochs=3, steps_per_epoch=2)

    def train(results: str, configuration=config) -> dict:
        return train_fold(
            FOLD,
            preprocessed=str(preprocessed),
            results=str(tmp_path / results),
            device="cpu",
            config=configuration,
            progress=False,
        )

    train("a")
    original = TrainerBase.run_epoch

    def killed_in_epoch_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(TrainerBase, "run_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train("b")
    monkeypatch.setattr(TrainerBase, "run_epoch", original)
    with caplog.at_level(logging.INFO, logger="liverwild"):
        train("b")  # the same command again resumes
        assert "resuming after epoch 1" in caplog.text
        caplog.clear()
        again = train("b")
    assert "nothing to do" in caplog.records[-1].getMessage() and again["epochs"] == 3  # once more does nothing
    with pytest.raises(LiverwildError, match="another configuration \\(lr differ\\)"):
        train("b", config.updated(lr=0.5))
    with pytest.raises(LiverwildError, match="another configuration \\(lr differ\\)"):  # --continue as well
        train_fold(
            FOLD,
            preprocessed=str(preprocessed),
            results=str(tmp_path / "b"),
            device="cpu",
            config=config.updated(lr=0.5),
            progress=False,
            continue_training=True,
        )
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    source = next(iter(fold["val"]))
    moved = {**fold, "val": {**fold["val"], source: fold["val"][source][:-1]}}  # splits.json changed since
    for continuing in (False, True):
        with pytest.raises(LiverwildError, match="trained on other data \\(the fold's cases \\(splits.json\\) changed"):
            TRAINERS["ContrastiveDistillationTrainer"](FOLD, moved, preprocessed, tmp_path / "b", config, "cpu").fit(
                continue_training=continuing, progress=False
            )
    name = next((tmp_path / "a" / FOLD).iterdir()).name
    a = torch.load(tmp_path / "a" / FOLD / name / "checkpoint_final.pth", weights_only=False)
    b = torch.load(tmp_path / "b" / FOLD / name / "checkpoint_final.pth", weights_only=False)
    assert a["epochs_done"] == b["epochs_done"] == 3
    for key, value in a["network"].items():
        assert torch.equal(value, b["network"][key]), key
    assert [r["val_dice"] for r in a["history"]] == [r["val_dice"] for r in b["history"]]


@pytest.mark.parametrize(
    "name, check",
    [
        ("NoDistillationTrainer", lambda t: t.config.loss_weights["distillation"] == 0),
        ("NoFocalTrainer", lambda t: t.config.loss_weights["focal"] == 0),
        ("NoTverskyTrainer", lambda t: t.config.loss_weights["tversky"] == 0),
        ("NoLogIoUTrainer", lambda t: t.config.loss_weights["log_iou"] == 0),
        ("NoEntropyTrainer", lambda t: t.config.loss_weights["entropy"] == 0),
        ("Positives2ApartTrainer", lambda t: t.config.sampling == "neighbours2"),
        ("TwoNegativesTrainer", lambda t: t.config.sampling == "two_negatives"),
        ("Scans5PerSourceTrainer", lambda t: t.config.max_scans_per_source == 5),
    ],
)
def test_variants_change_one_thing(preprocessed, tmp_path, name, check):
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    trainer = TRAINERS[name](FOLD, fold, preprocessed, tmp_path, small(), "cpu")
    assert check(trainer)
    base = SliceTrainerConfig().to_json()
    changed = {k for k, v in trainer.config.to_json().items() if v != small().to_json()[k]}
    assert len(changed) == 1 and changed <= set(base)


def test_variant_trains_a_step_without_its_term(preprocessed, tmp_path):
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    trainer = TRAINERS["TwoNegativesTrainer"](FOLD, fold, preprocessed, tmp_path, small(), "cpu")
    trainer.initialize()
    batch = next(iter(trainer.loader(0)))
    assert batch["negatives"].shape[1] == 2
    stats = trainer.train_step(batch)
    assert "loss_distillation" in stats
    trainer = TRAINERS["NoDistillationTrainer"](FOLD, fold, preprocessed, tmp_path, small(), "cpu")
    trainer.initialize()
    assert "loss_distillation" not in trainer.train_step(next(iter(trainer.loader(0))))


def test_scan_cap_limits_training_cases(preprocessed, tmp_path):
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    trainer = TRAINERS["ContrastiveDistillationTrainer"](
        FOLD, fold, preprocessed, tmp_path, small(max_scans_per_source=1), "cpu"
    )
    trainer.build_datasets()
    assert len(trainer.train_set.cases) == 2  # one per source


def test_dataset_items_are_deterministic_and_from_the_same_scan(preprocessed, tmp_path):
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    trainer = TRAINERS["ContrastiveDistillationTrainer"](FOLD, fold, preprocessed, tmp_path, small(), "cpu")
    trainer.build_datasets()
    ds = trainer.train_set
    a, b = ds[5], ds[5]
    assert all(torch.equal(a[k], b[k]) for k in a)
    draws = []
    for epoch in range(6):  # other epochs draw other views/partners
        ds.epoch = epoch
        draws.append(tuple(float(ds[5][k].sum()) for k in ("slice", "positives")))
    assert len(set(draws)) > 1
    case = ds.cases[ds.index[5][0]]
    si = ds.index[5][1]
    candidates = [
        torch.from_numpy(case.features[v, i].astype("float32"))
        for v in range(case.n_views)
        for i in (si - 1, si + 1)
        if 0 <= i < case.n_slices
    ]
    assert all(any(torch.equal(positive, c) for c in candidates) for positive in a["positives"])


def test_errors_name_the_command(preprocessed, tmp_path, capsys):
    assert train_cli.main(["nope", "--preprocessed", str(preprocessed), "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown fold 'nope'" in err and FOLD in err
    with pytest.raises(LiverwildError, match="unknown fold 'nope'"):
        train_fold("nope", preprocessed=str(preprocessed), results=str(tmp_path))
    splits = load_splits(preprocessed / "splits.json")
    fold = dict(splits["folds"][FOLD])
    fold["train"] = {"PhantomNativeCT": ["phantomnativect_404"]}
    with pytest.raises(LiverwildError, match="run lw_plan_and_preprocess -d PhantomNativeCT"):
        SliceTrainer(FOLD, fold, preprocessed, tmp_path, small(), "cpu").build_datasets()


def test_plan_mismatch_between_sources_is_an_error(preprocessed, tmp_path):
    import shutil

    pre = tmp_path / "pre"
    shutil.copytree(preprocessed, pre)
    plans = json.loads((pre / "PhantomPortalCT" / "plans.json").read_text(encoding="utf-8"))
    plans["augmentation"]["views_per_slice"] = 3
    (pre / "PhantomPortalCT" / "plans.json").write_text(json.dumps(plans))
    fold = load_splits(pre / "splits.json")["folds"][FOLD]
    with pytest.raises(LiverwildError, match="different teachers"):
        SliceTrainer(FOLD, fold, pre, tmp_path, small(), "cpu")


def test_online_augmentation_runs_the_teacher_in_the_loop(preprocessed, tmp_path):
    """Items are freshly augmented original slices (deterministic per epoch and item, new each epoch);
    the teacher turns an un-augmented batch into exactly the cached view-0 features; a few steps train."""
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    trainer = get_trainer("OnlineAugmentationTrainer")(
        FOLD, fold, preprocessed, tmp_path, small(epochs=1, steps_per_epoch=3, batch_size=4), "cpu"
    )
    assert trainer.config.augmentation == "online"
    trainer.build_datasets()
    ds = trainer.train_set
    a, b = ds[7], ds[7]
    assert set(a) == {"slice", "label", "positive_slices", "negative_slices"}
    assert a["positive_slices"].shape[0] == 2  # both neighbours, each augmented afresh
    assert all(torch.equal(a[k], b[k]) for k in a)
    ds.epoch = 1
    assert not torch.equal(ds[7]["slice"], a["slice"])  # augmented afresh each epoch
    case, si = ds.cases[ds.index[7][0]], ds.index[7][1]
    plain = torch.from_numpy(case.slices[0, [si, si, si]].astype("float32"))[:, None]
    trainer.network = None
    batch = trainer.prepare_batch(
        {
            "slice": plain[:1],
            "label": plain[:1],
            "positive_slices": plain[None, 1:2],
            "negative_slices": plain[None, 2:],
        }
    )
    cached = torch.from_numpy(case.features[0, si].astype("float32"))
    assert torch.allclose(batch["features"][0], cached, atol=2e-2)  # float16 cache vs float32
    assert batch["negatives"].shape == (1, 1, *cached.shape) and batch["positives"].shape == (1, 1, *cached.shape)
    result = trainer.fit(progress=False)
    assert result["epochs"] == 1


def test_second_training_of_the_same_run_fails_at_once(preprocessed, tmp_path):
    from badinputs import lock_held_by_another_process

    from liverwild.locking import LockedError

    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    trainer = get_trainer("ContrastiveDistillationTrainer")(FOLD, fold, preprocessed, tmp_path, small(epochs=1), "cpu")
    with lock_held_by_another_process(trainer.output, "lw_train") as pid:
        with pytest.raises(LockedError, match=f"process {pid}"):
            trainer.fit(progress=False)
        assert not (trainer.output / "checkpoint_latest.pth").exists()


@pytest.mark.slow
def test_full_disk_while_writing_a_checkpoint_is_a_clear_error(preprocessed, tmp_path):
    import subprocess

    from badinputs import file_size_limit

    result = subprocess.run(
        [
            "lw_train",
            FOLD,
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--device",
            "cpu",
            "--no-progress",
            "--preprocessed",
            str(preprocessed),
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        preexec_fn=file_size_limit(20_000),
        timeout=600,
    )
    assert result.returncode == 1 and "cannot be written" in result.stderr, result.stderr[-2000:]
    written = [p for p in tmp_path.rglob("*.pth")]
    assert written == [] and not list(tmp_path.rglob(".*tmp*"))


def test_rerun_removes_what_a_killed_run_left_half_written(phantom_study, trained_model, tmp_path):
    """A run killed inside an atomic write leaves ``.<name>.<random>.lw.tmp<suffix>``; the same command
    again (here: the finished run, so nothing to train) removes it, and keeps every real file."""
    import shutil

    model = Path(trained_model["output"])
    results = tmp_path / "results"
    copy = results / TRAINED_FOLD / model.name
    shutil.copytree(model, copy)
    stale = [copy / ".progress.k3j2x.lw.tmp.png", copy / ".checkpoint_latest.pth.a9q1.lw.tmp.pth"]
    for path in stale:
        path.write_bytes(b"half")
    kept = sorted(p.name for p in copy.iterdir() if p not in stale)
    summary = train_fold(
        TRAINED_FOLD, preprocessed=str(phantom_study / "pre"), results=str(results), device="cpu", config=small()
    )
    assert summary["output"] == str(copy)
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in copy.iterdir()) == kept


def test_lw_train_exports_a_finished_2d_model_for_the_lean_runtime(phantom_study, trained_model, tmp_path):
    """lw_train ends with the model's ONNX export (here on the finished run: nothing to train), which
    lw_predict's default runtime then takes; with --no-export nothing is written and torch predicts."""
    import shutil

    from liverwild.inference import predict
    from liverwild.inference.onnx_runtime import export_paths, export_status

    model = Path(trained_model["output"])
    results = tmp_path / "results"
    copy = results / TRAINED_FOLD / model.name
    shutil.copytree(model, copy, ignore=shutil.ignore_patterns("*.onnx", "*.onnx.json"))
    same = ["--epochs", "8", "--lr", "0.01", "--seed", "0", "--set", "val_batch_size=16", "--device", "cpu"]
    folders = ["--preprocessed", str(phantom_study / "pre"), "--results", str(results), "--no-progress"]
    scan = next((phantom_study / "raw" / "PhantomT2MR" / "imagesTr").glob("*.nii.gz"))
    assert train_cli.main([TRAINED_FOLD, *same, *folders, "--no-export"]) == 0
    assert not any(path.exists() for path in export_paths(copy))
    assert predict(scan, tmp_path / "torch", model=str(copy), device="cpu", progress=False)["runtime"] == "torch"
    assert train_cli.main([TRAINED_FOLD, *same, *folders]) == 0
    assert export_status(copy)[0] is not None, export_status(copy)[1]
    assert predict(scan, tmp_path / "onnx", model=str(copy), device="cpu", progress=False)["runtime"] == "onnx"


def test_a_failed_export_after_training_is_a_warning(trained_model, tmp_path, monkeypatch, caplog):
    """Whatever breaks in the export (here a tracer error) leaves the trained model and the run alone."""
    import shutil

    from liverwild.inference import export

    copy = tmp_path / "model"
    shutil.copytree(trained_model["output"], copy, ignore=shutil.ignore_patterns("*.onnx", "*.onnx.json"))

    def broken(folder):
        raise RuntimeError("tracer: unsupported operator\nsecond line")

    monkeypatch.setattr(export, "export_onnx", broken)
    assert export.export_after_training(copy) is None
    assert "ONNX export failed (RuntimeError: tracer: unsupported operator)" in caplog.text
    assert (copy / "checkpoint_best.pth").is_file() and not (copy / "checkpoint_best.onnx").exists()


# ---- every option acts or is refused (issue 25) ----------------------------------------------------


def test_set_checks_each_value_against_its_field_type():
    from liverwild.errors import ConfigurationError

    parsed = parse_settings(
        ["lr=1", "decoder_channels=[8,4,2,1,1]", 'organ_classes=["liver","bowel"]', "inner_lr=null", "amp=false"]
    )
    assert parsed == {
        "lr": 1.0,
        "decoder_channels": (8, 4, 2, 1, 1),
        "organ_classes": ["liver", "bowel"],
        "inner_lr": None,
        "amp": False,
    }
    assert isinstance(parsed["lr"], float)
    refused = {
        "unet_depth=four": 'unet_depth expects an integer; the value given is "four"',
        "unet_depth=3.5": "unet_depth expects an integer; the value given is 3.5",
        "amp=1": "amp expects true or false; the value given is 1",
        "lr=fast": 'lr expects a number; the value given is "fast"',
        "max_scans_per_source=all": "max_scans_per_source expects an integer or null",
        'decoder_channels=[8,"x"]': "decoder_channels expects a JSON list of integers",
        "organ_classes=liver": "organ_classes expects a JSON list of strings or null",
        "loss_weights=0": "loss_weights expects a JSON object of numbers",
        'loss_weights={"focl":1}': "loss_weights has no term 'focl'",
        "sampling=neighbors": "sampling expects one of neighbours, neighbours2, two_negatives",
        "feature_placement=bottleneck": "feature_placement expects one of encoder, decoder",
    }
    for item, message in refused.items():
        with pytest.raises(ConfigurationError, match=re.escape(f"--set {item}: {message}")):
            parse_settings([item])
    with pytest.raises(ConfigurationError, match="epochs expects an integer"):
        SliceTrainerConfig().updated(epochs="3")  # the Python route is checked too


def test_set_refuses_a_field_the_trainer_does_not_read(tmp_path, capsys):
    """A field of another family changes nothing for the chosen trainer: refused at once, naming both."""
    folders = ["--preprocessed", str(tmp_path), "--results", str(tmp_path)]
    cases = {
        ("ContrastiveDistillationTrainer", "unet3d_depth=3"): "does not read unet3d_depth (read by Siamese3D",
        ("ContrastiveDistillationTrainer", "unet_channels=16"): "does not read unet_channels (read by",
        ("SupervisedUNetTrainer", "inner_lr=1e-3"): "does not read inner_lr (read by MASFTrainer, TaskAugTrainer)",
        ("UNet3DTrainer", "focal_gamma=2"): "does not read focal_gamma",
        ("UNet3DTrainer", "feature_weight=1"): "does not read feature_weight",
        ("DomainRandomizationTrainer", "augmentation=online"): "does not read augmentation",
        ("SupervisedUNetTrainer", 'loss_weights={"distillation":0}'): "does not read loss_weights.distillation",
        ("NoDistillationTrainer", 'loss_weights={"distillation":1}'): "always sets loss_weights.distillation = 0.0",
        ("OnlineAugmentationTrainer", "augmentation=cached"): 'always sets augmentation = "online"',
        ("Siamese3DDecoderTrainer", "feature_placement=encoder"): 'always sets feature_placement = "decoder"',
    }
    for (trainer, setting), message in cases.items():
        assert train_cli.main([FOLD, "-tr", trainer, "--set", setting, *folders]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {trainer} ") and message in err, err
    # what the trainer reads is accepted, and a variant's own value may be repeated
    check_changes(get_trainer("MASFTrainer"), {"unet_channels": 8, "inner_lr": 1e-3})
    check_changes(get_trainer("NoDistillationTrainer"), {"loss_weights": {"distillation": 0.0, "focal": 2.0}})


def test_every_trainer_declares_real_fields():
    """The groups a trainer reads name real fields of its family's configuration (``loss_weights.<term>``:
    a real term), every field is read by some trainer, a trainer's recipe, overrides and quick values are
    fields it reads, and the two families share only the loop's fields."""
    from dataclasses import fields

    from liverwild.losses.sampling import SAMPLING_STRATEGIES
    from liverwild.training.config import CHOICES, FIELD_GROUPS, LOSS_TERMS, TrainerConfig, setting_names

    def settable(family) -> set:
        names = {f.name for f in fields(family)}
        return names - {"loss_weights"} | (
            {f"loss_weights.{t}" for t in LOSS_TERMS} if "loss_weights" in names else set()
        )

    real = settable(SliceTrainerConfig) | settable(VolumeTrainerConfig)
    assert settable(SliceTrainerConfig) & settable(VolumeTrainerConfig) == settable(TrainerConfig)
    assert settable(TrainerConfig) == set(FIELD_GROUPS["loop"])
    assert set(LOSS_TERMS) == set(SliceTrainerConfig().loss_weights)
    assert CHOICES["sampling"] == tuple(SAMPLING_STRATEGIES)
    for group, members in FIELD_GROUPS.items():
        assert members and set(members) <= real, (group, set(members) - real)
    assert set().union(*FIELD_GROUPS.values()) == real  # no field without a reader
    for name, cls in TRAINERS.items():
        assert cls.config_groups <= set(FIELD_GROUPS), (name, cls.config_groups - set(FIELD_GROUPS))
        assert cls.config_fields() <= settable(cls.config_class), (
            name,
            cls.config_fields() - settable(cls.config_class),
        )
        assert isinstance(cls.default_config(), cls.config_class)
        assert "loop" in cls.config_groups
        for values in (cls.recipe, cls.overrides, cls.quick):
            assert set(setting_names(values)) <= cls.config_fields(), (name, values)
    assert set().union(*(cls.config_fields() for cls in TRAINERS.values())) == real


def test_a_trainer_refuses_another_familys_configuration(preprocessed, tmp_path):
    """A configuration object of the other family is refused at once, naming both classes."""
    from liverwild.errors import ConfigurationError

    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    with pytest.raises(
        ConfigurationError,
        match="ContrastiveDistillationTrainer trains with a SliceTrainerConfig, not a VolumeTrainerConfig",
    ):
        get_trainer("ContrastiveDistillationTrainer")(FOLD, fold, preprocessed, tmp_path, VolumeTrainerConfig(), "cpu")


TWO_D_TRAINERS = sorted(name for name, cls in TRAINERS.items() if cls.configuration == "2d")


@pytest.mark.parametrize("name", TWO_D_TRAINERS)
def test_trainer_reads_exactly_its_declared_fields(preprocessed, tmp_path, name):
    """What a 2D trainer reads while it sets up and trains is what it declares (``config_groups``); the
    loop's fields are also read later (epochs, validation), so only their absence from ``seen`` is allowed."""
    from liverwild.training.config import FIELD_GROUPS

    fold_name = "loo_PhantomPortalCT"  # sources NativeCT (CT) and T2MR (MR): every trainer's needs
    fold = load_splits(preprocessed / "splits.json")["folds"][fold_name]
    tiny = dict(batch_size=2, steps_per_epoch=1, num_workers=0, unet_channels=4, unet_depth=2, pixels_per_class=8)
    config = get_trainer(name).default_config().updated(**{**tiny, "seed": 0, "lr": 1e-3})
    trainer = get_trainer(name)(fold_name, fold, preprocessed, tmp_path, config, "cpu")
    seen = fields_read_in_one_step(trainer)
    declared = trainer.config_fields()
    assert seen - declared == set(), f"{name} reads undeclared fields"
    assert declared - set(FIELD_GROUPS["loop"]) - seen == set(), f"{name} declares fields it does not read"


def test_rerun_with_a_field_the_trainer_does_not_read_is_the_same_run(phantom_study, trained_model, tmp_path):
    """Fields a trainer does not read are not compared when a run is re-run (formerly: 'another
    configuration'); a field it reads still is."""
    import shutil

    model = Path(trained_model["output"])
    results = tmp_path / "results"
    shutil.copytree(model, results / TRAINED_FOLD / model.name)
    run = dict(preprocessed=str(phantom_study / "pre"), results=str(results), device="cpu", progress=False)
    again = train_fold(TRAINED_FOLD, config=small(unet_channels=8, inner_lr=0.5), **run)  # the baselines' fields
    assert again["epochs"] == trained_model["epochs"]  # finished: nothing to do
    with pytest.raises(LiverwildError, match="another configuration \\(b_pos differ\\)"):
        train_fold(TRAINED_FOLD, config=small(b_pos=0.3), **run)
    with pytest.raises(LiverwildError, match="unet3d_depth: not a field of SliceTrainerConfig"):
        small(unet3d_depth=3)  # the other family's fields are not even in a 2D configuration


def test_each_slice_is_contrasted_with_both_neighbours(preprocessed):
    """The paper's positives are slices i−1 and i+1: an item carries both neighbours' cached features (at a
    scan's end the one neighbour it has, twice); ``positive_pairs="one"`` draws one of them."""
    from liverwild.training import SliceDataset

    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    source = fold["sources"][0]
    case_dir = next(p for p in (preprocessed / source).glob("*/*") if (p / "features.npy").is_file())
    both = SliceDataset([case_dir], use_views=False)
    features = np.load(case_dir / "features.npy", mmap_mode="r")[0]
    n = features.shape[0]
    middle = both[n // 2]
    expected = np.stack([features[n // 2 - 1], features[n // 2 + 1]]).astype(np.float32)
    assert np.array_equal(middle["positives"].numpy(), expected)
    first = both[0]
    assert np.array_equal(first["positives"].numpy(), np.stack([features[1], features[1]]).astype(np.float32))
    one = SliceDataset([case_dir], use_views=False, positive_pairs="one")[n // 2]["positives"].numpy()
    assert one.shape[0] == 1 and any(np.array_equal(one[0], e) for e in expected)


def steps_of(trainer, batches: list) -> tuple[list, dict]:
    """The losses of ``batches`` trained in order, and the network's parameters after them (on the CPU)."""
    losses = []
    for batch in batches:
        trainer.begin_step()
        stats = trainer.train_step({k: v.to(trainer.device) for k, v in batch.items()})
        losses.append(float(stats["loss"]))
    return losses, {k: v.detach().cpu().clone() for k, v in trainer.network.state_dict().items()}


def compiled_against_eager(preprocessed, tmp_path, device: str, mode: str) -> None:
    """Three training steps on the same batches, eager and ``torch.compile(mode=mode)``, without dropout
    (compiled kernels draw other dropout masks): the same losses (relative 1e-4) and parameters (within 1e-4,
    against updates of about lr = 1e-2 per step; summation orders differ) — float tolerance."""
    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    config = small(batch_size=4, steps_per_epoch=3, head_dropout=0.0, decoder_dropout=0.0, amp=False)
    runs = {}
    for name, changes in (("eager", {}), ("compiled", {"compile": True, "compile_mode": mode})):
        trainer = TRAINERS["ContrastiveDistillationTrainer"](
            FOLD, fold, preprocessed, tmp_path / name, config.updated(**changes), device
        )
        trainer.initialize()
        batches = list(trainer.loader(0))
        runs[name] = steps_of(trainer, batches)
        assert trainer.captures_cuda_graphs == (name == "compiled" and device == "cuda" and mode != "default")
    np.testing.assert_allclose(runs["compiled"][0], runs["eager"][0], rtol=1e-4)
    for key, value in runs["eager"][1].items():
        if value.is_floating_point():
            torch.testing.assert_close(
                runs["compiled"][1][key], value, rtol=1e-3, atol=1e-4, msg=lambda m, key=key: f"{key}: {m}"
            )
    assert runs["eager"][0][0] != runs["eager"][0][-1], "the steps changed nothing: the comparison would say nothing"


@pytest.mark.slow
def test_compiled_step_agrees_with_eager_on_cpu(preprocessed, tmp_path):
    compiled_against_eager(preprocessed, tmp_path, "cpu", "reduce-overhead")  # inductor's kernels, no CUDA graphs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_step_agrees_with_eager(preprocessed, tmp_path):
    compiled_against_eager(preprocessed, tmp_path, "cuda", "reduce-overhead")


def test_compile_mode_without_compile_is_refused(preprocessed, tmp_path):
    from liverwild.errors import ConfigurationError

    fold = load_splits(preprocessed / "splits.json")["folds"][FOLD]
    with pytest.raises(ConfigurationError, match="compile_mode=reduce-overhead acts only on a compiled network"):
        trainer = TRAINERS["ContrastiveDistillationTrainer"](
            FOLD, fold, preprocessed, tmp_path, small(compile_mode="reduce-overhead"), "cpu"
        )
        trainer.initialize()
    with pytest.raises(ConfigurationError, match="compile_mode expects one of default, reduce-overhead"):
        small(compile_mode="fast")
