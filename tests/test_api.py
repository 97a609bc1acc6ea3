"""``liverwild.segment`` (issue 27): the README's example runs as written, nothing reaches the disk
without an output folder, and what it returns equals what ``lw_predict`` writes."""

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

import liverwild
from liverwild.cli import predict as predict_cli
from liverwild.errors import ConfigurationError
from liverwild.io import write_volume
from liverwild.phantoms import generate_case
from liverwild.phantoms.randomized import case_domain

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### From Python") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """``scans/ct.nii.gz`` (a synthetic CT the default model segments) and the folder ``lw_predict``
    wrote for it with ``--statistics``."""
    root = tmp_path_factory.mktemp("api")
    image, _, _ = generate_case(case_domain(0, "CT", 2, max_slices=12), 0, 2)
    write_volume(image.array, image.geometry, root / "scans" / "ct.nii.gz")
    argv = ["-i", str(root / "scans"), "-o", str(root / "cli"), "--statistics", "--device", "cpu", "--no-progress"]
    assert predict_cli.main(argv) == 0
    return root


def test_readme_example_runs_writes_nothing_and_matches_lw_predict(scans, monkeypatch):
    work = scans / "notebook"
    (work / "scans").mkdir(parents=True)
    os.link(scans / "scans" / "ct.nii.gz", work / "scans" / "ct.nii.gz")
    monkeypatch.chdir(work)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), "README.md", "exec"), namespace)
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["scans", str(Path("scans/ct.nii.gz"))]
    assert "volume_ml" in printed.getvalue() and "liver" in printed.getvalue()
    mask, written = namespace["mask"], sitk.ReadImage(str(scans / "cli" / "ct.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(written))
    assert sitk.GetArrayViewFromImage(mask).sum() > 100
    for get in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(mask, get)() == pytest.approx(getattr(written, get)(), abs=1e-4)
    statistics = namespace["result"].statistics
    expected = pd.read_csv(scans / "cli" / "statistics.csv")
    assert list(statistics.columns) == list(expected.columns)
    for column in ("voxels", "volume_ml", "intensity_mean", "intensity_median", "intensity_sd", "bbox_max_z_mm"):
        assert statistics[column].to_numpy(float) == pytest.approx(expected[column].to_numpy(float), rel=1e-6)


def test_with_an_output_folder_it_writes_as_the_command(scans, tmp_path):
    result = liverwild.segment(scans / "scans", tmp_path / "out", device="cpu", statistics=False)
    assert (tmp_path / "out" / "ct.nii.gz").is_file() and not (tmp_path / "out" / "statistics.csv").exists()
    assert result.statistics.empty and list(result.masks) == ["ct"]
    assert result.report["n_ok"] == 1 and result.report["scans"][0]["output"] == str(tmp_path / "out" / "ct.nii.gz")


def test_options_that_cannot_act_are_refused(scans):
    with pytest.raises(ConfigurationError, match="give an output folder"):
        liverwild.segment(scans / "scans", overlays=True)
    with pytest.raises(ConfigurationError, match="give an output folder"):
        liverwild.segment(scans / "scans", report="html")
    with pytest.raises(ConfigurationError, match="unknown option.*overlay\\b"):
        liverwild.segment(scans / "scans", overlay=True)
