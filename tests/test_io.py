import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import SIGNED_PERMUTATIONS, asymmetric_volume, geometry_for

from liverwild.errors import ImageReadError
from liverwild.io import (
    Geometry,
    Reorientation,
    read_image,
    read_label,
    sorted_series_files,
    stored_geometry,
    write_dicom_series,
    write_mask,
    write_volume,
)

RAS_DIRECTION = (-1, 0, 0, 0, -1, 0, 0, 0, 1)


def nifti_sform(path):
    """The sform rows of a NIfTI-1 file, read straight from the header (RAS convention)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        header = f.read(348)
    rows = [struct.unpack("<4f", header[o : o + 16]) for o in (280, 296, 312)]
    return np.array(rows)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), RAS_DIRECTION, (1, 0, 0, 0, -1, 0, 0, 0, -1)])
def test_round_trip_keeps_array_and_geometry(tmp_path, suffix, direction):
    array = asymmetric_volume()
    geometry = geometry_for(array.shape, direction=direction)
    path = write_volume(array, geometry, tmp_path / f"scan{suffix}")
    volume = read_image(path, dtype=None)
    assert np.array_equal(volume.array, array)
    assert volume.geometry.differences(geometry) == []


def test_metaimage_with_detached_header_reads(tmp_path):
    array = asymmetric_volume()
    geometry = geometry_for(array.shape, direction=RAS_DIRECTION)
    image = geometry.apply_to(sitk.GetImageFromArray(array))
    sitk.WriteImage(image, str(tmp_path / "scan.mhd"))
    assert (tmp_path / "scan.raw").is_file() or (tmp_path / "scan.zraw").is_file()
    volume = read_image(tmp_path / "scan.mhd", dtype=None)
    assert np.array_equal(volume.array, array) and volume.geometry.differences(geometry) == []
    with pytest.raises(ValueError, match="detached-header"):
        write_volume(array, geometry, tmp_path / "out.mhd")


def test_ras_stored_nifti_header_and_reading(tmp_path):
    """A NIfTI whose affine is a positive (RAS) diagonal reads as LPS direction diag(-1, -1, 1)."""
    array = asymmetric_volume()
    geometry = geometry_for(array.shape, spacing=(0.8, 0.6, 3.0), origin=(100.0, 80.0, -20.0), direction=RAS_DIRECTION)
    path = write_volume(array, geometry, tmp_path / "ras.nii.gz")
    sform = nifti_sform(path)
    assert np.allclose(np.diag(sform[:, :3]), [0.8, 0.6, 3.0])  # positive RAS diagonal
    assert np.allclose(sform[:, 3], [-100.0, -80.0, -20.0])  # RAS origin = LPS with x, y negated
    volume = read_image(path)
    assert volume.geometry.orientation_code() == "RAS"
    # a marked voxel lands at the same physical point as computed from the file's own affine
    k, j, i = 2, 5, 3
    ras = sform[:, :3] @ np.array([i, j, k]) + sform[:, 3]
    lps = volume.geometry.index_to_physical((i, j, k))
    assert np.allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-4)


def test_write_mask_copies_reference_geometry_exactly(tmp_path):
    array = asymmetric_volume((5, 6, 8))
    geometry = geometry_for(array.shape, spacing=(0.703125, 0.703125, 5.0), direction=RAS_DIRECTION)
    reference = read_image(write_volume(array, geometry, tmp_path / "ref.nii.gz"))
    mask = (array > 0).astype(bool)
    out = write_mask(mask, reference.geometry, tmp_path / "mask.nii.gz")
    written = read_image(out, dtype=None)
    assert written.array.dtype == np.uint8
    assert np.array_equal(written.array, mask.astype(np.uint8))
    assert written.geometry == reference.geometry  # exact, not only within tolerance
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_write_refuses_shape_mismatch(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        write_mask(np.zeros((2, 3, 4)), geometry_for((3, 3, 4)), tmp_path / "m.nii.gz")


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (1, 0, 0, 0, 1, 0, 0, 0, -1), RAS_DIRECTION])
def test_dicom_series_is_ordered_by_position_not_name(tmp_path, direction):
    array = asymmetric_volume((6, 8, 10))
    geometry = geometry_for(array.shape, spacing=(0.8, 0.8, 2.0), direction=direction)
    rng = np.random.default_rng(1)
    names = [f"IM{n:03d}.dcm" for n in rng.permutation(6)]  # file names say nothing about order
    write_dicom_series(array, geometry, tmp_path / "series", file_names=names)
    volume = read_image(tmp_path / "series", dtype=None)
    # the volume is read in the slice order of the normal; for a reversed z axis the reader stores
    # slices inferior→superior, so compare in the canonical layout
    expected = Reorientation.from_geometry(geometry).to_canonical(array)
    got = Reorientation.from_geometry(volume.geometry).to_canonical(volume.array)
    assert np.array_equal(got, expected)
    assert np.allclose(
        Reorientation.from_geometry(volume.geometry).canonical_geometry(volume.geometry).origin,
        Reorientation.from_geometry(geometry).canonical_geometry(geometry).origin,
        atol=1e-3,
    )


def test_dicom_gap_is_an_error_naming_the_slices(tmp_path):
    array = asymmetric_volume((6, 8, 10))
    paths = write_dicom_series(array, geometry_for(array.shape), tmp_path / "gap")
    paths[3].unlink()
    with pytest.raises(ImageReadError, match="gap in the series"):
        read_image(tmp_path / "gap")


def edit_slices(paths, change) -> None:
    """``change(k, dataset)`` on each slice file (in the written order), saved in place (pydicom)."""
    import pydicom

    for k, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        change(k, dataset)
        dataset.save_as(path)


def stack_at(heights, sideways=None):
    """A change moving slice ``k`` to height ``heights[k]`` mm (and ``sideways[k]`` mm along x)."""

    def change(k, dataset):
        x, y, _ = (float(v) for v in dataset.ImagePositionPatient)
        dataset.ImagePositionPatient = [x + (sideways[k] if sideways else 0.0), y, float(heights[k])]

    return change


def test_uneven_slice_spacing_is_refused_naming_the_slice(tmp_path):
    """ITK would place every slice on one spacing ((last - first) / (n - 1) = 6.11 mm here), the slice
    at 20 mm at 24.4 mm: the mask and every volume figure on a grid the scanner never used."""
    array = asymmetric_volume((10, 8, 10))
    paths = write_dicom_series(array, geometry_for(array.shape, spacing=(0.8, 0.8, 5.0)), tmp_path / "uneven")
    edit_slices(paths, stack_at([0, 5, 10, 15, 20, 27, 34, 41, 48, 55]))
    with pytest.raises(ImageReadError, match=r"uneven slice spacing \(steps from 5.00 to 7.00 mm\): slice_0004.dcm"):
        read_image(tmp_path / "uneven")
    jitter = np.array([0.0, 0.01, -0.01, 0.0, 0.01, 0.0, -0.01, 0.0, 0.01, 0.0])  # rounding in the headers
    edit_slices(paths, stack_at(5.0 * np.arange(10) + jitter))
    volume = read_image(tmp_path / "uneven", dtype=None)
    assert volume.geometry.spacing[2] == pytest.approx(5.0, abs=1e-3) and np.array_equal(volume.array, array)


def test_thin_slices_with_positions_rounded_to_a_tenth_of_a_millimetre_read(tmp_path):
    """0.625 mm slices from -100.02 mm, the positions written with one decimal (steps 0.6 and 0.7 mm): off
    the regular grid by under 0.1 mm, nothing misplaced — not 'uneven spacing'."""
    array = asymmetric_volume((24, 8, 10))
    paths = write_dicom_series(array, geometry_for(array.shape, spacing=(0.8, 0.8, 0.625)), tmp_path / "thin")
    edit_slices(paths, stack_at(np.round(-100.02 + 0.625 * np.arange(24), 1)))
    volume = read_image(tmp_path / "thin", dtype=None)
    assert volume.geometry.spacing[2] == pytest.approx(0.625, abs=0.01) and np.array_equal(volume.array, array)


def test_a_small_gantry_tilt_is_refused(tmp_path):
    """0.5° over 20 slices of 5 mm moves the last slice 0.87 mm sideways, over half a 0.8 mm pixel: ITK would
    stack the slices straight and drop it (the earlier 1 % rule let tilts under 0.57° through)."""
    array = asymmetric_volume((20, 8, 10))
    paths = write_dicom_series(array, geometry_for(array.shape, spacing=(0.8, 0.8, 5.0)), tmp_path / "tilt")
    drift = np.tan(np.radians(0.5)) * 5.0 * np.arange(20)
    edit_slices(paths, stack_at(5.0 * np.arange(20), sideways=list(drift)))
    with pytest.raises(ImageReadError, match=r"gantry tilt of about 0.5°"):
        read_image(tmp_path / "tilt")


def test_a_rescale_that_differs_between_slices_is_applied_to_each(tmp_path):
    """ITK casts every slice to the first one's pixel type: a slope of 40 on one slice of an MR series
    overflowed (40 000 read as -25 536)."""
    array = np.full((5, 8, 10), 1000, np.int16)
    paths = write_dicom_series(array, geometry_for(array.shape), tmp_path / "mr", modality="MR")

    def slope(k, dataset):
        dataset.RescaleSlope, dataset.RescaleIntercept = ("40", "0") if k == 3 else ("1", "0")

    edit_slices(paths, slope)
    volume = read_image(tmp_path / "mr", dtype=None)
    expected = np.full(array.shape, 1000.0, np.float32)
    expected[3] = 40000.0
    canonical = Reorientation.from_geometry(volume.geometry).to_canonical(volume.array)
    assert np.array_equal(canonical, Reorientation.from_geometry(geometry_for(array.shape)).to_canonical(expected))


def test_a_series_without_pixel_spacing_is_refused(tmp_path):
    array = asymmetric_volume((4, 8, 10))
    paths = write_dicom_series(array, geometry_for(array.shape), tmp_path / "nospacing")
    edit_slices(paths, lambda k, dataset: delattr(dataset, "PixelSpacing"))
    with pytest.raises(ImageReadError, match=r"no PixelSpacing \(0028,0030\): the voxel size is unknown"):
        read_image(tmp_path / "nospacing")


def test_several_series_in_one_folder(tmp_path):
    array = asymmetric_volume((4, 8, 10))
    g = geometry_for(array.shape)
    write_dicom_series(array, g, tmp_path / "two", file_names=[f"a{k}.dcm" for k in range(4)], series_uid="1.2.3.1")
    write_dicom_series(array + 1, g, tmp_path / "two", file_names=[f"b{k}.dcm" for k in range(4)], series_uid="1.2.3.2")
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "two")
    assert "1.2.3.1" in str(info.value) and "1.2.3.2" in str(info.value) and "its own folder" in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    chosen = read_image(tmp_path / "two", dtype=None, series_uid="1.2.3.2")
    assert np.array_equal(chosen.array, array + 1)
    assert len(sorted_series_files(tmp_path / "two", "1.2.3.1")) == 4


@pytest.mark.parametrize("direction", SIGNED_PERMUTATIONS)
def test_reorientation_is_exactly_invertible_and_matches_dicomorient(direction):
    array = asymmetric_volume((5, 6, 7))
    geometry = geometry_for(array.shape, spacing=(0.5, 1.25, 3.0), direction=direction)
    r = Reorientation.from_geometry(geometry)
    canonical = r.to_canonical(array)
    assert np.array_equal(r.from_canonical(canonical), array)
    image = geometry.apply_to(sitk.GetImageFromArray(array))
    oriented = sitk.DICOMOrient(image, "LPS")
    assert np.array_equal(sitk.GetArrayFromImage(oriented), canonical)
    cg = r.canonical_geometry(geometry)
    assert cg.differences(Geometry.from_sitk(oriented)) == []
    # the same voxel sits at the same physical position in both layouts
    k, j, i = np.argwhere(array == array.max())[0]
    ck, cj, ci = np.argwhere(canonical == array.max())[0]
    assert np.allclose(geometry.index_to_physical((i, j, k)), cg.index_to_physical((ci, cj, ck)))


@pytest.mark.parametrize("direction", SIGNED_PERMUTATIONS[::5])
def test_stored_geometry_inverts_canonical_geometry(direction):
    canonical = geometry_for((5, 6, 7), spacing=(0.5, 1.25, 3.0))
    stored = stored_geometry(canonical, direction)
    r = Reorientation.from_geometry(stored)
    assert r.canonical_geometry(stored).differences(canonical) == []


def test_oblique_direction_uses_closest_axes():
    angle = np.deg2rad(20)
    c, s = np.cos(angle), np.sin(angle)
    g = geometry_for((4, 5, 6), direction=(c, -s, 0, s, c, 0, 0, 0, 1))
    r = Reorientation.from_geometry(g)
    assert r.is_identity


@pytest.mark.parametrize("euler_zx", [(45.0, 45.0), (40.0, 50.0), (50.0, 40.0)])
def test_a_doubly_oblique_grid_gets_one_patient_axis_per_index_axis(euler_zx):
    """Rotated 45° about z, then 45° about x (an oblique MR), two index axes lie nearest the same patient
    axis; the reorientation takes one each (it used to raise a bare ValueError, reported as an unexpected
    failure with a traceback), round-trips exactly and keeps every voxel where it lies."""
    from scipy.spatial.transform import Rotation

    direction = tuple(Rotation.from_euler("zx", euler_zx, degrees=True).as_matrix().ravel())
    array = asymmetric_volume((4, 5, 6))
    geometry = geometry_for(array.shape, direction=direction)
    r = Reorientation.from_geometry(geometry)
    canonical = r.to_canonical(array)
    assert sorted(canonical.shape) == sorted(array.shape) and np.array_equal(r.from_canonical(canonical), array)
    # every canonical voxel lies where its stored voxel lies: the stored (z, y, x) indices carried along
    index = np.stack(np.meshgrid(*map(np.arange, array.shape), indexing="ij"), -1)
    carried = np.stack([r.to_canonical(index[..., k]) for k in range(3)], -1)
    canonical_geometry = r.canonical_geometry(geometry)
    for voxel in [(0, 0, 0), (1, 2, 3), tuple(n - 1 for n in canonical.shape)]:
        z, y, x = (int(v) for v in carried[voxel])
        stored_at = geometry.index_to_physical((x, y, z))
        canonical_at = canonical_geometry.index_to_physical(voxel[::-1])
        assert np.allclose(stored_at, canonical_at, atol=1e-6), voxel


# ---- bad input: one line naming the file -------------------------------------------------------


def _assert_one_line_error(path, match):
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message and len(message.splitlines()) == 1
    assert match in message, message


def test_unreadable_file(tmp_path):
    path = tmp_path / "garbage.nii.gz"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    _assert_one_line_error(path, "cannot be read")


@pytest.mark.parametrize(
    "suffix, match",
    [(".nii.gz", "truncated"), (".nii", "truncated"), (".nrrd", "cannot be read"), (".mha", "cannot be read")],
)
def test_truncated_file(tmp_path, suffix, match):
    full = write_volume(asymmetric_volume((20, 30, 30)), geometry_for((20, 30, 30)), tmp_path / f"full{suffix}")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _assert_one_line_error(cut, match)


def test_a_sheared_sform_is_refused_naming_it(tmp_path):
    """ITK reads a sheared sform's scan by its qform (three warnings on stderr), nibabel and FSL by the
    sform: the mask would sit elsewhere in those tools. An orthogonal sform (ITK's own) reads."""
    array = asymmetric_volume((4, 5, 6))
    write_volume(array, geometry_for(array.shape), tmp_path / "plain.nii")
    header = bytearray((tmp_path / "plain.nii").read_bytes())
    assert struct.unpack("<h", header[254:256])[0] > 0  # ITK writes an sform: it must keep reading
    read_image(tmp_path / "plain.nii")
    rows = np.array(struct.unpack("<12f", header[280:328]), np.float32).reshape(3, 4)
    rows[0, 1] += 0.3  # x now depends on j as well: a shear
    header[280:328] = rows.astype("<f4").tobytes()
    (tmp_path / "sheared.nii").write_bytes(bytes(header))
    with gzip.open(tmp_path / "sheared_gz.nii.gz", "wb") as f:
        f.write(bytes(header))
    for name in ("sheared.nii", "sheared_gz.nii.gz"):
        _assert_one_line_error(tmp_path / name, "its sform is sheared (not a rotation with voxel sizes)")


def test_a_gzipped_nifti_beside_its_plain_twin_is_refused(tmp_path):
    """ITK reads ``x.nii.gz`` with ``x.nii`` beside it as ``x.nii.gz``'s header over ``x.nii``'s voxels
    (ITK issue 2243): a prediction scored Dice 0, a scan segmented from another file's data."""
    array = asymmetric_volume((4, 5, 6))
    write_volume(array, geometry_for(array.shape), tmp_path / "x.nii.gz")
    write_volume(np.zeros_like(array), geometry_for(array.shape), tmp_path / "x.nii")
    _assert_one_line_error(tmp_path / "x.nii.gz", "x.nii lies beside it: ITK would read that file's voxels")
    assert np.array_equal(read_image(tmp_path / "x.nii").array, np.zeros(array.shape))  # the plain one reads right


def test_two_dimensional_image(tmp_path):
    path = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 9), np.int16)), str(path))
    _assert_one_line_error(path, "is 2D")


