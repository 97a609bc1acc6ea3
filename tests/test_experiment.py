"""lw_experiment: protocols end to end on tiny phantoms, resumption, and the report's statistics."""

import json
import logging

import pandas as pd
import pytest
import torch
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
    from liverwild.training import SliceTrainerConfig, train_fold

    out = folders / "res" / "experiments" / "resume"
    config = SliceTrainerConfig().updated(epochs=1, steps_per_epoch=4, batch_size=4)
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
    from liverwild.training import SliceTrainerConfig, get_trainer
    from preprocessing.splits import load_splits

    fold = load_splits(folders / "pre" / "splits.json")["folds"]["loo_PhantomT2MR"]
    assert len(fold["train"]["PhantomArterialCT"]) == 16  # 21 cases, 5 held out
    for name, cap in (("Scans10PerSourceTrainer", 10), ("Scans15PerSourceTrainer", 15)):
        trainer = get_trainer(name)(
            "loo_PhantomT2MR",
            fold,
            folders / "pre",
            folders / "res" / "caps",
            SliceTrainerConfig().updated(epochs=1, steps_per_epoch=2, batch_size=4),
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
    from liverwild.experiments.requests import run_config

    with pytest.raises(ConfigurationError, match="--quick sets --epochs"):
        run_config("ContrastiveDistillationTrainer", settings={"epochs": 30}, quick=True)
    chosen = run_config("ContrastiveDistillationTrainer", settings={"lr": 0.01}, quick=True)
    assert (chosen.epochs, chosen.lr) == (2, 0.01)  # quick's schedule, the user's learning rate
    assert run_config("ContrastiveDistillationTrainer", settings={"epochs": 30}).epochs == 30


# ---- stale runs: a finished run is reused only when it is the one asked for --------------------------

SMALL = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2"]  # a full (not --quick) request, kept tiny
RUN = ("runs", "loo_PhantomT2MR", "ContrastiveDistillationTrainer", "seed0")


def experiment(folders, out, *args):
    """lw_experiment multi-dg on one fold into ``out``, with the caller's options (no forced --quick)."""
    common = ["--device", "cpu", "--raw", str(folders / "raw"), "--preprocessed", str(folders / "pre")]
    return experiment_cli.main(["multi-dg", "--fold", "loo_PhantomT2MR", *args, *common, "-o", str(out)])


def checkpoint(out):
    return next((out / "models" / "seed0" / "loo_PhantomT2MR").glob("*/checkpoint_latest.pth"))


def redone(caplog) -> list:
    return [r.getMessage() for r in caplog.records if ": redone — " in r.getMessage()]


def test_a_quick_run_is_redone_for_a_full_request_and_its_report_is_not_quick(folders, tmp_path, caplog):
    out = tmp_path / "exp"
    assert experiment(folders, out, "--quick") == 0
    assert "QUICK run" in (out / "report.md").read_text(encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        assert experiment(folders, out, *SMALL) == 0
    meta = json.loads(out.joinpath(*RUN, "run.json").read_text(encoding="utf-8"))
    assert meta["config"]["steps_per_epoch"] == 2 and meta["configuration"]["quick"] is False  # not the quick run's
    assert list(pd.read_csv(checkpoint(out).parent / "log.csv").epoch) == [0]  # retrained: 1 epoch, not quick's 2
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "QUICK" not in report and "Excluded" not in report
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["quick"] is False
    (message,) = redone(caplog)
    assert "config.epochs" in message and "quick" in message and "retrained from scratch" in message
    (old,) = (out / "stale").glob("*/" + "/".join(RUN) + "/run.json")  # the quick run, set aside
    assert json.loads(old.read_text(encoding="utf-8"))["configuration"]["quick"] is True
    assert len(list((out / "stale").glob("*/models/seed0/loo_PhantomT2MR/*/checkpoint_final.pth"))) == 1


def test_an_unchanged_request_reuses_the_run_and_a_new_evaluation_keeps_the_model(folders, tmp_path, caplog):
    out = tmp_path / "exp"
    assert experiment(folders, out, *SMALL) == 0
    run_json = out.joinpath(*RUN, "run.json")
    before = (run_json.stat().st_mtime_ns, checkpoint(out).stat().st_mtime_ns)
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        assert experiment(folders, out, *SMALL) == 0  # the same request: nothing trained, predicted or measured
    assert (run_json.stat().st_mtime_ns, checkpoint(out).stat().st_mtime_ns) == before and not redone(caplog)
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        assert experiment(folders, out, *SMALL, "--evaluation", "paper") == 0  # measured again, model kept
    (message,) = redone(caplog)
    assert "evaluation_protocol" in message and "model is kept" in message
    assert checkpoint(out).stat().st_mtime_ns == before[1] and run_json.stat().st_mtime_ns != before[0]
    assert json.loads(run_json.read_text(encoding="utf-8"))["evaluation_protocol"] == "multi-dg"


def test_a_run_json_without_a_configuration_hash_is_redone(folders, tmp_path, caplog):
    out = tmp_path / "exp"
    assert experiment(folders, out, *SMALL) == 0
    run_json = out.joinpath(*RUN, "run.json")
    meta = json.loads(run_json.read_text(encoding="utf-8"))
    digest = meta.pop("configuration_hash")
    del meta["configuration"]  # as an older liverwild wrote it
    run_json.write_text(json.dumps(meta), encoding="utf-8")
    trained = checkpoint(out).stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        assert experiment(folders, out, *SMALL) == 0
    (message,) = redone(caplog)
    assert "no configuration record" in message
    assert json.loads(run_json.read_text(encoding="utf-8"))["configuration_hash"] == digest
    assert checkpoint(out).stat().st_mtime_ns != trained  # the model was set aside and trained again
    assert len(list((out / "stale").glob("*/" + "/".join(RUN) + "/run.json"))) == 1


def test_collect_excludes_runs_of_another_configuration_and_names_quick_rows(tmp_path):
    from liverwild.errors import LiverwildError
    from liverwild.experiments.records import configuration_hash
    from liverwild.experiments.report import collect, write_report

    out = tmp_path / "exp"
    plan = Plan("multi-dg", [Run("loo_T", "Ref", 0), Run("loo_T", "Other", 0)], reference="Ref")
    records = {}
    for k, run in enumerate(plan.runs):
        record = {"trainer": run.trainer, "quick": run.trainer == "Ref", "config": {"epochs": 2}}
        records[run] = record
        folder = out / "runs" / run.fold / run.trainer / "seed0"
        (folder / "predictions").mkdir(parents=True)
        meta = {"target": "T", "model": str(tmp_path / "none"), "configuration": record}
        (folder / "run.json").write_text(json.dumps({**meta, "configuration_hash": configuration_hash(record)}))
        (folder / "predictions" / "prediction_report.json").write_text(json.dumps({"seconds_total": 2, "n_ok": 4}))
        scans = {"case": [f"c{i}" for i in range(4)], "dice": [0.5 + 0.1 * k] * 4, "assd_mm": 1.0, "mssd_mm": 9.0}
        pd.DataFrame(scans).to_csv(folder / "results.csv", index=False)
    asked = {**records, plan.runs[1]: {**records[plan.runs[1]], "config": {"epochs": 150}}}
    collected = collect(out, plan, asked)
    assert set(collected.table.trainer) == {"Ref"} and [r.trainer for r in collected.plan.runs] == ["Ref"]
    assert "config.epochs differ" in collected.excluded["loo_T/Other/seed0"]
    report = write_report(out, collected, {"evaluation": "native", "device": "cpu"})
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "## Excluded runs" in text and "- loo_T/Other/seed0: was made with another configuration" in text
    assert "| Other" not in text.split("## Excluded runs")[1]  # listed, never in a table
    assert "QUICK runs" in text and "in rows Ref: loo_T/Ref/seed0" in text
    assert report["quick_runs"] == ["loo_T/Ref/seed0"] and list(report["excluded"]) == ["loo_T/Other/seed0"]
    ref, other = plan.runs
    full = {ref: {**records[ref], "quick": False}, other: records[other]}  # a full request: the quick run is left out
    collected = collect(out, plan, full)
    assert set(collected.table.trainer) == {"Other"} and "quick differ" in collected.excluded["loo_T/Ref/seed0"]
    write_report(out, collected, {"evaluation": "native", "device": "cpu"})
    assert "QUICK" not in (out / "report.md").read_text(encoding="utf-8")
    with pytest.raises(LiverwildError, match="no run of multi-dg is the one asked for"):
        collect(out, plan, {ref: full[ref], other: asked[other]})


def fake_runs(out, plan, records):
    """Finished runs of ``plan`` in ``out`` with the given configuration records (run → record)."""
    from liverwild.experiments.records import configuration_hash

    for k, run in enumerate(plan.runs):
        folder = out / "runs" / run.fold / run.trainer / f"seed{run.seed}"
        (folder / "predictions").mkdir(parents=True)
        meta = {"target": "T", "model": str(out / "none"), "configuration": records[run]}
        (folder / "run.json").write_text(json.dumps({**meta, "configuration_hash": configuration_hash(records[run])}))
        (folder / "predictions" / "prediction_report.json").write_text(json.dumps({"seconds_total": 2, "n_ok": 4}))
        dice = [0.5 + 0.1 * k + 0.01 * i * (k + 1) for i in range(4)]
        scans = {"case": [f"c{i}" for i in range(4)], "dice": dice, "assd_mm": 1.0, "mssd_mm": 9.0}
        pd.DataFrame(scans).to_csv(folder / "results.csv", index=False)


def test_every_report_table_states_its_evaluation_protocol_and_post_processing(tmp_path):
    from liverwild.experiments.report import collect, write_report

    paper = {"evaluation_protocol": "multi-dg", "evaluation_inplane_size": 128, "postprocessing": []}
    native = {"evaluation_protocol": "native", "evaluation_inplane_size": None, "postprocessing": ["fill_holes"]}
    plan = Plan("multi-dg", [Run("loo_T", "Ref", 0), Run("loo_T", "Other", 0)], reference="Ref")
    records = {run: {"trainer": run.trainer, "quick": False, **paper} for run in plan.runs}
    fake_runs(tmp_path / "same", plan, records)
    report = write_report(
        tmp_path / "same", collect(tmp_path / "same", plan, records), {"evaluation": "multi-dg", "device": "cpu"}
    )
    text = (tmp_path / "same" / "report.md").read_text(encoding="utf-8")
    way = "evaluation protocol multi-dg (canonical axial slices resized to 128 × 128); post-processing: none"
    stated = f"Measured with {way}."
    dice, surface = text.split("## Dice")[1].split("## Surface distances")
    assert stated in dice and stated in surface.split("## Time")[0]
    assert [t["title"] for t in report["tables"]] == ["Dice", "Surface distances"]
    assert report["tables"][0]["measured"] == {"Other": way, "Ref": way}
    assert report["measurement"]["loo_T/Ref/seed0"] == paper
    mixed = {plan.runs[0]: records[plan.runs[0]], plan.runs[1]: {**records[plan.runs[1]], **native}}
    fake_runs(tmp_path / "mixed", plan, mixed)
    write_report(tmp_path / "mixed", collect(tmp_path / "mixed", plan, mixed), {"evaluation": "?", "device": "cpu"})
    dice = (tmp_path / "mixed" / "report.md").read_text(encoding="utf-8").split("## Dice")[1].split("## Surface")[0]
    assert "- Other: evaluation protocol native (each scan's own grid); post-processing: fill_holes" in dice
    assert (
        "- Ref: evaluation protocol multi-dg (canonical axial slices resized to 128 × 128); post-processing: none"
        in dice
    )


def test_evaluation_paper_asks_for_the_paper_grid_and_no_post_processing(folders, tmp_path):
    from liverwild.errors import ConfigurationError
    from liverwild.experiments.requests import evaluation_choice, request_run, run_config
    from liverwild.inference.postprocessing import DEFAULT_STEPS
    from preprocessing.splits import load_splits

    assert evaluation_choice("paper", "single-dg") == ("single-dg", False)
    assert evaluation_choice("paper", "seeds") == ("multi-dg", False)
    assert evaluation_choice("single-dg", "single-dg") == ("single-dg", True)  # the grid alone
    with pytest.raises(ConfigurationError, match="unknown evaluation"):
        evaluation_choice("paper-ish", "multi-dg")
    assert experiment_cli.build_parser().parse_args(["multi-dg", "--evaluation", "paper"]).evaluation == "paper"
    splits = load_splits(folders / "pre" / "splits.json")
    run = Run("loo_PhantomT2MR", "ContrastiveDistillationTrainer", 0)
    config = run_config(run.trainer, quick=True)

    def request(evaluation):
        protocol, postprocess = evaluation_choice(evaluation, "multi-dg")
        common = (folders / "raw", folders / "pre", tmp_path, config, protocol)
        return request_run(run, splits, *common, "liver", True, postprocess)

    paper, native = request("paper"), request("native")
    assert (paper.evaluation, paper.postprocess) == ("multi-dg", False)
    assert paper.record["evaluation_inplane_size"] == 128 and paper.record["postprocessing"] == []
    assert (native.evaluation, native.postprocess) == ("native", True)
    assert native.record["evaluation_inplane_size"] is None and native.record["postprocessing"] == list(DEFAULT_STEPS)
    assert paper.digest != native.digest and paper.model == native.model  # measured anew, the same model


def test_the_ablations_plan_is_table_3_and_4_on_one_fold():
    """``lw_experiment ablations`` (no training): one run per ablation trainer, the reference first, on the
    first leave-one-out fold or the one asked for; each variant changes the reference's configuration in
    exactly what it ablates."""
    from liverwild.experiments.protocols import ABLATION_TRAINERS, REFERENCE_TRAINER, Run, make_plan
    from liverwild.training import get_trainer

    auto = {"sources": ["X", "Y"], "auto": True}
    splits = {"folds": {"loo_C": auto, "loo_A": auto, "loo_B": auto, "single_A": {"sources": ["A"], "auto": True}}}
    plan = make_plan("ablations", splits)
    assert plan.runs == [Run("loo_A", trainer, 0) for trainer in ABLATION_TRAINERS]
    assert plan.reference == REFERENCE_TRAINER == ABLATION_TRAINERS[0] and plan.evaluation == "liver"
    assert len(ABLATION_TRAINERS) == 11 and len(set(ABLATION_TRAINERS)) == 11  # 5 losses, 2 samplings, 3 sizes
    assert [r.fold for r in make_plan("ablations", splits, fold="loo_B").runs] == ["loo_B"] * 11
    assert {r.seed for r in make_plan("ablations", splits, seeds=[3, 4]).runs} == {3, 4}
    with pytest.raises(Exception, match="runs on one fold"):
        make_plan("ablations", splits, fold=["loo_A", "loo_B"])

    reference = get_trainer(REFERENCE_TRAINER).default_config().to_json()
    changed = {
        "NoDistillationTrainer": ("loss_weights", "distillation", 0.0),
        "NoFocalTrainer": ("loss_weights", "focal", 0.0),
        "NoTverskyTrainer": ("loss_weights", "tversky", 0.0),
        "NoLogIoUTrainer": ("loss_weights", "log_iou", 0.0),
        "NoEntropyTrainer": ("loss_weights", "entropy", 0.0),
        "Positives2ApartTrainer": ("sampling", None, "neighbours2"),
        "TwoNegativesTrainer": ("sampling", None, "two_negatives"),
        "Scans5PerSourceTrainer": ("max_scans_per_source", None, 5),
        "Scans10PerSourceTrainer": ("max_scans_per_source", None, 10),
        "Scans15PerSourceTrainer": ("max_scans_per_source", None, 15),
    }
    assert set(changed) == set(ABLATION_TRAINERS[1:])
    for trainer, (field, key, value) in changed.items():
        config = get_trainer(trainer).default_config().to_json()
        assert [f for f in config if config[f] != reference[f]] == [field], trainer
        if key is None:
            assert config[field] == value
        else:
            assert config[field][key] == value and reference[field][key] != 0.0
            assert {k: v for k, v in config[field].items() if k != key} == {
                k: v for k, v in reference[field].items() if k != key
            }


def test_each_trainer_takes_the_settings_it_reads_and_a_setting_none_reads_is_refused():
    """lw_experiment's --set is for every run that reads the field: a U-Net field leaves the method's row as
    it is (formerly recorded in its configuration, changing nothing); one no row reads is refused."""
    from liverwild.errors import ConfigurationError
    from liverwild.experiments.requests import run_config, trainer_settings

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


# ---- --concurrent: runs side by side in worker processes ---------------------------------------------


@pytest.mark.slow
def test_concurrent_runs_get_the_numbers_they_get_one_after_the_other(folders, tmp_path, monkeypatch):
    """Two seeds of one fold, once in this process one after the other and once as two worker processes
    (``--concurrent 2``), every process with one thread: each run's per-scan Dice are the same."""
    monkeypatch.setenv("LW_THREADS", "1")
    alone, together = tmp_path / "alone", tmp_path / "together"
    assert experiment(folders, alone, *SMALL, "--seeds", "0", "1") == 0
    assert experiment(folders, together, *SMALL, "--seeds", "0", "1", "--concurrent", "2") == 0
    for seed in ("seed0", "seed1"):
        run = ("runs", "loo_PhantomT2MR", "ContrastiveDistillationTrainer", seed)
        a, b = (pd.read_csv(out.joinpath(*run, "results.csv")) for out in (alone, together))
        assert len(a) == 3 and a.case.tolist() == b.case.tolist()
        assert a.dice.tolist() == pytest.approx(b.dice.tolist(), abs=1e-6)
    weights = {  # the trained networks: equal run for run, and the two seeds' differ
        (out.name, seed): torch.load(
            next((out / "models" / seed / "loo_PhantomT2MR").glob("*/checkpoint_final.pth")), weights_only=False
        )["network"]
        for out in (alone, together)
        for seed in ("seed0", "seed1")
    }
    for seed in ("seed0", "seed1"):
        assert all(torch.equal(v, weights["together", seed][k]) for k, v in weights["alone", seed].items())
    assert not all(torch.equal(v, weights["alone", "seed1"][k]) for k, v in weights["alone", "seed0"].items())
    assert "2 runs at once (times shared)" in (together / "report.md").read_text(encoding="utf-8")
    assert "runs at once" not in (alone / "report.md").read_text(encoding="utf-8")


def test_concurrent_refuses_fewer_than_one_run(folders, tmp_path):
    from liverwild.errors import LiverwildError
    from liverwild.experiments import run_experiment

    with pytest.raises(LiverwildError, match="--concurrent 0: give 1 or more"):
        run_experiment("multi-dg", raw=folders / "raw", preprocessed=folders / "pre", output=tmp_path, concurrent=0)


@pytest.mark.slow
def test_a_failed_run_or_a_dead_worker_is_named_after_the_others_finish(tmp_path):
    from liverwild.experiments.concurrent import ConcurrentRunsError, run_concurrently

    def job(code: str) -> tuple:
        return (f"import os; {code}",)  # each run is exec(code) in a worker process of its own

    jobs = [
        job(f"os.mkdir({str(tmp_path / 'a')!r})"),
        job("os._exit(3)"),  # the worker dies, as one killed for memory
        job(f"os.mkdir({str(tmp_path / 'missing' / 'b')!r})"),  # an error
        job(f"os.mkdir({str(tmp_path / 'c')!r})"),
    ]
    with pytest.raises(ConcurrentRunsError, match=r"2 of 4 runs failed \(") as caught:
        run_concurrently(exec, jobs, ["run a", "run dies", "run b", "run c"], 2, "cpu")
    message = str(caught.value)
    assert "run dies: BrokenProcessPool" in message and "run b: FileNotFoundError" in message
    assert (tmp_path / "a").is_dir() and (tmp_path / "c").is_dir()  # the others still ran
    assert "re-run to resume" in message
