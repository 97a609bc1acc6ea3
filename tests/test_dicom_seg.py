"""DICOM-SEG output (issue 27): a SEG read back with pydicom alone, placed on the source grid through
SimpleITK's own index ↔ physical mapping, equals the NIfTI mask voxel for voxel."""

import importlib.util
import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import geometry_for
from segcheck import seg_on_source_grid

import liverwild
from liverwild.cli import predict as predict_cli
from liverwild.errors import ConfigurationError, ImageReadError
from liverwild.io import Geometry, read_image, write_dicom_series, write_mask
from liverwild.io.dicom_seg import source_datasets, write_dicom_seg

needs_highdicom = pytest.mark.skipif(  # the optional 'dicom' extra (in 'test'); liverwild imports it lazily
    importlib.util.find_spec("highdicom") is None, reason="highdicom not installed: pip install 'liverwild[dicom]'"
)

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
SCT_LIVER, SCT_SPLEEN, SCT_KIDNEY, SCT_LEFT = "10200004", "78961009", "64033007", "7771000"


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


GEOMETRIES = {
    "ascending": geometry_for((6, 9, 11)),
    "descending": geometry_for((6, 9, 11), direction=(1, 0, 0, 0, 1, 0, 0, 0, -1)),
    "oblique": geometry_for((5, 9, 11), direction=tuple(rotation((1, 2, 3), 25).reshape(-1))),
    "one_slice": geometry_for((1, 9, 11)),
}


def series(tmp_path, name) -> tuple:
    """A DICOM series of ``GEOMETRIES[name]`` (file names and InstanceNumbers in writing order) and the
    volume liverwild reads from it."""
    g = GEOMETRIES[name]
    rng = np.random.default_rng(0)
    write_dicom_series(rng.integers(-200, 300, g.shape).astype(np.int16), g, tmp_path / name, series_uid="1.2.826.0.9")
    return tmp_path / name, read_image(tmp_path / name)


@needs_highdicom
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_seg_equals_the_nifti_mask_on_the_source_grid(tmp_path, name):
    folder, volume = series(tmp_path, name)
    mask = np.zeros(volume.array.shape, np.uint8)
    nz = mask.shape[0]
    mask[:, 2:7, 3:9] = 1  # a box through every slice ...
    if nz > 1:
        mask[nz - 1, 0, 0] = 1  # ... and a corner voxel of the last slice alone
    mask[0, 2, 3] = 0  # one voxel taken out of the first slice: any flip or shift shows
    write_mask(mask, volume.geometry, tmp_path / "mask.nii.gz")
    sources = source_datasets(volume)
    write_dicom_seg(
        mask, sources, {0: "background", 1: "liver"}, tmp_path / "mask_seg.dcm", "m1", "synthetic data only"
    )
    nifti = sitk.ReadImage(str(tmp_path / "mask.nii.gz"))
    rebuilt, segments = seg_on_source_grid(tmp_path / "mask_seg.dcm", folder, nifti)
    assert np.array_equal(rebuilt, sitk.GetArrayFromImage(nifti))
    assert segments[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == SCT_LIVER
    seg = pydicom.dcmread(tmp_path / "mask_seg.dcm")
    shared = seg.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == pytest.approx(
        [float(v) for v in sources[0].ImageOrientationPatient]
    )
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == pytest.approx(
        [float(v) for v in sources[0].PixelSpacing]
    )


@needs_highdicom
def test_seg_names_its_source_and_its_algorithm(tmp_path):
    folder, volume = series(tmp_path, "descending")
    mask = np.zeros(volume.array.shape, np.uint8)
    mask[2:4, 3:6, 4:8] = 1
    sources = source_datasets(volume)
    write_dicom_seg(mask, sources, {1: "liver"}, tmp_path / "s.dcm", "default", "synthetic data only")
    seg, first = pydicom.dcmread(tmp_path / "s.dcm"), sources[0]
    assert seg.SOPClassUID == SEG_STORAGE and seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in referenced.ReferencedInstanceSequence} == {
        ds.SOPInstanceUID for ds in sources
    }
    assert int(seg.NumberOfFrames) == 2  # empty frames omitted
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "liver" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"  # anatomical structure
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "liverwild" and algorithm.AlgorithmVersion == liverwild.__version__
    assert "model=default" in algorithm.AlgorithmParameters
    assert "synthetic data only" in algorithm.AlgorithmParameters
    assert seg.SoftwareVersions == liverwild.__version__ and "synthetic data only" in seg.ImageComments
    for keyword in ("PatientID", "PatientName", "StudyDate", "ContentLabel", "DimensionIndexSequence"):
        assert keyword in seg


@needs_highdicom
def test_organ_map_gives_one_coded_segment_per_organ_and_empty_masks_a_valid_seg(tmp_path):
    folder, volume = series(tmp_path, "ascending")
    labels = {0: "background", 1: "spleen", 2: "left_kidney", 3: "liver"}
    organs = np.zeros(volume.array.shape, np.uint8)
    organs[1:3, 1:4, 1:4], organs[3:5, 5:8, 6:10], organs[0, 0, 0] = 1, 3, 2
    write_mask(organs, volume.geometry, tmp_path / "organs.nii.gz")
    write_dicom_seg(organs, source_datasets(volume), labels, tmp_path / "organs.dcm", "organs-3d")
    nifti = sitk.ReadImage(str(tmp_path / "organs.nii.gz"))
    rebuilt, segments = seg_on_source_grid(tmp_path / "organs.dcm", folder, nifti)
    assert np.array_equal(rebuilt, organs)
    assert [segments[k].SegmentLabel for k in (1, 2, 3)] == ["spleen", "left_kidney", "liver"]
    assert [segments[k].SegmentedPropertyTypeCodeSequence[0].CodeValue for k in (1, 2, 3)] == [
        SCT_SPLEEN,
        SCT_KIDNEY,
        SCT_LIVER,
    ]
    left = segments[2].SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]
    assert left.CodeValue == SCT_LEFT
    assert "ImageComments" not in pydicom.dcmread(tmp_path / "organs.dcm")  # not the default model
    empty = np.zeros(volume.array.shape, np.uint8)
    write_dicom_seg(empty, source_datasets(volume), {1: "liver"}, tmp_path / "empty.dcm", "m")
    seg = pydicom.dcmread(tmp_path / "empty.dcm")
    assert int(seg.NumberOfFrames) == volume.array.shape[0] and not seg.pixel_array.any()


