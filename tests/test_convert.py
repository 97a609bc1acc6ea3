"""Miniature replicas of each public dataset's layout, converted and checked voxel by voxel."""

import gzip
import json
import shutil
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import asymmetric_volume

from liverwild.cli import convert as convert_cli
from liverwild.datasets import load_dataset_json
from liverwild.datasets.conversion import convert
from liverwild.errors import LiverwildError
from liverwild.io import Geometry, read_image, read_label, write_dicom_series, write_volume

RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
DOWN = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def geometry(shape, direction=RAS, spacing=(0.8, 0.7, 2.5)):
    nz, ny, nx = shape
    return Geometry((nx, ny, nz), spacing, (12.5, -30.0, 100.0), direction)


def organ_map(shape, liver_value, others=()):
    """Asymmetric liver block plus other organ values."""
    m = np.zeros(shape, np.uint8)
    m[1:, 2:, 1:4] = liver_value
    m[-1, -1, 1] = 0  # a notch that makes every flip distinguishable
    for k, v in enumerate(others):
        m[0, k, -1] = v
    return m


def run(kind, src, raw, **kw):
    return convert(kind, src, raw, progress=False, **kw)


def check_pair(raw, name, case, expected_liver, image_array=None):
    folder = raw / name
    image = read_image(folder / "imagesTr" / f"{case}_0000.nii.gz", dtype=None)
    label = read_label(folder / "labelsTr" / f"{case}.nii.gz")
    assert label.geometry == image.geometry
    assert np.array_equal(label.array, expected_liver.astype(np.uint8))
    if image_array is not None:
        assert np.array_equal(image.array, image_array)
    return image, label


# ---- NIfTI-pair datasets ------------------------------------------------------------------------


def test_btcv_keeps_geometry_organs_and_reports_missing_label(tmp_path):
    src = tmp_path / "BTCV" / "RawData" / "Training"
    shape = (5, 8, 6)
    image, labels = asymmetric_volume(shape), organ_map(shape, 6, (1, 2, 3))
    for n in ("0001", "0002"):
        write_volume(image, geometry(shape), src / "img" / f"img{n}.nii.gz")
    write_volume(labels, geometry(shape), src / "label" / "label0001.nii.gz")
    (report,) = run("btcv", tmp_path / "BTCV", tmp_path / "raw")
    assert report.converted == ["btcv_0001"] and "btcv_0002" in report.failed and "label" in report.failed["btcv_0002"]
    check_pair(tmp_path / "raw", "BTCV", "btcv_0001", labels == 6, image)
    organs = read_label(tmp_path / "raw" / "BTCV" / "labelsTr_organs" / "btcv_0001.nii.gz").array
    assert np.array_equal(organs, labels)
    source_bytes = (src / "img" / "img0001.nii.gz").read_bytes()
    assert (
        tmp_path / "raw" / "BTCV" / "imagesTr" / "btcv_0001_0000.nii.gz"
    ).read_bytes() == source_bytes  # lossless copy
    info = load_dataset_json(tmp_path / "raw" / "BTCV")
    assert info.modality == "CT" and info.cases == ["btcv_0001"] and info.extra["organ_labels"]["liver"] == 6
    # a re-run skips what is done
    (again,) = run("btcv", tmp_path / "BTCV", tmp_path / "raw")
    assert again.skipped == ["btcv_0001"] and again.converted == []


def test_lits_tumour_is_liver_and_nii_is_compressed_losslessly(tmp_path):
    shape = (4, 7, 9)
    image = asymmetric_volume(shape)
    seg = organ_map(shape, 1)
    seg[2, 3, 2] = 2
    sitk_image = geometry(shape).apply_to(sitk.GetImageFromArray(image))
    (tmp_path / "LiTS" / "batch1").mkdir(parents=True)
    sitk.WriteImage(sitk_image, str(tmp_path / "LiTS" / "batch1" / "volume-7.nii"))
    write_volume(seg, geometry(shape), tmp_path / "LiTS" / "batch1" / "segmentation-7.nii")
    (report,) = run("lits", tmp_path / "LiTS", tmp_path / "raw")
    assert report.ok and report.converted == ["lits_007"]
    check_pair(tmp_path / "raw", "LiTS", "lits_007", seg > 0, image)
    raw_bytes = (tmp_path / "LiTS" / "batch1" / "volume-7.nii").read_bytes()
    assert gzip.decompress((tmp_path / "raw" / "LiTS" / "imagesTr" / "lits_007_0000.nii.gz").read_bytes()) == raw_bytes