def test_four_dimensional_image(tmp_path):
    path = tmp_path / "time.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 8, 9), np.int16), isVector=False), str(path))
    _assert_one_line_error(path, "is 4D")


def test_colour_image(tmp_path):
    path = tmp_path / "rgb.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 9, 3), np.uint8), isVector=True), str(path))
    _assert_one_line_error(path, "components per voxel")


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    _assert_one_line_error(path, "unsupported file type")


def test_empty_file_and_missing_file(tmp_path):
    empty = tmp_path / "empty.nii.gz"
    empty.touch()
    _assert_one_line_error(empty, "empty")
    _assert_one_line_error(tmp_path / "missing.nii.gz", "does not exist")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha"])
def test_nan_voxels(tmp_path, suffix):
    """NaNs are reported, also in NIfTI where ITK itself silently reads them as 0."""
    array = np.zeros((3, 4, 5), np.float32)
    array[1, 2, 3] = np.nan
    array[0, 0, 0] = np.inf
    path = write_volume(array, geometry_for(array.shape), tmp_path / f"nan{suffix}")
    _assert_one_line_error(path, "2 NaN or infinite voxels")
    read_image(path, allow_nan=True)


def test_empty_folder_is_not_a_dicom_series(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    _assert_one_line_error(tmp_path / "empty_dir", "no DICOM series")


def test_label_with_fractions_is_rejected(tmp_path):
    path = write_volume(np.full((2, 3, 4), 0.5, np.float32), geometry_for((2, 3, 4)), tmp_path / "l.nii.gz")
    with pytest.raises(ImageReadError, match="non-integer"):
        read_label(path)


def test_a_dicom_series_says_its_modality_where_the_voxels_cannot(tmp_path):
    """A CT cropped to the liver holds no air: the voxels look like an MR's, the header says CT."""
    from liverwild.inference.base import guess_modality, modality_of

    array = (np.arange(4 * 8 * 10).reshape(4, 8, 10) % 200).astype(np.int16)  # 0..199 HU: soft tissue only
    geometry = geometry_for(array.shape)
    write_dicom_series(array, geometry, tmp_path / "ct", modality="CT")
    write_dicom_series(array, geometry, tmp_path / "mr", modality="MR")
    write_volume(array, geometry, tmp_path / "ct.nii.gz")
    ct, mr, nifti = (read_image(tmp_path / name) for name in ("ct", "mr", "ct.nii.gz"))
    assert guess_modality(ct.array) == "MR"
    assert (ct.modality, modality_of(ct)) == ("CT", "CT")
    assert (mr.modality, modality_of(mr)) == ("MR", "MR")
    assert (nifti.modality, modality_of(nifti)) == ("", "MR")  # no header to say otherwise: the voxels' guess
