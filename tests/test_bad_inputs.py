"""The bad-input corpus (tests/badinputs.py) through the commands that meet it: one line naming the
file and the problem per bad input, the good ones still processed, exit code 1, nothing partial left."""

import json
import shutil

import numpy as np
import pytest
from badinputs import write_corpus

from liverwild.inference.resume import state_path
from liverwild.io import read_image, write_volume

STATE = state_path(".").name  # what lw_predict --continue reads


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus") / "scans"
    return folder, write_corpus(folder)


def test_corpus_has_enough_cases(corpus):
    _, cases = corpus
    assert len(cases) >= 25
    assert sum(c.expect is None for c in cases.values()) >= 4


def test_lw_predict_over_the_corpus(corpus, tmp_path, capsys):
    from liverwild.cli import predict as predict_cli

    folder, cases = corpus
    out = tmp_path / "out"
    assert predict_cli.main(["-i", str(folder), "-o", str(out), "--device", "cpu", "--no-progress"]) == 1
    printed = capsys.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if line.startswith("FAILED")]
    report = json.loads((out / "prediction_report.json").read_text(encoding="utf-8"))
    by_input = {s["input"]: s for s in report["scans"]}
    for name, case in cases.items():
        mine = [line for line in lines if str(case.path) in line]
        if case.expect is None:
            assert not mine, (name, mine)
            scan = by_input[str(case.path)]
            mask = read_image(scan["output"], dtype=None)
            assert mask.geometry.differences(read_image(case.path).geometry) == [], name  # float32 NIfTI header
        else:
            assert len(mine) == 1, (name, case.what, lines)
            assert case.expect in mine[0], (name, case.what, mine[0])
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") and p.name not in (".lw.lock", STATE)]
    assert leftovers == []
    written = sorted(p.name for p in out.glob("*.nii.gz"))
    assert len(written) == sum(c.expect is None for c in cases.values())