def test_msd_ignores_resource_forks(tmp_path):
    root = tmp_path / "Task03_Liver"
    shape = (3, 6, 6)
    seg = organ_map(shape, 1)
    seg[1, 1, 1] = 2
    write_volume(asymmetric_volume(shape), geometry(shape, DOWN), root / "imagesTr" / "liver_3.nii.gz")
    write_volume(seg, geometry(shape, DOWN), root / "labelsTr" / "liver_3.nii.gz")
    (root / "imagesTr" / "._liver_3.nii.gz").write_bytes(b"mac junk")
    (report,) = run("msd-liver", root, tmp_path / "raw")
    assert report.ok and report.converted == ["msdliver_003"]
    check_pair(tmp_path / "raw", "MSD_Liver", "msdliver_003", seg > 0)
    assert load_dataset_json(tmp_path / "raw" / "MSD_Liver").extra["contained_in"] == ["LiTS"]


def test_amos_splits_ct_and_mr(tmp_path):
    shape = (3, 5, 5)
    for n in (1, 540):
        write_volume(
            asymmetric_volume(shape, n), geometry(shape), tmp_path / "amos" / "imagesTr" / f"amos_{n:04d}.nii.gz"
        )
        write_volume(
            organ_map(shape, 6, (1, 9)), geometry(shape), tmp_path / "amos" / "labelsTr" / f"amos_{n:04d}.nii.gz"
        )
    reports = run("amos", tmp_path / "amos", tmp_path / "raw")
    assert [r.dataset for r in reports] == ["AMOS_CT", "AMOS_MR"]
    assert load_dataset_json(tmp_path / "raw" / "AMOS_CT").cases == ["amos_0001"]
    assert load_dataset_json(tmp_path / "raw" / "AMOS_MR").modality == "MR"
    check_pair(tmp_path / "raw", "AMOS_MR", "amos_0540", organ_map(shape, 6) == 6)
    assert (tmp_path / "raw" / "AMOS_MR" / "labelsTr_organs" / "amos_0540.nii.gz").is_file()


def test_abdomenct1k_images_and_masks_in_separate_folders(tmp_path):
    shape = (3, 5, 6)
    write_volume(asymmetric_volume(shape), geometry(shape), tmp_path / "ACT" / "Image" / "Case_00011_0000.nii.gz")
    write_volume(organ_map(shape, 1, (2, 3, 4)), geometry(shape), tmp_path / "ACT" / "Mask" / "Case_00011.nii.gz")
    (report,) = run("act1k", tmp_path / "ACT", tmp_path / "raw")
    assert report.ok
    check_pair(tmp_path / "raw", "AbdomenCT1K", "act1k_00011", organ_map(shape, 1) == 1)
    assert load_dataset_json(tmp_path / "raw" / "AbdomenCT1K").extra["contained_in"] == ["LiTS", "MSD_Liver"]


def test_nnunet_with_a_chosen_liver_label(tmp_path):
    src = tmp_path / "Dataset017_Abdomen"
    shape = (3, 5, 5)
    write_volume(asymmetric_volume(shape), geometry(shape), src / "imagesTr" / "abd_001_0000.nii.gz")
    write_volume(organ_map(shape, 3, (1, 2)), geometry(shape), src / "labelsTr" / "abd_001.nii.gz")
    (src / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "MRI"},
                "labels": {"background": 0, "a": 1, "b": 2, "liver": 3},
                "numTraining": 1,
                "file_ending": ".nii.gz",
            }
        )
    )
    assert (
        convert_cli.main(["nnunet", str(src), "--liver-label", "3", "--raw", str(tmp_path / "raw"), "--no-progress"])
        == 0
    )
    info = load_dataset_json(tmp_path / "raw" / "Dataset017_Abdomen")
    assert info.modality == "MR" and info.extra["organ_labels"]["liver"] == 3
    check_pair(tmp_path / "raw", "Dataset017_Abdomen", "abd_001", organ_map(shape, 3) == 3)


