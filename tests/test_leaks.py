"""Leak-proof folds: the same scan is recognised in any file format, and folds exclude it."""

import gzip
import json
import shutil

import numpy as np
import pytest

from liverwild.io import Geometry, read_image, write_dicom_series, write_volume
from liverwild.phantoms import generate_case
from planning.content import content_digest, duplicates
from preprocessing.splits import make_loo_folds


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """One portal CT phantom written as .nii.gz, .nii (gunzipped copy), .nrrd and a DICOM series, plus
    a header-only change and a different scan."""
    root = tmp_path_factory.mktemp("leaks")
    image, _, _ = generate_case("PhantomPortalCT", seed=3, case=0, n_slices=20)
    other, _, _ = generate_case("PhantomPortalCT", seed=3, case=1, n_slices=20)
    paths = {"nii.gz": write_volume(image.array, image.geometry, root / "scan.nii.gz")}
    with gzip.open(paths["nii.gz"], "rb") as src, open(root / "scan.nii", "wb") as dst:
        shutil.copyfileobj(src, dst)
    paths["nii"] = root / "scan.nii"
    paths["nrrd"] = write_volume(image.array, image.geometry, root / "scan.nrrd")
    write_dicom_series(image.array, image.geometry, root / "dicom")
    paths["dicom"] = root / "dicom"
    moved = Geometry(image.geometry.size, image.geometry.spacing, (1.0, 2.0, 3.0), image.geometry.direction)
    paths["moved origin"] = write_volume(image.array, moved, root / "moved.nii.gz")
    paths["other scan"] = write_volume(other.array, other.geometry, root / "other.nii.gz")
    return paths


def digest(path):
    volume = read_image(path)
    return content_digest(volume.array, volume.geometry)


def test_same_scan_in_any_format_has_the_same_digest(scans):
    reference = digest(scans["nii.gz"])
    for kind in ("nii", "nrrd", "dicom", "moved origin"):
        assert digest(scans[kind]) == reference, kind
    assert digest(scans["other scan"]) != reference


def test_digest_ignores_storage_orientation_but_not_content():
    from liverwild.io import Reorientation

    image, _, _ = generate_case("PhantomT2MR", seed=0, case=0, n_slices=10)  # stored LAS
    reorient = Reorientation.from_geometry(image.geometry)
    canonical = np.ascontiguousarray(reorient.to_canonical(image.array))
    assert reorient.canonical_geometry(image.geometry).direction != image.geometry.direction
    assert content_digest(canonical, reorient.canonical_geometry(image.geometry)) == content_digest(
        image.array, image.geometry
    )
    changed = image.array.astype(np.float32).copy()
    changed[5, 40:60, 40:60] += 300  # a lesion more: another scan
    assert content_digest(changed, image.geometry) != content_digest(image.array, image.geometry)


def test_folds_exclude_duplicates_and_declared_containment():
    datasets = {
        "LiTS": ["l0", "l1", "l2", "l3"],
        "MSD_Liver": ["m0", "m1", "m2"],
        "BTCV": ["b0", "b1", "b2", "b3"],
        "IRCADb": ["i0", "i1"],
    }
    digests = {
        "LiTS": {"l0": "aa", "l1": "bb", "l2": "cc", "l3": "dd"},
        "BTCV": {"b0": "bb", "b1": "x1", "b2": "x2", "b3": "x3"},
        "MSD_Liver": {"m0": "aa", "m1": "y1", "m2": "y2"},
        "IRCADb": {"i0": "cc", "i1": "dd"},
    }
    contained = {"IRCADb": ["LiTS", "MSD_Liver"], "MSD_Liver": ["LiTS"]}
    folds = make_loo_folds(datasets, 1, 0, contained, digests)
    lits = folds["loo_LiTS"]
    assert lits["sources"] == ["BTCV"]  # IRCADb and MSD declared inside LiTS
    assert set(lits["excluded"]) == {"BTCV", "IRCADb", "MSD_Liver"}
    assert lits["excluded"]["BTCV"] == {"b0": "same content as LiTS/l1 (content digest bb)"}
    assert "b0" not in lits["train"]["BTCV"] + lits["val"]["BTCV"]
    assert "loo_IRCADb" not in folds and "loo_MSD_Liver" not in folds
    btcv = folds["loo_BTCV"]  # LiTS's l1 is BTCV's b0: excluded there too
    assert "l1" not in btcv["train"]["LiTS"] + btcv["val"]["LiTS"] and "l1" in btcv["excluded"]["LiTS"]
    assert duplicates({"t": "aa"}, {"s1": "aa", "s2": "zz"}) == {"s1": "t"}


def test_planted_duplicate_is_excluded_by_plan_and_preprocess(tmp_path):
    """A phantom MR case copied into a CT dataset (re-written, uncompressed, under another name) is found at
    planning time and kept out of loo_PhantomT2MR, and splits.json says why."""
    from liverwild.datasets import load_dataset_json, write_dataset_json
    from liverwild.phantoms import write_phantoms
    from preprocessing.pipeline import plan_and_preprocess

    raw = tmp_path / "raw"
    write_phantoms(raw, ["PhantomT2MR", "PhantomNativeCT"], 3, 0, 0.3, 6, workers=1, progress=False)
    donor = raw / "PhantomT2MR" / "imagesTr" / "phantomt2mr_001_0000.nii.gz"
    ct = raw / "PhantomNativeCT"
    volume = read_image(donor, dtype=None)
    write_volume(volume.array, volume.geometry, ct / "imagesTr" / "planted_0000.nii.gz", compress=False)
    label = read_image(raw / "PhantomT2MR" / "labelsTr" / "phantomt2mr_001.nii.gz", dtype=None)
    write_volume(label.array, label.geometry, ct / "labelsTr" / "planted.nii.gz")
    info = load_dataset_json(ct)
    info.cases.append("planted")
    write_dataset_json(ct, info)
    plan_and_preprocess(
        ["PhantomT2MR", "PhantomNativeCT"],
        raw=str(raw),
        preprocessed=str(tmp_path / "pre"),
        random_backbone=True,
        backbone="vit_tiny_patch16_224",
        views=0,
        workers=0,
        progress=False,
    )
    splits = json.loads((tmp_path / "pre" / "splits.json").read_text(encoding="utf-8"))
    fold = splits["folds"]["loo_PhantomT2MR"]
    assert "planted" in fold["excluded"]["PhantomNativeCT"]
    assert "PhantomT2MR/phantomt2mr_001" in fold["excluded"]["PhantomNativeCT"]["planted"]
    assert "planted" not in fold["train"]["PhantomNativeCT"] + fold["val"]["PhantomNativeCT"]
    assert len(fold["train"]["PhantomNativeCT"]) + len(fold["val"]["PhantomNativeCT"]) == 3
