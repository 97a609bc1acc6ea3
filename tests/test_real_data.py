"""The real scans in ../shared/data/real (skipped when absent)."""

import numpy as np
import pytest

from liverwild.io import Reorientation, read_image, read_label, write_mask


@pytest.mark.parametrize(
    "folder, size, n_liver", [("totalseg_ct", (122, 101, 112), 41692), ("totalseg_mr", (117, 91, 20), 18480)]
)
def test_totalsegmentator_scans_read_with_geometry(real_data_dir, tmp_path, folder, size, n_liver):
    image = read_image(real_data_dir / folder / "image.nii.gz")
    label = read_label(real_data_dir / folder / "liver.nii.gz")
    assert image.geometry.size == size
    assert np.allclose(image.geometry.spacing, 3.0, atol=0.01)
    assert label.geometry.differences(image.geometry) == []
    assert int((label.array > 0).sum()) == n_liver
    # writing a mask keeps the geometry exactly
    out = read_image(write_mask(label.array > 0, image.geometry, tmp_path / "mask.nii.gz"), dtype=None)
    assert out.geometry == image.geometry and np.array_equal(out.array, (label.array > 0).astype(np.uint8))
    # canonical reorientation is exact
    r = Reorientation.from_geometry(image.geometry)
    assert np.array_equal(r.from_canonical(r.to_canonical(image.array)), image.array)


def test_totalseg_ct_is_ras_stored_and_liver_on_patient_right(real_data_dir):
    image = read_image(real_data_dir / "totalseg_ct" / "image.nii.gz")
    label = read_label(real_data_dir / "totalseg_ct" / "liver.nii.gz")
    assert image.geometry.orientation_code() == "RAS"
    assert -1300 < image.array.min() < -1000 and image.array.max() > 3000
    idx = np.argwhere(label.array > 0)[:, ::-1]
    centroid = label.geometry.index_to_physical(idx).mean(0)
    body = image.geometry.index_to_physical(np.argwhere(image.array > -300)[:, ::-1]).mean(0)
    assert centroid[0] < body[0], "the liver lies on the patient's right (−x in LPS)"


def test_lits_crop_reads(real_data_dir):
    image = read_image(real_data_dir / "lits117" / "image.nii.gz")
    label = read_label(real_data_dir / "lits117" / "label_liver1_tumour2.nii.gz")
    assert image.geometry.size == (128, 128, 128)
    assert set(np.unique(label.array).tolist()) <= {0, 1, 2}
    assert label.geometry.differences(image.geometry) == []


def test_real_scans_preprocess_as_raw_datasets(real_data_dir, tmp_path):
    """The real CT and MR scans, arranged as two raw datasets, go through plan and preprocess."""
    import shutil

    from liverwild.datasets import DatasetInfo, write_dataset_json
    from preprocessing import CachedCase
    from preprocessing.pipeline import plan_and_preprocess

    raw = tmp_path / "raw"
    layout = {
        "RealCT": (
            "CT",
            [
                ("totalseg_ct", "image.nii.gz", "liver.nii.gz"),
                ("lits117", "image.nii.gz", "label_liver1_tumour2.nii.gz"),
            ],
        ),
        "RealMR": ("MR", [("totalseg_mr", "image.nii.gz", "liver.nii.gz")]),
    }
    for name, (modality, items) in layout.items():
        for folder, image, label in items:
            (raw / name / "imagesTr").mkdir(parents=True, exist_ok=True)
            (raw / name / "labelsTr").mkdir(parents=True, exist_ok=True)
            shutil.copy(real_data_dir / folder / image, raw / name / "imagesTr" / f"{folder}_0000.nii.gz")
            shutil.copy(real_data_dir / folder / label, raw / name / "labelsTr" / f"{folder}.nii.gz")
        write_dataset_json(
            raw / name,
            DatasetInfo(
                name,
                modality,
                {"background": 0, "liver": 1, "tumour": 2},
                [f for f, _, _ in items],
                source="shared/data/real",
            ),
        )
    reports = plan_and_preprocess(
        ["RealCT", "RealMR"],
        raw=str(raw),
        preprocessed=str(tmp_path / "pre"),
        random_backbone=True,
        backbone="vit_tiny_patch16_224",
        views=0,
        workers=0,
        progress=False,
    )
    assert [len(r.processed) for r in reports] == [2, 1] and not any(r.failed for r in reports)
    ct = CachedCase(tmp_path / "pre" / "RealCT" / reports[0].data_identifier / "totalseg_ct")
    assert ct.slices.shape == (1, 112, 224, 224) and ct.features.shape == (1, 112, 192, 14, 14)
    assert ct.properties["liver_slices"] == [69, 111]  # README: liver on slices 69–111
    assert ct.properties["geometry"]["size"] == [122, 101, 112]
    mr = CachedCase(tmp_path / "pre" / "RealMR" / reports[1].data_identifier / "totalseg_mr")
    assert mr.slices.shape[1] == 20 and mr.properties["normalization"]["body_median"] > 0
    lits = CachedCase(tmp_path / "pre" / "RealCT" / reports[0].data_identifier / "lits117")
    assert lits.labels[0].max() == 1  # tumour (2) counted as liver


def test_real_scan_tests_skip_only_where_the_scans_are_absent_and_not_required(tmp_path):
    from conftest import REAL_SCANS, locate_real_data

    assert locate_real_data({"LW_REAL_DATA": str(tmp_path / "none")})[0] is None  # absent: skip
    with pytest.raises(ValueError, match="LW_REQUIRE_REAL_DATA"):
        locate_real_data({"LW_REAL_DATA": str(tmp_path / "none"), "LW_REQUIRE_REAL_DATA": "1"})
    for name in REAL_SCANS[:-1]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "image.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=f"lacks {REAL_SCANS[-1]}"):
        locate_real_data({"LW_REAL_DATA": str(tmp_path)})  # present but incomplete: fail, never skip
    (tmp_path / REAL_SCANS[-1]).mkdir()
    (tmp_path / REAL_SCANS[-1] / "image.nii.gz").write_bytes(b"")
    assert locate_real_data({"LW_REAL_DATA": str(tmp_path)}) == (tmp_path, None)
