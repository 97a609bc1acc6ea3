"""lw_predict with a 3d (multi-organ) model: organ label maps in the input geometry, whatever the
storage orientation; the liver-only view; what it refuses."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SIGNED_PERMUTATIONS

from liverwild.inference import predict
from liverwild.inference.model import TrainedModel
from liverwild.inference.volumetric import upsampled_chunks
from liverwild.io import Reorientation, Volume, read_image, stored_geometry, write_volume
from preprocessing.volumes import resample

CLASSES = ["spleen", "left_kidney", "gallbladder", "liver", "stomach", "pancreas", "duodenum"]


def test_chunked_upsampling_equals_resizing_the_whole_stack():
    maps = torch.rand(3, 4, 6, 5)
    for shape in ((9, 13, 11), (3, 12, 4), (4, 6, 5)):
        whole = resample(maps[None], shape)[0]
        parts = torch.zeros_like(whole)
        for start, part in upsampled_chunks(maps, shape, chunk=2):
            parts[:, start : start + part.shape[1]] = part
        torch.testing.assert_close(parts, whole)


def test_a_3d_model_writes_organ_maps_in_each_inputs_geometry(organ_study, trained_3d, tmp_path):
    images = organ_study / "raw" / "PhantomT2MR" / "imagesTr"
    report = predict(images, tmp_path / "out", model=trained_3d["output"], device="cpu", progress=False, overlays=True)
    assert report["n_ok"] == 4 and report["n_failed"] == 0
    assert report["classes"] == {"background": 0, **{c: k for k, c in enumerate(CLASSES, start=1)}}
    assert report["model"]["configuration"] == "3d" and report["postprocessing"] == ["largest_component_per_class"]
    saved = json.loads((tmp_path / "out" / "prediction_report.json").read_text(encoding="utf-8"))
    scan = saved["scans"][0]
    assert set(scan["organ_ml"]) == set(CLASSES) and scan["liver_ml"] == scan["organ_ml"]["liver"]
    assert list(scan["seconds"]) == ["read", "preprocess", "network", "resample", "postprocess", "write"]
    for image in sorted(images.iterdir()):
        name = image.name.replace("_0000.nii.gz", "")
        mask = read_image(tmp_path / "out" / f"{name}.nii.gz", dtype=None)
        assert mask.geometry == read_image(image).geometry and mask.array.dtype == np.uint8
        assert set(np.unique(mask.array)) <= set(range(len(CLASSES) + 1))
    assert (tmp_path / "out" / "overlays" / f"{name}.png").stat().st_size > 1000


def test_organ_maps_follow_the_scan_through_every_storage_orientation(organ_study, trained_3d, tmp_path):
    source = read_image(next((organ_study / "raw" / "PhantomPortalCT" / "imagesTr").iterdir()))
    canonical = Reorientation.from_geometry(source.geometry)
    base = canonical.canonical_geometry(source.geometry)
    array = np.ascontiguousarray(canonical.to_canonical(source.array))
    for k, direction in enumerate(SIGNED_PERMUTATIONS[::7]):
        geometry = stored_geometry(base, direction)
        stored = Reorientation.from_geometry(geometry).from_canonical(array)
        write_volume(stored, geometry, tmp_path / "in" / f"scan{k}.nii.gz")
    predict(tmp_path / "in", tmp_path / "out", model=trained_3d["output"], device="cpu", progress=False)
    maps = []
    for k in range(len(SIGNED_PERMUTATIONS[::7])):
        mask = read_image(tmp_path / "out" / f"scan{k}.nii.gz", dtype=None)
        assert mask.geometry == read_image(tmp_path / "in" / f"scan{k}.nii.gz").geometry
        maps.append(Reorientation.from_geometry(mask.geometry).to_canonical(mask.array))
    assert maps[0].any() and all(np.array_equal(m, maps[0]) for m in maps[1:])


def test_the_liver_only_view_is_the_organ_maps_liver_label(organ_study, trained_3d, tmp_path):
    images = organ_study / "raw" / "PhantomNativeCT" / "imagesTr"
    common = dict(model=trained_3d["output"], device="cpu", progress=False, postprocess=False)
    predict(images, tmp_path / "organs", **common)
    report = predict(images, tmp_path / "liver", liver_only=True, save_probabilities=True, **common)
    assert report["classes"] == {"background": 0, "liver": 1}
    for image in images.iterdir():
        name = image.name.replace("_0000.nii.gz", "")
        organs = read_image(tmp_path / "organs" / f"{name}.nii.gz", dtype=None).array
        liver = read_image(tmp_path / "liver" / f"{name}.nii.gz", dtype=None).array
        assert np.array_equal(liver, (organs == CLASSES.index("liver") + 1).astype(np.uint8))
        probs = read_image(tmp_path / "liver" / f"{name}_prob.nii.gz").array
        assert probs.shape == liver.shape and 0 <= probs.min() and probs.max() <= 1


def test_what_a_3d_model_refuses_before_reading_any_scan(organ_study, trained_3d, tmp_path, capsys):
    from liverwild.cli import predict as predict_cli

    images = organ_study / "raw" / "PhantomNativeCT" / "imagesTr"
    args = ["-i", str(images), "-m", trained_3d["output"], "--device", "cpu", "--no-progress"]
    assert predict_cli.main([*args, "-o", str(tmp_path / "a"), "--save-probabilities"]) == 1
    assert "needs --liver-only" in capsys.readouterr().err and not (tmp_path / "a").exists()
    steps = ["--postprocess", "largest_component", "z_continuity"]
    assert predict_cli.main([*args, "-o", str(tmp_path / "b"), *steps]) == 1
    assert "steps of a liver mask" in capsys.readouterr().err and not (tmp_path / "b").exists()
    model = TrainedModel(trained_3d["output"])
    model.classes = ["spleen"]
    from liverwild.inference import PredictorOptions, VolumePredictor

    with pytest.raises(Exception, match="segments spleen, not the liver"):
        VolumePredictor(model, torch.device("cpu"), PredictorOptions(liver_only=True))


def test_a_3d_model_keeps_the_scan_it_was_given_unchanged(trained_3d, organ_study):
    from liverwild.inference import make_predictor

    model = TrainedModel(Path(trained_3d["output"]))
    predictor = make_predictor(model, torch.device("cpu"))
    image = read_image(next((organ_study / "raw" / "PhantomT2MR" / "imagesTr").iterdir()))
    before = image.array.copy()
    labels, probs, info, _ = predictor.predict_volume(Volume(image.array, image.geometry))
    assert np.array_equal(image.array, before) and probs is None and info["modality"] == "MR"
    assert labels.shape == image.array.shape


def test_real_scans_get_organ_maps_in_their_geometry(real_data_dir, trained_3d, tmp_path):
    """The three real scans (CT and MR, RAS-stored, a crop with a placeholder header) through a 3d model:
    every organ map has its scan's size, spacing, origin and direction."""
    for folder in ("totalseg_ct", "totalseg_mr", "lits117"):
        image = real_data_dir / folder / "image.nii.gz"
        report = predict(image, tmp_path / folder, model=trained_3d["output"], device="cpu", progress=False)
        assert report["n_ok"] == 1, report["scans"]
        mask = read_image(tmp_path / folder / "image.nii.gz", dtype=None)
        assert mask.geometry == read_image(image).geometry and set(np.unique(mask.array)) <= set(
            range(len(CLASSES) + 1)
        )
    assert report["scans"][0]["modality"] == "CT"


