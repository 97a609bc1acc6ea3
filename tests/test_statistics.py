"""Per-organ statistics (``--statistics``, issue 27): values computed by hand, components removed counted
on constructed masks, the CSV read back with pandas, and the command's CSV against the written mask."""

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from liverwild.inference.postprocessing import largest_component_per_class, postprocess
from liverwild.inference.statistics import COLUMNS, bounding_box_lps, organ_statistics, write_statistics_csv
from liverwild.io import Geometry


def test_volume_intensities_and_box_by_hand():
    # spacing (x 2, y 1, z 3) mm: 6 mm³ a voxel; origin (10, 20, 30); identity direction
    g = Geometry((5, 4, 3), (2.0, 1.0, 3.0), (10.0, 20.0, 30.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    image = np.zeros((3, 4, 5), np.float32)
    mask = np.zeros((3, 4, 5), np.uint8)
    for (k, j, i), value in zip([(0, 1, 2), (0, 1, 3), (1, 2, 2), (2, 1, 2)], [10, 20, 30, 100]):
        mask[k, j, i], image[k, j, i] = 1, value
    image[0, 0, 0] = 5000  # outside the organ: must not count
    (row,) = organ_statistics(image, mask, g, {0: "background", 1: "liver"}, "CT", {"liver": 2}, "s")
    assert row["voxels"] == 4 and row["volume_ml"] == pytest.approx(4 * 6 / 1000)
    assert row["intensity_mean"] == pytest.approx(40.0) and row["intensity_median"] == pytest.approx(25.0)
    assert row["intensity_sd"] == pytest.approx(np.sqrt((30**2 + 20**2 + 10**2 + 60**2) / 4))
    assert row["intensity_unit"] == "HU" and row["components_removed"] == 2
    # x = 10 + 2 i (i 2..3), y = 20 + j (j 1..2), z = 30 + 3 k (k 0..2)
    assert [row[f"bbox_min_{a}_mm"] for a in "xyz"] == pytest.approx([14, 21, 30])
    assert [row[f"bbox_max_{a}_mm"] for a in "xyz"] == pytest.approx([16, 22, 36])
    assert list(row) == COLUMNS


def test_box_of_an_oblique_grid_is_that_of_every_voxel_centre():
    """Against SimpleITK's index → physical point for every voxel of the mask (an independent mapping)."""
    angle = np.radians(30)
    c, s = np.cos(angle), np.sin(angle)
    direction = (c, 0, s, 0, 1, 0, -s, 0, c)
    g = Geometry((6, 5, 4), (0.8, 1.1, 2.5), (-3.0, 7.0, 11.0), direction)
    rng = np.random.default_rng(1)
    mask = rng.random((4, 5, 6)) < 0.3
    image = sitk.Image(6, 5, 4, sitk.sitkUInt8)
    g.apply_to(image)
    points = np.array([image.TransformIndexToPhysicalPoint((int(i), int(j), int(k))) for k, j, i in np.argwhere(mask)])
    lo, hi = bounding_box_lps(mask, g)
    assert lo == pytest.approx(points.min(axis=0)) and hi == pytest.approx(points.max(axis=0))
    assert bounding_box_lps(np.zeros((4, 5, 6), bool), g) is None


def blobs() -> np.ndarray:
    """A 6³ cube and three single voxels apart from it and from each other (26-connectivity)."""
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:8, 2:8, 2:8] = 1
    mask[15, 15, 15] = mask[15, 2, 15] = mask[2, 15, 15] = 1
    return mask


def test_components_removed_are_counted():
    g = Geometry((20, 20, 20), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    record: dict = {}
    kept = postprocess(blobs(), g, ["largest_component"], record=record)
    assert record["components_removed"] == 3 and kept.sum() == 6**3
    record = {}
    postprocess(blobs(), g, ["fill_holes"], record=record)
    assert record["components_removed"] == 0
    organs = blobs()
    organs[10:14, 10:14, 2:5] = 2  # one piece of organ 2, apart from organ 1's pieces
    organs[15, 15, 15] = 2  # organ 1 loses one stray voxel to organ 2: organ 2 now has two pieces
    removed: dict = {}
    largest_component_per_class(organs, removed)
    assert removed == {1: 2, 2: 1}


def test_csv_reads_back_with_pandas(tmp_path):
    g = Geometry((4, 4, 2), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    mask = np.zeros((2, 4, 4), np.uint8)
    mask[0, 1:3, 1:3] = 1
    image = np.arange(32, dtype=np.float32).reshape(2, 4, 4)
    rows = organ_statistics(image, mask, g, {1: "liver", 2: "spleen"}, "MR", None, "case")
    write_statistics_csv([{"statistics": rows}, {"statistics": []}], tmp_path / "statistics.csv")
    table = pd.read_csv(tmp_path / "statistics.csv")
    assert list(table.columns) == COLUMNS and list(table["organ"]) == ["liver", "spleen"]
    assert table.loc[0, "intensity_mean"] == pytest.approx(np.mean([5, 6, 9, 10]))
    assert table.loc[0, "volume_ml"] == pytest.approx(4 * 2 / 1000) and table.loc[0, "intensity_unit"] == "input values"
    assert (
        table.loc[1, "voxels"] == 0
        and np.isnan(table.loc[1, "intensity_mean"])
        and np.isnan(table.loc[1, "bbox_min_x_mm"])
    )


def test_lw_predict_statistics_match_the_written_mask(tmp_path):
    """The command's CSV against the mask it wrote and the input image, recomputed here with SimpleITK."""
    from liverwild.cli import predict as predict_cli
    from liverwild.io import write_volume
    from liverwild.phantoms import generate_case
    from liverwild.phantoms.randomized import case_domain

    image, _, _ = generate_case(case_domain(0, "CT", 2, max_slices=12), 0, 2)
    write_volume(image.array, image.geometry, tmp_path / "in" / "ct.nii.gz")
    out = tmp_path / "out"
    argv = ["-i", str(tmp_path / "in"), "-o", str(out), "--statistics", "--device", "cpu", "--no-progress"]
    assert predict_cli.main(argv) == 0
    table = pd.read_csv(out / "statistics.csv")
    mask_image = sitk.ReadImage(str(out / "ct.nii.gz"))
    mask = sitk.GetArrayFromImage(mask_image) > 0
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "in" / "ct.nii.gz")))[mask].astype(float)
    (row,) = table.to_dict("records")
    assert row["scan"] == "ct" and row["organ"] == "liver" and row["voxels"] == mask.sum() > 100
    assert row["volume_ml"] == pytest.approx(mask.sum() * np.prod(mask_image.GetSpacing()) / 1000, rel=1e-4)
    assert row["intensity_mean"] == pytest.approx(values.mean(), rel=1e-4)
    assert row["intensity_median"] == pytest.approx(np.median(values), rel=1e-4)
    assert row["intensity_sd"] == pytest.approx(values.std(), rel=1e-4)
    corners = np.array(
        [mask_image.TransformIndexToPhysicalPoint((int(i), int(j), int(k))) for k, j, i in np.argwhere(mask)]
    )
    assert [row[f"bbox_min_{a}_mm"] for a in "xyz"] == pytest.approx(corners.min(axis=0), abs=1e-3)
    assert [row[f"bbox_max_{a}_mm"] for a in "xyz"] == pytest.approx(corners.max(axis=0), abs=1e-3)
    report = json.loads((out / "prediction_report.json").read_text(encoding="utf-8"))
    assert report["outputs"]["statistics"] == "statistics.csv"
    assert row["components_removed"] == report["scans"][0]["components_removed"]["liver"]
