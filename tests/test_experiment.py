"""lw_experiment: protocols end to end on tiny phantoms, resumption, and the report's statistics."""

import json

import pandas as pd
import pytest
from conftest import preprocess_phantoms

from liverwild.cli import experiment as experiment_cli
from liverwild.experiments.protocols import Plan, Run, make_plan
from liverwild.experiments.report import dice_table
from liverwild.phantoms import write_phantoms

DOMAINS = ["PhantomNativeCT", "PhantomPortalCT", "PhantomT2MR"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    write_phantoms(root / "raw", DOMAINS, 3, 0, 0.3, 6, workers=1, progress=False)
    write_phantoms(root / "raw", ["PhantomArterialCT"], 21, 0, 0.3, 6, workers=1, progress=False)
    preprocess_phantoms(root, DOMAINS + ["PhantomArterialCT"], views=0)
    return root


def cli(folders, *args):
    return experiment_cli.main(
        [
            *args,
            "--quick",
            "--device",
            "cpu",
            "--raw",
            str(folders / "raw"),
            "--preprocessed",
            str(folders / "pre"),
            "--results",
            str(folders / "res"),
        ]
    )


@pytest.mark.slow
def test_multi_dg_quick_runs_every_fold_and_resumes(folders):
    assert cli(folders, "multi-dg") == 0
    out = folders / "res" / "experiments" / "multi-dg"
    table = pd.read_csv(out / "results.csv")
    assert sorted(table.target.unique()) == sorted(DOMAINS + ["PhantomArterialCT"])
    assert len(table) == 3 * 3 + 21 and table.dice.between(0, 1).all()
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| trainer | PhantomArterialCT | PhantomNativeCT | PhantomPortalCT | PhantomT2MR |" in report
    assert "QUICK run" in report and "MSSD (cm)" in report
    run_json = out / "runs" / "loo_PhantomT2MR" / "ContrastiveDistillationTrainer" / "seed0" / "run.json"
    before = run_json.stat().st_mtime_ns
    assert json.loads(run_json.read_text(encoding="utf-8"))["target"] == "PhantomT2MR"
    assert cli(folders, "multi-dg") == 0  # finished runs are reused
    assert run_json.stat().st_mtime_ns == before


@pytest.mark.slow
def test_seeds_quick_reports_the_spread(folders):
    assert cli(folders, "seeds", "--fold", "loo_PhantomT2MR") == 0
    out = folders / "res" / "experiments" / "seeds"
    table = pd.read_csv(out / "results.csv")
    assert sorted(table.seed.unique()) == [0, 1, 2] and set(table.target) == {"PhantomT2MR"}
    assert "| s.d. of the seed means |" in (out / "report.md").read_text(encoding="utf-8")
    models = [
        json.loads(p.read_text(encoding="utf-8"))["config"]["seed"] for p in (out / "models").rglob("config.json")
    ]
    assert sorted(models) == [0, 1, 2]


@pytest.mark.slow
def test_interrupted_training_resumes_inside_the_experiment(folders):
    """A run whose training stopped after one epoch continues from checkpoint_latest.pth."""
    from liverwild.training import TrainerConfig, train_fold

    out = folders / "res" / "experiments" / "resume"
    config = TrainerConfig().updated(epochs=1, steps_per_epoch=4, batch_size=4)
    first = train_fold(
        "loo_PhantomNativeCT",
        preprocessed=str(folders / "pre"),
        results=str(out / "models" / "seed0"),
        device="cpu",
        config=config,
        progress=False,
    )
    assert cli(folders, "multi-dg", "-o", str(out)) == 0
    log = pd.read_csv(f"{first['output']}/log.csv")
    assert list(log.epoch) == [0, 1]  # epoch 0 kept, epoch 1 added


def test_scan_caps_of_10_and_15_per_source_train(folders):
    from liverwild.training import TrainerConfig, get_trainer
    from preprocessing.splits import load_splits

    fold = load_splits(folders / "pre" / "splits.json")["folds"]["loo_PhantomT2MR"]
    assert len(fold["train"]["PhantomArterialCT"]) == 16  # 21 cases, 5 held out
    for name, cap in (("Scans10PerSourceTrainer", 10), ("Scans15PerSourceTrainer", 15)):
        trainer = get_trainer(name)(
            "loo_PhantomT2MR",
            fold,
            folders / "pre",
            folders / "res" / "caps",
            TrainerConfig().updated(epochs=1, steps_per_epoch=2, batch_size=4),
            "cpu",
        )
        trainer.build_datasets()
        per_source = pd.Series([c.folder.parent.parent.name for c in trainer.train_set.cases]).value_counts()
        assert per_source["PhantomArterialCT"] == cap and per_source["PhantomNativeCT"] == 2
        assert trainer.fit(progress=False)["epochs"] == 1


def test_bold_only_where_significant():
    rows = []
    for case in range(8):
        rows += [
            {"target": "T", "trainer": "Ref", "seed": 0, "case": f"c{case}", "dice": 0.80 + 0.01 * case},
            {
                "target": "T",
                "trainer": "Better",
                "seed": 0,
                "case": f"c{case}",
                "dice": 0.85 + 0.01 * case + 0.002 * (case % 2),
            },
            {"target": "U", "trainer": "Ref", "seed": 0, "case": f"c{case}", "dice": 0.80 + 0.01 * case},
            {
                "target": "U",
                "trainer": "Better",
                "seed": 0,
                "case": f"c{case}",
                "dice": 0.80 + 0.01 * case + (0.01 if case % 2 else -0.009),
            },
        ]
    table = pd.DataFrame(rows)
    plan = Plan("multi-dg", [Run("loo_T", "Ref", 0)], reference="Ref")
    lines = dice_table(table, plan)
    better = next(line for line in lines if line.startswith("| Better"))
    assert better.split("|")[2].strip().startswith("**0.886")  # T: +0.05 on every scan → bold
    assert "**" not in better.split("|")[3]  # U: a coin-flip difference → not bold
    with pytest.raises(Exception, match="unknown protocol"):
        make_plan("bogus", {"folds": {}})


def test_plans_refuse_episodic_baselines_on_single_source_folds_and_unknown_trainers():
    splits = {
        "folds": {
            "single_A_to_B": {"sources": ["A"], "target": "B"},
            "loo_C": {"sources": ["A", "B"], "target": "C", "auto": True},
            "loo_D": {"sources": ["A", "B"], "target": "D", "auto": True},
        }
    }
    plan = make_plan("single-dg", splits, ["DualNormTrainer", "DomainRandomizationTrainer", "SupervisedUNetTrainer"])
    assert {r.trainer for r in plan.runs} == {"DualNormTrainer", "DomainRandomizationTrainer", "SupervisedUNetTrainer"}
    assert plan.reference == "DualNormTrainer"
    for trainer in ("MASFTrainer", "TaskAugTrainer"):
        with pytest.raises(Exception, match=f"{trainer} needs at least 2 source datasets"):
            make_plan("single-dg", splits, [trainer])
    assert [r.fold for r in make_plan("multi-dg", splits, ["MASFTrainer"], fold=["loo_D"]).runs] == ["loo_D"]
    with pytest.raises(Exception, match="unknown trainer"):
        make_plan("multi-dg", splits, ["NoSuchTrainer"])


@pytest.mark.slow
def test_baselines_run_in_both_protocols(folders):
    unet = ["--set", "unet_channels=4", "unet_depth=2"]
    assert (
        cli(
            folders,
            "multi-dg",
            "--fold",
            "loo_PhantomT2MR",
            "--trainers",
            "ContrastiveDistillationTrainer",
            "MASFTrainer",
            "TaskAugTrainer",
            *unet,
        )
        == 0
    )
    out = folders / "res" / "experiments" / "multi-dg"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| MASFTrainer |" in report.split("## Time")[1] and "(p = " in report
    assert (
        cli(
            folders,
            "single-dg",
            "--trainers",
            "ContrastiveDistillationTrainer",
            "DualNormTrainer",
            "DomainRandomizationTrainer",
            *unet,
        )
        == 0
    )
    table = pd.read_csv(folders / "res" / "experiments" / "single-dg" / "results.csv")
    assert set(table.trainer) == {"ContrastiveDistillationTrainer", "DualNormTrainer", "DomainRandomizationTrainer"}
    assert set(table.target) == {
        "PhantomArterialCT → PhantomT2MR",
        "PhantomNativeCT → PhantomT2MR",
        "PhantomPortalCT → PhantomT2MR",
    }
    assert cli(folders, "single-dg", "--trainers", "MASFTrainer", *unet) == 1  # refused before training


def test_quick_refuses_the_settings_it_would_replace():
    from liverwild.errors import ConfigurationError
    from liverwild.experiments.runner import run_config

    with pytest.raises(ConfigurationError, match="--quick sets --epochs"):
        run_config("ContrastiveDistillationTrainer", settings={"epochs": 30}, quick=True)
    chosen = run_config("ContrastiveDistillationTrainer", settings={"lr": 0.01}, quick=True)
    assert (chosen.epochs, chosen.lr) == (2, 0.01)  # quick's schedule, the user's learning rate
    assert run_config("ContrastiveDistillationTrainer", settings={"epochs": 30}).epochs == 30


def test_each_trainer_takes_the_settings_it_reads_and_a_setting_none_reads_is_refused():
    """lw_experiment's --set is for every run that reads the field: a U-Net field leaves the method's row as
    it is (formerly recorded in its configuration, changing nothing); one no row reads is refused."""
    from liverwild.errors import ConfigurationError
    from liverwild.experiments.runner import run_config, trainer_settings

    settings = {"epochs": 3, "unet_channels": 4, "loss_weights": {"distillation": 0.5, "focal": 2.0}}
    shares = trainer_settings(["ContrastiveDistillationTrainer", "MASFTrainer", "MASFTrainer"], settings)
    assert shares == {
        "ContrastiveDistillationTrainer": {"epochs": 3, "loss_weights": {"distillation": 0.5, "focal": 2.0}},
        "MASFTrainer": {"epochs": 3, "unet_channels": 4, "loss_weights": {"focal": 2.0}},
    }
    method = run_config("ContrastiveDistillationTrainer", settings=shares["ContrastiveDistillationTrainer"])
    assert method.unet_channels == 32 and method.loss_weights["distillation"] == 0.5
    with pytest.raises(ConfigurationError, match="none of the experiment's trainers .* reads unet_channels"):
        trainer_settings(["ContrastiveDistillationTrainer", "NoFocalTrainer"], {"unet_channels": 4})
    with pytest.raises(ConfigurationError, match='TwoNegativesTrainer always sets sampling = "two_negatives"'):
        trainer_settings(["ContrastiveDistillationTrainer", "TwoNegativesTrainer"], {"sampling": "neighbours2"})
    with pytest.raises(ConfigurationError, match="ContrastiveDistillationTrainer does not read unet_channels"):
        run_config("ContrastiveDistillationTrainer", settings={"unet_channels": 4})
