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
    # another stem: beside scan.nii.gz, ITK would read scan.nii.gz with scan.nii's voxels (ITK issue 2243)
    with gzip.open(paths["nii.gz"], "rb") as src, open(root / "scan_gunzipped.nii", "wb") as dst:
        shutil.copyfileobj(src, dst)
    paths["nii"] = root / "scan_gunzipped.nii"
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


def canonical_scan(case: int, n_slices: int = 40):
    """A portal CT phantom in the canonical layout: ``(array, geometry)``."""
    from liverwild.io import Reorientation

    image, _, _ = generate_case("PhantomPortalCT", seed=5, case=case, n_slices=n_slices)
    reorient = Reorientation.from_geometry(image.geometry)
    array = np.ascontiguousarray(reorient.to_canonical(image.array), dtype=np.float32)
    return array, reorient.canonical_geometry(image.geometry)


def cropped_and_shifted(array, geometry, start: int = 6, stop: int = 30, offset: float = 1024.0):
    """Slices ``start:stop`` of a canonical scan stored with an intensity offset (HU + 1024)."""
    part = array[start:stop] + np.float32(offset)
    return part, Geometry((*geometry.size[:2], stop - start), geometry.spacing, geometry.origin, geometry.direction)


def test_slice_digests_recognise_a_z_crop_with_an_intensity_offset():
    from planning.content import shared_slices, slice_digests

    array, geometry = canonical_scan(0)
    copy = cropped_and_shifted(array, geometry)
    assert content_digest(*copy) != content_digest(array, geometry)  # the whole-scan digest misses it
    full, cropped, other = slice_digests(array, geometry), slice_digests(*copy), slice_digests(*canonical_scan(1))
    assert len(full) >= 4 and set(cropped) <= set(full) and len(cropped) >= 2  # the crop keeps its slices' digests
    assert shared_slices({"t": full}, {"copy": cropped, "other": other}) == {"copy": ("t", len(cropped))}
    assert not set(other) & set(full)
    shifted_slice = array.copy()
    shifted_slice[10, 30:50, 30:50] += 300  # one slice changed: its digest changes, the others stay
    assert len(set(slice_digests(shifted_slice, geometry)) ^ set(full)) <= 2


def scan_digests(datasets: dict) -> tuple:
    """``(digests, slices)`` of ``{name: {case: (array, geometry)}}``, as refresh_splits reads them."""
    from planning.content import slice_digests

    digests = {n: {c: content_digest(*scan) for c, scan in cases.items()} for n, cases in datasets.items()}
    slices = {n: {c: slice_digests(*scan) for c, scan in cases.items()} for n, cases in datasets.items()}
    return digests, slices


def test_an_absent_declared_container_warns_and_a_renamed_copy_is_found_by_content(tmp_path, caplog):
    import logging

    from preprocessing.splits import update_splits

    lits = {f"l{k}": canonical_scan(k) for k in range(3)}
    ircadb = {"i0": cropped_and_shifted(*lits["l1"]), "i1": canonical_scan(7)}  # i0: a crop of l1, HU + 1024
    btcv = {"b0": canonical_scan(8), "b1": canonical_scan(9)}
    contained = {"IRCADb": ["LiTS"]}
    path = tmp_path / "splits.json"

    # LiTS imported as LiTS2017: the declared rule cannot act, the content rule finds i0
    scans = {"LiTS2017": lits, "IRCADb": ircadb, "BTCV": btcv}
    names = {n: sorted(cases) for n, cases in scans.items()}
    digests, slices = scan_digests(scans)
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        splits = update_splits(path, names, 1, 0, contained, digests, slices)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "IRCADb declares contained_in ['LiTS'], but LiTS is not preprocessed" in warning and "LiTS2017" in warning
    entry = json.loads(path.read_text(encoding="utf-8"))["containment"]["IRCADb"]
    assert entry["absent"] == ["LiTS"] and entry["content_overlap"] == {"LiTS2017": 1} and entry["unchecked"] == []
    fold = splits["folds"]["loo_LiTS2017"]
    assert "IRCADb" in fold["sources"] and list(fold["excluded"]["IRCADb"]) == ["i0"]  # i1 still trains
    assert "shares" in fold["excluded"]["IRCADb"]["i0"] and "LiTS2017/l1" in fold["excluded"]["IRCADb"]["i0"]

    # without LiTS under any name, and every case digested: nothing to warn about, but it is recorded
    del scans["LiTS2017"], names["LiTS2017"]
    digests, slices = scan_digests(scans)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        update_splits(path, names, 1, 0, contained, digests, slices)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    entry = json.loads(path.read_text(encoding="utf-8"))["containment"]["IRCADb"]
    assert entry["content_overlap"] == {} and "found no shared scan" in entry["status"]

    # a dataset without slice digests (fingerprinted before them): the digests cannot rule it out
    del slices["BTCV"]
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        update_splits(path, names, 1, 0, contained, digests, slices)
    assert "IRCADb declares contained_in" in caplog.text and "cannot rule out" in caplog.text
    assert json.loads(path.read_text(encoding="utf-8"))["containment"]["IRCADb"]["unchecked"] == ["BTCV"]

    # LiTS present under its own name: the declared rule applies
    names["LiTS"] = ["l0"]
    assert update_splits(path, names, 1, 0, contained, digests)["containment"]["IRCADb"]["absent"] == []
