"""Per-organ evaluation on label maps with known answers: cubes and spheres, a shifted organ, an organ
that is absent, label values matched by organ name on both sides."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import geometry_for

from liverwild.datasets.format import DatasetInfo, write_dataset_json
from liverwild.evaluation import evaluate_case_organs, evaluate_folders, match_classes
from liverwild.evaluation.organs import parse_label_list, reference_classes
from liverwild.io import write_mask

SHAPE = (20, 30, 30)
SPACING = (1.0, 1.0, 2.0)  # x, y, z in mm


def maps():
    """Reference (BTCV values: liver 6, spleen 1, aorta 8) and prediction (liverwild values: spleen 1,
    liver 2) of one case: the liver is right, the spleen shifted by 2 voxels along x, the aorta ignored."""
    ref = np.zeros(SHAPE, np.uint8)
    ref[2:12, 5:15, 5:15] = 6  # liver: a 10 × 10 × 10 cube
    ref[4:8, 20:24, 20:24] = 1  # spleen: 4 × 4 × 4
    ref[:, 0:2, 0:2] = 8  # aorta (not an organ of the evaluation)
    pred = np.zeros(SHAPE, np.uint8)
    pred[2:12, 5:15, 5:15] = 2
    pred[4:8, 20:24, 22:26] = 1  # shifted by 2 along x: half the cube overlaps
    return ref, pred


def write_case(folder, name, array):
    write_mask(array, geometry_for(SHAPE, spacing=SPACING), folder / f"{name}.nii.gz")


def test_per_organ_metrics_of_known_shapes(tmp_path):
    ref, pred = maps()
    write_case(tmp_path / "ref", "c", ref)
    write_case(tmp_path / "pred", "c", pred)
    classes = {"liver": ([2], [6]), "spleen": ([1], [1]), "pancreas": ([3], [11])}
    found = evaluate_case_organs(tmp_path / "pred" / "c.nii.gz", tmp_path / "ref" / "c.nii.gz", classes)
    rows = {r["organ"]: r for r in found}
    assert set(rows) == {"liver", "spleen"}  # the pancreas is in neither: nothing to measure, no row
    assert rows["liver"]["dice"] == 1.0 and rows["liver"]["hd95_mm"] == 0.0
    assert rows["spleen"]["dice"] == pytest.approx(0.5) and rows["spleen"]["iou"] == pytest.approx(1 / 3)
    assert rows["spleen"]["mssd_mm"] == pytest.approx(2.0)  # 2 voxels of 1 mm along x
    assert rows["spleen"]["volume_ref_ml"] == pytest.approx(4 * 4 * 4 * 2 / 1000)


def test_folders_give_one_row_per_case_and_organ_and_summaries_per_organ(tmp_path):
    ref, pred = maps()
    for k in range(3):
        write_case(tmp_path / "ref", f"case{k}", ref)
        missed_spleen = np.where(pred == 1, 0, pred)
        write_case(tmp_path / "pred", f"case{k}", pred if k else missed_spleen)
    table, summary, failures = evaluate_folders(
        tmp_path / "pred",
        tmp_path / "ref",
        classes={"liver": ([2], [6]), "spleen": ([1], [1])},
        output_csv=tmp_path / "organs.csv",
        progress=False,
    )
    assert not failures and len(table) == 6 and list(table.columns[:2]) == ["case", "organ"]
    assert summary["organs"]["spleen"]["dice"]["mean"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert summary["organs"]["liver"]["dice"]["mean"] == 1.0
    assert summary["dice"]["mean"] == pytest.approx(((1 + 0) / 2 + 2 * (1 + 0.5) / 2) / 3)  # each case's organ mean
    saved = json.loads((tmp_path / "organs.summary.json").read_text(encoding="utf-8"))
    assert saved["classes"] == {"liver": [[2], [6]], "spleen": [[1], [1]]} and saved["labels"] is None
    assert pd.read_csv(tmp_path / "organs.csv").organ.tolist() == ["liver", "spleen"] * 3


def test_label_values_are_matched_by_organ_name_from_the_report_and_dataset_json(tmp_path):
    dataset = tmp_path / "BTCV"
    organ_labels = {"spleen": 1, "left_kidney": 3, "liver": 6, "aorta": 8}
    write_dataset_json(dataset, DatasetInfo("BTCV", "CT", extra={"organ_labels": organ_labels}))
    (dataset / "labelsTr_organs").mkdir()
    (dataset / "labelsTr").mkdir()
    assert reference_classes(dataset / "labelsTr_organs") == {"spleen": [1], "left_kidney": [3], "liver": [6]}
    assert reference_classes(dataset / "labelsTr") == {"liver": [1]}
    (tmp_path / "pred").mkdir()
    report = {"classes": {"background": 0, "spleen": 1, "liver": 2, "stomach": 3}}
    (tmp_path / "pred" / "prediction_report.json").write_text(json.dumps(report), encoding="utf-8")
    assert match_classes(tmp_path / "pred", dataset / "labelsTr_organs") == {"spleen": ([1], [1]), "liver": ([2], [6])}
    assert match_classes(tmp_path / "pred", dataset / "labelsTr") == {"liver": ([2], [1])}
    with pytest.raises(Exception, match="stomach not on both sides"):
        match_classes(tmp_path / "pred", dataset / "labelsTr_organs", ["liver", "stomach"])
    with pytest.raises(Exception, match="not inside a raw dataset.*--ref-labels"):
        match_classes(tmp_path / "pred", tmp_path / "pred")
    given = parse_label_list(["liver=6,7"])
    explicit = match_classes(tmp_path / "nowhere", tmp_path / "nowhere", None, {"liver": [5]}, given)
    assert explicit == {"liver": ([5], [6, 7])}
    with pytest.raises(Exception, match="expected NAME=VALUE"):
        parse_label_list(["liver"])


def test_lw_evaluate_organs_and_a_paired_comparison_per_organ(tmp_path, capsys):
    from liverwild.cli import evaluate as evaluate_cli

    ref, pred = maps()
    for k in range(3):
        write_case(tmp_path / "ref", f"case{k}", ref)
        write_case(tmp_path / "a", f"case{k}", pred)
        shifted = np.zeros_like(pred)
        shift = 1 + k  # everything k + 1 voxels further: worse on every organ, by more each case
        shifted[:, :, shift:] = pred[:, :, :-shift]
        write_case(tmp_path / "b", f"case{k}", shifted)
    labels = ["--pred-labels", "liver=2", "spleen=1", "--ref-labels", "liver=6", "spleen=1"]
    for side in ("a", "b"):
        args = ["-p", str(tmp_path / side), "-r", str(tmp_path / "ref"), "--organs", *labels]
        assert evaluate_cli.main([*args, "-o", str(tmp_path / f"{side}.csv")]) == 0
    out = capsys.readouterr().out
    assert "liver " in out and "1.0000 ± 0.0000" in out and "mean over each case's organs" in out
    assert evaluate_cli.main(["--compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) == 0
    table = capsys.readouterr().out
    assert "| dice[liver] | 1.000 ± 0.000 |" in table and "6 paired (case, organ) pairs" in table