# ---- DICOM-based datasets -----------------------------------------------------------------------


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), str(path))


def png_mask(k, shape, value):
    """An asymmetric mask whose size depends on the slice number k."""
    m = np.zeros(shape, np.uint8)
    m[1 : 3 + k, 2 : 4 + 2 * k] = value
    m[0, -1] = value
    return m


def test_chaos_ct_pngs_follow_file_names_and_land_on_their_slice(tmp_path):
    case = tmp_path / "CHAOS" / "Train_Sets" / "CT" / "1"
    shape = (4, 10, 12)
    image = asymmetric_volume(shape)
    # file names run superior → inferior while the stored volume runs inferior → superior
    names = [f"i{3 - k:04d},0000b.dcm" for k in range(4)]
    write_dicom_series(image, geometry(shape, (1, 0, 0, 0, 1, 0, 0, 0, 1)), case / "DICOM_anon", file_names=names)
    for j in range(4):  # PNG j belongs to the j-th DICOM file by name
        write_png(case / "Ground" / f"liver_GT_{j:03d}.png", png_mask(j, shape[1:], 255))
    (report,) = run("chaos-ct", tmp_path / "CHAOS", tmp_path / "raw")
    assert report.ok, report.failed
    image_out, label = check_pair(
        tmp_path / "raw", "CHAOS_CT", "chaosct_01", np.stack([png_mask(3 - k, shape[1:], 1) for k in range(4)]), image
    )
    assert label.geometry.orientation_code() == "LPS"


def test_chaos_mr_t2spir_organs_and_t1dual_phases(tmp_path):
    case = tmp_path / "Train_Sets" / "MR" / "2"
    shape = (3, 8, 8)
    g = geometry(shape, (1, 0, 0, 0, 1, 0, 0, 0, 1))
    image = np.abs(asymmetric_volume(shape))
    names = [f"IMG-0001-{k + 1:05d}.dcm" for k in range(3)]
    write_dicom_series(image, g, case / "T2SPIR" / "DICOM_anon", file_names=names, modality="MR")
    organs = np.zeros(shape, np.uint8)
    for k, name in enumerate(names):
        png = png_mask(k, shape[1:], 63)
        png[6, 6], png[7, 0], png[0, 0] = 126, 190, 250
        organs[k] = np.select([png == 63, png == 126, png == 190, png == 250], [1, 2, 3, 4], 0)
        write_png(case / "T2SPIR" / "Ground" / name.replace(".dcm", ".png"), png)
    (report,) = run("chaos-mr", tmp_path, tmp_path / "raw")
    assert report.ok, report.failed
    check_pair(tmp_path / "raw", "CHAOS_MR", "chaosmr_02", organs == 1, image)
    assert np.array_equal(
        read_label(tmp_path / "raw" / "CHAOS_MR" / "labelsTr_organs" / "chaosmr_02.nii.gz").array, organs
    )
    # T1-DUAL: in- and opposed-phase slices share the folder, told apart by echo time
    t1 = case / "T1DUAL" / "DICOM_anon"
    write_dicom_series(
        image,
        g,
        t1,
        file_names=[f"IMG-0002-{k + 1:05d}.dcm" for k in range(3)],
        modality="MR",
        series_uid="1.2.3.44",
        extra_tags={"0018|0081": "4.4"},
    )
    write_dicom_series(
        image + 7,
        g,
        t1,
        file_names=[f"IMG-0003-{k + 1:05d}.dcm" for k in range(3)],
        modality="MR",
        series_uid="1.2.3.45",
        extra_tags={"0018|0081": "2.2"},
    )
    for k in range(3):
        write_png(case / "T1DUAL" / "Ground" / f"IMG-0002-{k + 1:05d}.png", png_mask(k, shape[1:], 63))
    (t1_report,) = run("chaos-mr", tmp_path, tmp_path / "raw", sequence="T1DUAL_out")
    assert t1_report.dataset == "CHAOS_MR_T1out" and t1_report.ok, t1_report.failed
    out_image = read_image(tmp_path / "raw" / "CHAOS_MR_T1out" / "imagesTr" / "chaosmr_02_0000.nii.gz", dtype=None)
    assert np.array_equal(out_image.array, image + 7)