def test_batch_size_is_refused_for_a_3d_model():
    """A 3d model segments a whole volume per pass: --batch-size would be silently ignored, so it is refused."""
    from types import SimpleNamespace

    from liverwild.errors import ConfigurationError
    from liverwild.inference import PredictorOptions, make_predictor

    with pytest.raises(ConfigurationError, match="--batch-size 8: a 3d model"):
        make_predictor(SimpleNamespace(configuration="3d"), torch.device("cpu"), PredictorOptions(batch_size=8))


def test_a_3d_models_seg_has_one_coded_segment_per_organ_and_statistics_per_organ(organ_study, trained_3d, tmp_path):
    """Issue 27 with an organ map: the SEG of a DICOM series read back (pydicom only) equals the NIfTI organ
    map, its segments are the model's organs with their SNOMED CT codes, and statistics.csv has one row
    per organ whose volume is the report's."""
    pytest.importorskip("highdicom")
    import pandas as pd
    import pydicom
    import SimpleITK as sitk
    from segcheck import seg_on_source_grid

    from liverwild.io import write_dicom_series

    source = read_image(sorted((organ_study / "raw" / "PhantomPortalCT" / "imagesTr").iterdir())[0])
    write_dicom_series(np.round(source.array).astype(np.int16), source.geometry, tmp_path / "in" / "series")
    report = predict(
        tmp_path / "in",
        tmp_path / "out",
        model=trained_3d["output"],
        device="cpu",
        progress=False,
        output_types=("nifti", "dicom-seg"),
        statistics=True,
    )
    (scan,) = report["scans"]
    nifti = sitk.ReadImage(str(tmp_path / "out" / "series.nii.gz"))
    rebuilt, segments = seg_on_source_grid(tmp_path / "out" / "series_seg.dcm", tmp_path / "in" / "series", nifti)
    assert np.array_equal(rebuilt, sitk.GetArrayFromImage(nifti))
    assert [segments[k].SegmentLabel for k in sorted(segments)] == CLASSES
    codes = {segments[k].SegmentLabel: segments[k].SegmentedPropertyTypeCodeSequence[0].CodeValue for k in segments}
    assert codes["liver"] == "10200004" and codes["spleen"] == "78961009" and codes["left_kidney"] == "64033007"
    assert "ImageComments" not in pydicom.dcmread(tmp_path / "out" / "series_seg.dcm")  # not the default model
    table = pd.read_csv(tmp_path / "out" / "statistics.csv")
    assert list(table["organ"]) == CLASSES
    assert dict(zip(table["organ"], table["volume_ml"])) == pytest.approx(scan["organ_ml"], abs=1e-3)
    assert set(scan["components_removed"]) == set(CLASSES)
    assert dict(zip(table["organ"], table["components_removed"])) == scan["components_removed"]
