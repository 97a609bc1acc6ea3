"""Which inputs lw_predict segments, under which output names, and which it reports instead."""

import os

import numpy as np
import pytest

from liverwild.errors import LiverwildError
from liverwild.inference import predict
from liverwild.inference.discovery import find_scans, scan_name
from liverwild.io import Geometry, write_volume
from liverwild.io.dicom import write_dicom_series

GEOMETRY = Geometry(size=(5, 6, 4), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel()))


def image(path, writer=write_volume):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(np.arange(120, dtype=np.int16).reshape(4, 6, 5), GEOMETRY, path)
    return path


def test_a_detached_header_is_one_scan_and_its_data_file_no_input(tmp_path):
    """``c.mhd`` + ``c.raw`` and ``d.nhdr`` + ``d.raw``: two scans, not two scans and two failures."""
    import SimpleITK as sitk

    blank = sitk.GetImageFromArray(np.zeros((4, 6, 5), np.int16))
    sitk.WriteImage(blank, str(tmp_path / "c.mhd"))
    sitk.WriteImage(blank, str(tmp_path / "d.nhdr"))
    (tmp_path / "notes.txt").write_text("mine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mhd", "c.raw", "d.nhdr", "d.raw", "notes.txt"]
    scans, rejected = find_scans(tmp_path)
    assert [(name, path.name) for name, path in scans] == [("c", "c.mhd"), ("d", "d.nhdr")]
    assert [(path.name, reason) for path, reason in rejected] == [("notes.txt", "unsupported file type")]


def test_a_name_ending_in_prob_is_refused_for_it_would_overwrite_a_probability_map(tmp_path):
    """``b_prob.nii.gz``'s mask is ``b_prob.nii.gz``: the name of ``b``'s probability map, which lw_evaluate
    skips as one."""
    image(tmp_path / "b.nii.gz")
    image(tmp_path / "b_prob.nii.gz")
    scans, rejected = find_scans(tmp_path)
    assert [name for name, _ in scans] == ["b"]
    assert len(rejected) == 1 and rejected[0][0].name == "b_prob.nii.gz"
    assert "would read as a probability map" in rejected[0][1]
    single, refused = find_scans(tmp_path / "b_prob.nii.gz")
    assert single == [] and "rename it" in refused[0][1]


def test_the_current_folder_as_a_dicom_input_is_named_after_itself(tmp_path, monkeypatch):
    series = tmp_path / "abdomen_ct"
    write_dicom_series(np.zeros((4, 6, 5), np.int16), GEOMETRY, series)
    monkeypatch.chdir(series)
    assert scan_name(".") == "abdomen_ct" == find_scans(".")[0][0][0]


def test_an_output_folder_inside_the_input(tmp_path):
    """Its folders are no inputs (not reported as folders without a DICOM series); inside a DICOM series
    the run is refused (masks would land in the input series)."""
    inputs = tmp_path / "in"
    image(inputs / "a.nii.gz")
    write_dicom_series(np.zeros((4, 6, 5), np.int16), GEOMETRY, inputs / "series")
    scans, rejected = find_scans(inputs, exclude=inputs / "runs" / "today")
    assert sorted(name for name, _ in scans) == ["a", "series"] and rejected == []
    for output in (inputs / "series", inputs / "series" / "masks"):
        with pytest.raises(LiverwildError, match="lies inside the input scan .*series; choose one outside"):
            predict(inputs, output, device="cpu", progress=False)
        with pytest.raises(LiverwildError, match="lies inside the input scan|must differ from the input folder"):
            predict(inputs / "series", output, device="cpu", progress=False)
    assert all(name.endswith(".dcm") for name in os.listdir(inputs / "series"))  # nothing written into it