def test_chaos_mask_count_mismatch_is_reported(tmp_path):
    case = tmp_path / "Train_Sets" / "CT" / "3"
    shape = (3, 6, 6)
    write_dicom_series(asymmetric_volume(shape), geometry(shape), case / "DICOM_anon")
    write_png(case / "Ground" / "liver_GT_000.png", png_mask(0, shape[1:], 255))
    (report,) = run("chaos-ct", tmp_path, tmp_path / "raw")
    assert "1 PNG masks for 3 DICOM slices" in report.failed["chaosct_03"]


def test_ircadb_zipped_and_unzipped_with_gap_detection(tmp_path):
    shape = (4, 9, 7)
    g = geometry(shape, (1, 0, 0, 0, 1, 0, 0, 0, 1))
    for n, zipped in ((1, False), (2, True), (3, False)):
        root = tmp_path / "ircad" / f"3Dircadb1.{n}"
        image = asymmetric_volume(shape, n)
        mask = organ_map(shape, 255)
        names = [f"image_{k}" for k in range(4)]
        write_dicom_series(image, g, root / "PATIENT_DICOM", file_names=names)
        write_dicom_series(mask, g, root / "MASKS_DICOM" / "liver", file_names=names, series_uid=f"1.2.9.{n}")
        if zipped:
            for name in ("PATIENT_DICOM", "MASKS_DICOM"):
                with zipfile.ZipFile(root / f"{name}.zip", "w") as z:
                    for f in (root / name).rglob("*"):
                        z.write(f, f.relative_to(root))
                shutil.rmtree(root / name)
        if n == 3:
            (root / "PATIENT_DICOM" / "image_2").unlink()  # a missing slice
    (report,) = run("ircadb", tmp_path / "ircad", tmp_path / "raw")
    assert sorted(report.converted) == ["ircadb_01", "ircadb_02"]
    assert "gap in the series" in report.failed["ircadb_03"]
    for n in (1, 2):
        check_pair(
            tmp_path / "raw", "IRCADb", f"ircadb_{n:02d}", organ_map(shape, 255) > 0, asymmetric_volume(shape, n)
        )
    assert load_dataset_json(tmp_path / "raw" / "IRCADb").extra["contained_in"] == ["LiTS", "MSD_Liver"]


def test_unknown_layout_and_cli_exit_codes(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LiverwildError, match="no btcv cases found"):
        run("btcv", tmp_path / "empty", tmp_path / "raw")
    assert convert_cli.main(["btcv", str(tmp_path / "empty"), "--raw", str(tmp_path / "raw")]) == 1
    assert "no btcv cases found" in capsys.readouterr().err
    assert convert_cli.main(["lits", str(tmp_path / "nowhere"), "--raw", str(tmp_path / "raw")]) == 1


def test_converter_registry_holds_every_kind_and_accepts_new_ones(tmp_path):
    from liverwild.datasets.conversion import BTCV, CONVERTERS, convert, make_converters, register_converter
    from liverwild.errors import ConfigurationError

    assert {"btcv", "lits", "msd-liver", "chaos-ct", "chaos-mr", "ircadb", "amos", "act1k", "nnunet"} <= set(CONVERTERS)
    assert [suffix for _, suffix in make_converters("amos", amos_modalities=("MR",))] == ["_MR"]
    assert make_converters("chaos-mr", sequence="T1DUAL_in")[0][1] == "_T1in"
    with pytest.raises(ConfigurationError, match="unknown dataset kind 'nope'"):
        convert("nope", tmp_path, tmp_path / "raw")

    @register_converter("my-btcv", default_name="MyBTCV", layout="as BTCV")
    def _mine():
        return [(BTCV(), "")]

    try:
        src = tmp_path / "src" / "RawData" / "Training"
        shape = (3, 5, 5)
        for sub, data in (("img", asymmetric_volume(shape, 1)), ("label", organ_map(shape, 6, (1, 9)))):
            write_volume(data, geometry(shape), src / sub / f"{sub}0001.nii.gz")
        [report] = convert("my-btcv", tmp_path / "src", tmp_path / "raw", progress=False)
        assert report.ok and (tmp_path / "raw" / "MyBTCV" / "labelsTr" / "btcv_0001.nii.gz").is_file()
    finally:
        CONVERTERS.pop("my-btcv")