def test_unwritable_output_folder_is_one_line(corpus, tmp_path, capsys):
    from liverwild.cli import predict as predict_cli

    folder, cases = corpus
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert (
        predict_cli.main(
            [
                "-i",
                str(cases["with spaces_0000.nii.gz"].path),
                "-o",
                str(blocker / "out"),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output folder cannot be written" in err[0] and str(blocker / "out") in err[0]


def _dataset(root, corpus_cases, bad):
    """A raw CT dataset: three good phantoms plus the named corpus images as extra cases."""
    from badinputs import small_ct

    from liverwild.datasets import DatasetInfo, write_dataset_json

    folder = root / "Mixed"
    names = []
    for k in range(3):
        ct, g = small_ct(seed=k)
        label = (ct > 80).astype(np.uint8)
        write_volume(ct, g, folder / "imagesTr" / f"good{k}_0000.nii.gz")
        write_volume(label, g, folder / "labelsTr" / f"good{k}.nii.gz", dtype=np.uint8)
        names.append(f"good{k}")
    ct, g = small_ct(seed=5)
    for name in bad:
        case = name.split(".")[0].replace(" ", "_")
        shutil.copy(corpus_cases[name].path, folder / "imagesTr" / f"{case}_0000.nii.gz")
        write_volume((ct > 80).astype(np.uint8), g, folder / "labelsTr" / f"{case}.nii.gz", dtype=np.uint8)
        names.append(case)
    write_volume(ct, g, folder / "imagesTr" / "badlabel_0000.nii.gz")
    write_volume(np.full(ct.shape, 7, np.uint8), g, folder / "labelsTr" / "badlabel.nii.gz", dtype=np.uint8)
    write_volume(ct, g, folder / "imagesTr" / "moved_0000.nii.gz")
    from liverwild.io import Geometry

    moved = Geometry(g.size, g.spacing, (9.0, 0.0, 0.0), g.direction)
    write_volume((ct > 80).astype(np.uint8), moved, folder / "labelsTr" / "moved.nii.gz", dtype=np.uint8)
    names += ["badlabel", "moved"]
    write_dataset_json(folder, DatasetInfo("Mixed", "CT", {"background": 0, "liver": 1}, names))
    return folder


BAD_IN_DATASETS = ["truncated.nii.gz", "nan.nii.gz", "constant.nii.gz", "text.nii.gz", "multi4d.nii.gz"]


def test_verify_and_plan_and_preprocess_report_each_bad_case(corpus, tmp_path, capsys):
    from liverwild.cli import convert as convert_cli
    from liverwild.cli import plan_and_preprocess as plan_cli

    _, cases = corpus
    _dataset(tmp_path / "raw", cases, BAD_IN_DATASETS)
    assert convert_cli.main(["verify", "Mixed", "--raw", str(tmp_path / "raw")]) == 1
    out = capsys.readouterr().out
    for case in ("truncated", "nan", "text", "multi4d", "badlabel", "moved"):
        assert case in out, case
    code = plan_cli.main(
        [
            "-d",
            "Mixed",
            "--raw",
            str(tmp_path / "raw"),
            "--preprocessed",
            str(tmp_path / "pre"),
            "--random-backbone",
            "--backbone",
            "vit_tiny_patch16_224",
            "--views",
            "0",
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr()
    assert code == 1
    failed = [line for line in (printed.out + printed.err).splitlines() if line.startswith("FAILED")]
    for case, fragment in (
        ("truncated", "truncated"),
        ("nan", "NaN"),
        ("constant", "constant"),
        ("text", "cannot be read"),
        ("multi4d", "4D"),
        ("badlabel", "label"),
        ("moved", "geometry differs"),
    ):
        assert any(f"{case}_0000" in line or f"{case}.nii.gz" in line and fragment in line for line in failed), (
            case,
            failed,
        )
    from preprocessing import list_cases

    cache = next((tmp_path / "pre" / "Mixed").glob("lwdata_*"))
    assert list_cases(cache) == ["good0", "good1", "good2"]


def test_lw_evaluate_reports_bad_predictions_one_line_each(corpus, tmp_path, capsys):
    from badinputs import small_ct

    from liverwild.cli import evaluate as evaluate_cli
    from liverwild.io import Geometry, write_mask

    ct, g = small_ct()
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for name in ("a", "b", "c", "d"):
        write_mask(ct > 80, g, ref / f"{name}.nii.gz")
    write_mask(ct > 80, g, pred / "a.nii.gz")
    write_mask(ct > 80, Geometry(g.size, (9, 9, 9), g.origin, g.direction), pred / "b.nii.gz")
    shutil.copy(corpus[1]["truncated.nii.gz"].path, pred / "c.nii.gz")
    assert evaluate_cli.main(["-p", str(pred), "-r", str(ref), "-o", str(tmp_path / "r.csv")]) == 1
    printed = capsys.readouterr()
    failed = [line for line in (printed.out + printed.err).splitlines() if line.startswith("FAILED")]
    assert any("b.nii.gz" in line and "geometry differs" in line for line in failed)
    assert any("c.nii.gz" in line and "truncated" in line for line in failed)
    assert any("d: no prediction" in line for line in failed)
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "r.csv").case) == ["a"]


def test_lw_convert_reports_bad_source_files_and_converts_the_rest(corpus, tmp_path, capsys):
    from badinputs import small_ct

    from liverwild.cli import convert as convert_cli

    _, cases = corpus
    src = tmp_path / "BTCV" / "RawData" / "Training"
    ct, g = small_ct()
    for n in ("0001", "0002", "0003", "0004"):
        write_volume((ct > 80).astype(np.uint8) * 6, g, src / "label" / f"label{n}.nii.gz", dtype=np.uint8)
    write_volume(ct, g, src / "img" / "img0001.nii.gz")
    shutil.copy(cases["truncated.nii.gz"].path, src / "img" / "img0002.nii.gz")
    shutil.copy(cases["text.nii.gz"].path, src / "img" / "img0003.nii.gz")
    shutil.copy(cases["nan.nii.gz"].path, src / "img" / "img0004.nii.gz")
    assert convert_cli.main(["btcv", str(tmp_path / "BTCV"), "--raw", str(tmp_path / "raw"), "--no-progress"]) == 1
    printed = capsys.readouterr()
    text = printed.out + printed.err
    for number, fragment in (("0002", "truncated"), ("0003", "cannot be read")):
        lines = [line for line in text.splitlines() if f"img{number}" in line]
        assert lines and fragment in lines[0], (number, text[-1500:])
    # NIfTI is copied byte for byte after reading its header only; the verifier that ends every conversion
    # then reads the voxels and names the NaN case (exit code 1 either way)
    assert any("btcv_0004" in line and "NaN" in line for line in text.splitlines()), text[-1500:]
    converted = sorted(p.name for p in (tmp_path / "raw" / "BTCV" / "imagesTr").iterdir())
    assert converted == ["btcv_0001_0000.nii.gz", "btcv_0004_0000.nii.gz"]
