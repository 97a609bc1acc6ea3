"""lw_experiment organs-3d: the 3d trainers end to end on multi-organ phantoms, per-organ tables
with paired tests; a 3d trainer as a row of a liver protocol."""

import json

import pandas as pd
import pytest

import liverwild
from liverwild.cli import experiment as experiment_cli
from liverwild.experiments.protocols import ORGAN_TRAINERS, Plan, Run, make_plan
from liverwild.experiments.report import organ_sections
from liverwild.revision import git_revision, version_line

UNET = ["unet3d_channels=4", "unet3d_depth=2"]
TINY = ["--set", *UNET, "feature_layers=2", "feature_hidden=16", "voxel_samples=200"]  # the voxel fields: 2 rows


def cli(study, results, *args):
    folders = ["--raw", str(study / "raw"), "--preprocessed", str(study / "pre"), "--results", str(results)]
    return experiment_cli.main([*args, "--quick", "--device", "cpu", *folders])


@pytest.mark.slow
def test_organs_3d_trains_its_rows_and_reports_every_organ_and_each_rows_recipe(organ_study, tmp_path):
    assert cli(organ_study, tmp_path, "organs-3d", "--fold", "loo_PhantomT2MR", *TINY) == 0
    out = tmp_path / "experiments" / "organs-3d"
    table = pd.read_csv(out / "results.csv")
    assert set(table.trainer) == set(ORGAN_TRAINERS) and set(table.target) == {"PhantomT2MR"}
    organs = {"spleen", "left_kidney", "gallbladder", "liver", "stomach", "pancreas", "duodenum"}
    assert set(table.organ) <= organs and "liver" in set(table.organ)
    assert table.dice.between(0, 1).all() and table.groupby("trainer").case.nunique().eq(4).all()
    report = (out / "report.md").read_text(encoding="utf-8")
    for title in ("Dice per organ", "HD95 (mm) per organ", "ASSD (mm) per organ"):
        assert f"## PhantomT2MR: {title}" in report
    assert "| Siamese3DTrainer (reference) |" in report and "(p = " in report and "| mean |" in report
    assert "post-processing: none" in report and "QUICK run" in report  # organ maps: raw argmax
    # each row's recipe: the tuned λ and the paper's literal λ, on the encoder's last layers (--set: 2, width 16)
    layers = "on the last 2 encoder layers, width 16"
    recipes = {
        "UNet3DTrainer": "soft Dice alone (no feature loss)",
        "Siamese3DTrainer": f"soft Dice + λ · SimSiam feature loss, λ = 0.1 (feature_weight), {layers}",
        "Siamese3DPaperWeightTrainer": f"soft Dice + λ · SimSiam feature loss, λ = 10 (feature_weight), {layers}",
        "SupervisedContrastive3DTrainer": (
            f"soft Dice + λ · supervised contrastive feature loss, λ = 0.01 (feature_weight), {layers}"
        ),
        "SupervisedContrastive3DPaperWeightTrainer": (
            f"soft Dice + λ · supervised contrastive feature loss, λ = 100 (feature_weight), {layers}"
        ),
    }
    assert "Recipe per row:" in report and all(f"- {row}: {text}\n" in report for row, text in recipes.items())
    run = json.loads((out / "runs" / "loo_PhantomT2MR" / "UNet3DTrainer" / "seed0" / "run.json").read_text("utf-8"))
    assert run["measure"] == "organs" and run["references"].endswith("PhantomT2MR/labelsTr_organs")
    assert run["config"]["lr"] == 1e-3 and run["config"]["unet3d_channels"] == 4  # the recipe, then --set
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(summary["mean_dice"]) == {f"PhantomT2MR/{t}" for t in ORGAN_TRAINERS}
    assert summary["recipes"] == recipes
    assert any(key.startswith("PhantomT2MR/liver/") for key in summary["mean_dice_per_organ"])
    assert summary["versions"]["liverwild"] == liverwild.__version__ and summary["git_revision"] == git_revision()
    assert version_line() in report


def test_a_3d_trainer_is_measured_on_the_liver_in_a_liver_protocol(organ_study, tmp_path):
    args = ["multi-dg", "--fold", "loo_PhantomNativeCT", "--trainers", "UNet3DTrainer", "--set", *UNET]
    assert cli(organ_study, tmp_path, *args) == 0
    out = tmp_path / "experiments" / "multi-dg"
    table = pd.read_csv(out / "results.csv")
    assert "organ" not in table.columns and len(table) == 4
    run = json.loads((out / "runs" / "loo_PhantomNativeCT" / "UNet3DTrainer" / "seed0" / "run.json").read_text("utf-8"))
    assert run["measure"] == "liver" and run["references"].endswith("labelsTr")
    predictions = json.loads(
        (
            out / "runs" / "loo_PhantomNativeCT" / "UNet3DTrainer" / "seed0" / "predictions" / "prediction_report.json"
        ).read_text(encoding="utf-8")
    )
    assert predictions["classes"] == {"background": 0, "liver": 1}


def test_organs_3d_refuses_liver_only_trainers():
    splits = {"folds": {"loo_A": {"sources": ["B"], "target": "A", "auto": True}}}
    plan = make_plan("organs-3d", splits)
    assert plan.evaluation == "organs" and plan.reference == "Siamese3DTrainer"
    assert [r.trainer for r in plan.runs] == [
        "Siamese3DTrainer",
        "UNet3DTrainer",
        "SupervisedContrastive3DTrainer",
        "Siamese3DPaperWeightTrainer",  # the paper's λ, beside the tuned one
        "SupervisedContrastive3DPaperWeightTrainer",
    ]
    with pytest.raises(Exception, match="ContrastiveDistillationTrainer .* do not segment"):
        make_plan("organs-3d", splits, ["Siamese3DTrainer", "ContrastiveDistillationTrainer"])


def test_organ_tables_bold_the_lowest_distance_and_the_highest_dice():
    rows = []
    for case in range(8):
        for trainer, dice, hd, step in (("Ref", 0.80, 5.0, 0.002), ("Better", 0.86, 3.0, 0.003)):
            jitter = step * ((case * 7) % 3)
            for organ in ("liver", "spleen"):
                rows.append(
                    {
                        "fold": "loo_T",
                        "target": "T",
                        "trainer": trainer,
                        "seed": 0,
                        "case": f"c{case}",
                        "organ": organ,
                        "dice": dice + jitter + 0.01 * case,
                        "hd95_mm": hd + jitter,
                        "assd_mm": 1.0 + 0.1 * case,
                    }
                )
    plan = Plan("organs-3d", [Run("loo_T", "Ref", 0)], reference="Ref", evaluation="organs")
    text = "\n".join(organ_sections(pd.DataFrame(rows), plan))
    dice, hd95, assd = (
        text.split(f"## T: {t} per organ")[1].split("##")[0] for t in ("Dice", "HD95 (mm)", "ASSD (mm)")
    )
    better = [line for line in dice.splitlines() if line.startswith("| Better")][0]
    assert better.count("**") == 6  # liver, spleen and their mean: bold
    assert [line for line in hd95.splitlines() if line.startswith("| Better")][0].count("**") == 6  # lower is better
    assert "**" not in assd  # the same ASSD everywhere: nothing is significantly better
    assert "| trainer | spleen | liver | mean |" in dice  # organs in the paper's order, then the mean