@needs_highdicom
@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (apt-get install dicom3tools) not found")
def test_dicom3tools_finds_no_error_nor_misplaced_attribute_in_the_seg(tmp_path):
    """dciodvfy (David Clunie's IOD checker) reads SEGs of a liver mask and of an organ map (a laterality
    modifier, an organ without voxels) against the standard's module tables."""
    _, volume = series(tmp_path, "oblique")
    mask = np.zeros(volume.array.shape, np.uint8)
    mask[1:4, 2:6, 2:6] = 1
    write_dicom_seg(mask, source_datasets(volume), {1: "liver"}, tmp_path / "s.dcm", "default", "synthetic data only")
    mask[0, 7:9, 7:9] = 2
    labels = {1: "liver", 2: "left_kidney", 3: "spleen"}
    write_dicom_seg(mask, source_datasets(volume), labels, tmp_path / "organs.dcm", "organs")
    for name in ("s.dcm", "organs.dcm"):
        checked = subprocess.run(
            ["dciodvfy", "-new", str(tmp_path / name)], capture_output=True, text=True, encoding="utf-8"
        )
        lines = (checked.stdout + checked.stderr).splitlines()
        assert "Segmentation" in lines
        assert not [line for line in lines if line.startswith("Error") or "not present in standard" in line], lines


def test_seg_refuses_a_source_file_off_the_grid(tmp_path):
    folder, volume = series(tmp_path, "ascending")
    moved = Geometry(volume.geometry.size, volume.geometry.spacing, (0.0, 0.0, 0.0), volume.geometry.direction)
    volume.geometry = moved
    with pytest.raises(ImageReadError, match="does not lie on the grid"):
        source_datasets(volume)


def phantom_folder(tmp_path):
    """A synthetic CT as a DICOM series (the default model finds its liver) and the same scan as NIfTI."""
    from liverwild.io import write_volume
    from liverwild.phantoms import generate_case
    from liverwild.phantoms.randomized import case_domain

    image, _, _ = generate_case(case_domain(0, "CT", 2, max_slices=12), 0, 2)
    inputs = tmp_path / "in"
    write_dicom_series(np.round(image.array).astype(np.int16), image.geometry, inputs / "ct_series")
    write_volume(image.array, image.geometry, inputs / "ct_nifti.nii.gz")
    return inputs


@needs_highdicom
def test_lw_predict_writes_seg_for_dicom_and_says_why_not_for_nifti(tmp_path, capsys):
    inputs = phantom_folder(tmp_path)
    out = tmp_path / "out"
    argv = ["-i", str(inputs), "-o", str(out), "--output-type", "nifti", "dicom-seg", "--report", "none"]
    assert predict_cli.main([*argv, "--no-progress", "--device", "cpu"]) == 0
    report = json.loads((out / "prediction_report.json").read_text(encoding="utf-8"))
    scans = {s["name"]: s for s in report["scans"]}
    assert scans["ct_series"]["dicom_seg"] == str(out / "ct_series_seg.dcm") and not scans["ct_series"]["warnings"]
    assert scans["ct_nifti"]["dicom_seg"] == "" and not (out / "ct_nifti_seg.dcm").exists()
    assert "needs a DICOM series" in scans["ct_nifti"]["warnings"][0]
    assert sum("needs a DICOM series" in line for line in capsys.readouterr().out.splitlines()) == 1
    nifti = sitk.ReadImage(str(out / "ct_series.nii.gz"))
    assert sitk.GetArrayViewFromImage(nifti).sum() > 100  # the liver was found: a SEG with content
    rebuilt, segments = seg_on_source_grid(out / "ct_series_seg.dcm", inputs / "ct_series", nifti)
    assert np.array_equal(rebuilt, sitk.GetArrayFromImage(nifti))
    seg = pydicom.dcmread(out / "ct_series_seg.dcm")
    assert (
        "synthetic data only"
        in seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    )
    only = tmp_path / "only_seg"
    assert predict_cli.main(["-i", str(inputs / "ct_series"), "-o", str(only), "--output-type", "dicom-seg"]) == 0
    assert sorted(p.name for p in only.iterdir() if not p.name.startswith(".")) == [
        "ct_series_seg.dcm",
        "prediction_report.json",
    ]


def test_dicom_seg_without_highdicom_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "highdicom" else real(name, *a))
    from liverwild.inference import predict

    with pytest.raises(ConfigurationError, match=r"pip install 'liverwild\[dicom\]'"):
        predict(tmp_path, tmp_path / "out", output_types=("dicom-seg",))
    assert predict_cli.main(["-i", str(tmp_path), "-o", str(tmp_path / "o"), "--output-type", "dicom-seg"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install" in err[0], err
