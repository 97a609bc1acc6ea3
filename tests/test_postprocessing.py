"""Anatomical post-processing of the liver mask (liverwild.inference.postprocessing) on constructed masks
with known answers. Canonical arrays are (z, y, x) towards superior, posterior and patient-left."""

import numpy as np
import pytest
from scipy import ndimage

from liverwild.errors import ConfigurationError
from liverwild.inference.postprocessing import (
    STEPS,
    body_centre_mm,
    check_steps,
    fill_holes,
    plausibility,
    postprocess,
    steps_from,
)
from liverwild.io import Geometry, Reorientation, stored_geometry

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
LPS, RAS, FLIPPED = IDENTITY, (-1, 0, 0, 0, -1, 0, 0, 0, 1), (1, 0, 0, 0, -1, 0, 0, 0, -1)


def canonical_geometry(shape_zyx, spacing_zyx=(1.0, 1.0, 1.0)) -> Geometry:
    """An LPS-aligned grid: NumPy shape (z, y, x), spacing (z, y, x) in mm."""
    return Geometry(tuple(shape_zyx[::-1]), tuple(float(s) for s in spacing_zyx[::-1]), (0.0, 0.0, 0.0), IDENTITY)


def ellipsoid(shape, centre, radii) -> np.ndarray:
    """Boolean (z, y, x) ellipsoid; centre and radii in voxels."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1


def body_image(shape, centre_x, half_width_x) -> np.ndarray:
    """CT-like (z, y, x) image: an elliptic body cylinder (40 HU) centred on column ``centre_x``, air around."""
    ny = shape[1]
    _, y, x = np.ogrid[: shape[0], :ny, : shape[2]]
    inside = ((y - (ny - 1) / 2) / (ny / 2 - 1)) ** 2 + ((x - centre_x) / half_width_x) ** 2 <= 1
    return np.where(np.broadcast_to(inside, shape), 40.0, -1000.0).astype(np.float32)


def test_bridge_of_one_voxel_is_cut_and_the_liver_kept_exactly():
    shape = (40, 40, 90)
    liver = ellipsoid(shape, (20, 20, 25), (12, 12, 16))  # x 9..41
    bowel = ellipsoid(shape, (20, 20, 65), (9, 9, 9))  # x 56..74
    bridge = np.zeros(shape, bool)
    bridge[20, 20, 42:56] = True  # one voxel thick, 14 long
    mask = liver | bowel | bridge
    geometry = canonical_geometry(shape)
    out = postprocess(mask, geometry, ["largest_component", "bridges"]).astype(bool)
    assert out[liver].all(), "every liver voxel is kept"
    assert not out[bowel].any(), "the bowel blob is dropped"
    assert not (out & ~liver & ~bridge).any()
    # without the bridge step the blob stays: it is connected
    assert postprocess(mask, geometry, ["largest_component"]).astype(bool)[bowel].all()


@pytest.mark.parametrize("z_spacing, bowel_kept", [(1.0, False), (6.0, True)])
def test_anisotropic_spacing_changes_what_counts_as_thin(z_spacing, bowel_kept):
    """A slab 2 slices thick joins the blobs: 2 mm at 1 mm slices (a bridge: cut), 12 mm at 6 mm slices
    (thicker than the 10 mm the 5 mm erosion cuts: the blobs stay one piece)."""
    shape = (40, 40, 90)
    liver = ellipsoid(shape, (20, 20, 25), (12, 14, 16))
    bowel = ellipsoid(shape, (20, 20, 65), (9, 9, 9))
    slab = np.zeros(shape, bool)
    slab[19:21, 14:27, 40:58] = True  # 2 voxels in z, 13 in y
    mask = liver | bowel | slab
    out = postprocess(mask, canonical_geometry(shape, (z_spacing, 1.0, 1.0)), ["largest_component", "bridges"])
    assert out.astype(bool)[liver].all()
    assert out.astype(bool)[bowel].all() == bowel_kept and out.astype(bool)[bowel].any() == bowel_kept


def tapering_liver(shape):
    """A liver whose inferior tip tapers to one voxel (slice 23), and an island on slice 22 that touches
    the tip only diagonally (26-connected, no in-plane overlap)."""
    liver = ellipsoid(shape, (35, 22, 35), (12, 12, 14))
    island = np.zeros(shape, bool)
    island[22] = ellipsoid(shape[1:], (22, 39), (3, 3))
    return liver, island


def test_z_continuity_drops_an_island_below_the_tip_and_keeps_the_tip():
    shape = (60, 50, 70)
    liver, island = tapering_liver(shape)
    assert liver[23].sum() == 1 and liver[22].sum() == 0, "the tip is a single voxel"
    geometry = canonical_geometry(shape)
    out = postprocess(liver | island, geometry, ["z_continuity"])
    assert np.array_equal(out.astype(bool), liver)
    # one 3D component: the largest component alone keeps the island
    assert np.array_equal(postprocess(liver | island, geometry, ["largest_component"]).astype(bool), liver | island)


def test_z_continuity_keeps_one_run_of_slices():
    shape = (30, 20, 20)
    mask = np.zeros(shape, bool)
    mask[5:20, 5:15, 5:15] = True
    mask[22:25, 5:15, 5:15] = True  # same place, after an empty slice
    out = postprocess(mask, canonical_geometry(shape), ["z_continuity"]).astype(bool)
    assert np.array_equal(out, mask & (np.arange(30) < 20)[:, None, None])


def right_and_left_scene():
    """Canonical CT scene (z, y, x), spacing 3 × 1.5 × 2 mm: a body centred on column 45, a liver-like
    blob on the patient's right (columns 20..40, centroid 30 mm right of the midline) and a larger blob
    on the left (centroid 40 mm left of it)."""
    shape, spacing = (30, 60, 90), (3.0, 1.5, 2.0)
    image = body_image(shape, centre_x=45, half_width_x=40)
    right = ellipsoid(shape, (15, 30, 30), (8, 14, 10))
    left = ellipsoid(shape, (15, 30, 65), (10, 18, 12))
    return image, right, left, canonical_geometry(shape, spacing)


@pytest.mark.parametrize("direction", [LPS, RAS, FLIPPED], ids=["LPS", "RAS", "flipped"])
def test_location_prior_keeps_the_right_sided_piece_in_any_storage_orientation(direction):
    image, right, left, canonical = right_and_left_scene()
    stored = stored_geometry(canonical, direction)
    r = Reorientation.from_geometry(stored)
    stored_image, stored_mask = r.from_canonical(image), r.from_canonical(right | left)
    centre = body_centre_mm(stored_image, stored, "CT")  # from the stored array and its direction cosines
    assert centre[0] == pytest.approx(canonical.index_to_physical((45, 0, 0))[0], abs=2.5)
    steps = ["largest_component", "location"]
    out = r.from_canonical(postprocess(r.to_canonical(stored_mask), r.canonical_geometry(stored), steps, centre))
    assert np.array_equal(out.astype(bool), r.from_canonical(right))
    without = r.from_canonical(postprocess(r.to_canonical(stored_mask), r.canonical_geometry(stored), steps[:1]))
    assert np.array_equal(without.astype(bool), r.from_canonical(left)), "by size alone the left blob wins"
    # the predictors' way: the 2× subsample kept aside, the centre computed in a thread while labelling
    sample = stored_image[::2, ::2, ::2].copy()
    assert np.array_equal(body_centre_mm(sample, stored, "CT", subsampled=True), centre)
    calls = []

    def later():
        calls.append(1)
        return body_centre_mm(sample, stored, "CT", subsampled=True)

    lazily = r.from_canonical(postprocess(r.to_canonical(stored_mask), r.canonical_geometry(stored), steps, later))
    assert np.array_equal(lazily, out) and calls == [1]
    # no body at all (air): the centre of the whole grid, from the subsample too
    air = np.full((21, 40, 41), -1000.0, np.float32)
    grid = stored_geometry(canonical_geometry(air.shape, (3.0, 1.5, 2.0)), direction)
    middle = grid.index_to_physical(((np.asarray(air.shape) - 1) / 2)[::-1])
    np.testing.assert_allclose(body_centre_mm(air, grid, "CT"), middle)
    np.testing.assert_allclose(body_centre_mm(air[::2, ::2, ::2].copy(), grid, "CT", subsampled=True), middle)


def test_location_prior_keeps_the_largest_when_every_piece_is_left():
    image, right, left, geometry = right_and_left_scene()
    small_left = ellipsoid(right.shape, (15, 30, 84), (4, 5, 4))  # x 80..88: left of the large blob
    centre = body_centre_mm(image, geometry, "CT")
    out = postprocess(small_left | left, geometry, ["largest_component", "location"], centre).astype(bool)
    assert np.array_equal(out, left)
    assert "left_of_midline" in plausibility(out, geometry, centre)["flags"]


def box_mask(shape, start, size) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, a + n) for a, n in zip(start, size))] = True
    return mask


@pytest.mark.parametrize(
    "start, size, ml, flags",
    [
        ((5, 5, 5), (50, 50, 50), 1000.0, []),  # 100 mm cube: 1 l
        ((5, 5, 5), (20, 20, 20), 64.0, ["volume_low", "craniocaudal_extent_low"]),
        ((5, 5, 5), (160, 120, 120), 18432.0, ["volume_high", "craniocaudal_extent_high"]),
        ((5, 5, 5), (50, 155, 60), 3720.0, ["inplane_extent_high"]),  # 310 mm front to back
        ((0, 5, 5), (20, 20, 20), 64.0, ["touches_inferior_edge"]),  # partial coverage: volume not judged
        ((150, 5, 5), (20, 20, 20), 64.0, ["touches_superior_edge"]),
        # a part 340 mm long is too long whatever lies outside the scan
        (
            (0, 5, 5),
            (170, 50, 50),
            3400.0,
            ["touches_inferior_edge", "touches_superior_edge", "craniocaudal_extent_high"],
        ),
    ],
)
def test_plausibility_flags_on_boxes_of_known_volume(start, size, ml, flags):
    shape, geometry = (170, 160, 160), canonical_geometry((170, 160, 160), (2.0, 2.0, 2.0))
    mask = box_mask(shape, start, size)
    assert mask.sum() * 8 / 1000 == pytest.approx(ml)
    check = plausibility(mask, geometry)
    assert check["flags"] == flags
    assert check["extent_mm"] == {
        "craniocaudal": 2.0 * size[0],
        "anterior_posterior": 2.0 * size[1],
        "left_right": 2.0 * size[2],
    }


def test_empty_mask_stays_empty_whatever_the_steps():
    geometry = canonical_geometry((10, 12, 14))
    empty = np.zeros((10, 12, 14), np.uint8)
    for steps in (STEPS, [], ["z_continuity"], ["largest_component", "bridges"]):
        out = postprocess(empty, geometry, steps, body_centre=np.zeros(3))
        assert out.dtype == np.uint8 and out.shape == empty.shape and not out.any()
    assert plausibility(empty, geometry) == {"flags": ["empty"], "extent_mm": {}}


def scene():
    """Canonical CT scene (z, y, x) at 1 mm where every step has something to do: a tapering liver with
    a cavity, a bowel blob bridged to it, an island under its tip, and a larger blob on the left."""
    shape = (60, 70, 120)
    image = body_image(shape, centre_x=60, half_width_x=58)
    liver, island = tapering_liver(shape)  # liver x 21..49, right of the midline
    cavity = ellipsoid(shape, (35, 22, 35), (2, 2, 2))
    bowel = ellipsoid(shape, (35, 52, 35), (8, 8, 8))  # y 44..60
    bridge = box_mask(shape, (35, 35, 35), (1, 9, 1))  # y 35..43, one voxel thick
    left = ellipsoid(shape, (35, 30, 95), (14, 16, 16))  # larger than liver + bowel
    parts = {"liver": liver, "cavity": cavity, "island": island, "bowel": bowel, "bridge": bridge, "left": left}
    mask = (liver & ~cavity) | island | bowel | bridge | left
    geometry = canonical_geometry(shape)
    return mask, parts, geometry, body_centre_mm(image, geometry, "CT")


def test_every_step_together_leaves_the_liver():
    mask, parts, geometry, centre = scene()
    out = postprocess(mask, geometry, STEPS, centre).astype(bool)
    assert out[parts["liver"]].all(), "the whole liver, its cavity filled"
    assert not (out & ~parts["liver"] & ~parts["bridge"]).any(), "nothing but the liver and a bridge stub"


@pytest.mark.parametrize("step", ["bridges", "location", "z_continuity", "fill_holes"])
def test_each_switch_turns_its_step_off(step):
    mask, parts, geometry, centre = scene()
    out = postprocess(mask, geometry, [s for s in STEPS if s != step], centre).astype(bool)
    if step == "bridges":
        assert out[parts["bowel"]].all() and out[parts["liver"]].all()
    elif step == "location":
        assert np.array_equal(out, parts["left"]), "by size alone the left blob is kept"
    elif step == "z_continuity":
        assert out[parts["island"]].all() and out[parts["liver"]].all()
    else:
        assert not out[parts["cavity"]].any() and out[parts["liver"] & ~parts["cavity"]].all()


def test_without_largest_component_every_piece_stays():
    mask, parts, geometry, centre = scene()
    out = postprocess(mask, geometry, ["fill_holes"], centre).astype(bool)
    assert np.array_equal(out, mask | parts["cavity"])


def test_step_names_are_checked():
    assert steps_from(True) == tuple(s for s in STEPS if s != "bridges") and steps_from(False) == ()
    assert check_steps(["fill_holes", "largest_component"]) == ("largest_component", "fill_holes")
    with pytest.raises(ConfigurationError, match="unknown post-processing step"):
        steps_from(["largest_components"])
    with pytest.raises(ConfigurationError, match="refines largest_component"):
        steps_from(["bridges"])
    with pytest.raises(ValueError, match="body centre"):
        postprocess(np.ones((3, 3, 3)), canonical_geometry((3, 3, 3)), ["largest_component", "location"])


def test_lateral_offsets_are_the_pieces_centres_of_mass():
    """Each piece's centroid from its box's projections, against ndimage.center_of_mass."""
    from scipy import ndimage

    from liverwild.inference.postprocessing import lateral_offsets_mm

    rng = np.random.default_rng(3)
    labels, n = ndimage.label(ndimage.gaussian_filter(rng.random((20, 30, 40)), 1.5) > 0.52)
    geometry = Geometry((40, 30, 20), (0.8, 0.7, 2.5), (-100.0, 20.0, 300.0), (0, 1, 0, -1, 0, 0, 0, 0, 1))
    centre = np.array([3.0, -4.0, 310.0])
    index = np.arange(1, n + 1)
    centroids = np.asarray(ndimage.center_of_mass(np.ones(labels.shape), labels, index))
    expected = geometry.index_to_physical((centroids + [2, 5, 7])[:, ::-1])[:, 0] - centre[0]
    assert n > 5
    np.testing.assert_allclose(lateral_offsets_mm(labels, index, geometry, centre, (2, 5, 7)), expected)
    np.testing.assert_allclose(lateral_offsets_mm(labels, index[3:4], geometry, centre, (2, 5, 7)), expected[3:4])


@pytest.mark.parametrize("seed", range(4))
def test_fill_holes_equals_scipys_binary_fill_holes(seed):
    """Cavities of all sizes, tunnels to the border (not holes), diagonal-only leaks (holes under
    6-connectivity) and a mask touching the border, against SciPy's own fill."""
    rng = np.random.default_rng(seed)
    mask = rng.random((20, 23, 17)) < 0.7  # a sponge: hundreds of cavities, most closed only face-wise
    mask[:, 0, :] = rng.random((20, 17)) < 0.5  # a border face partly covered
    filled = fill_holes(mask)
    assert filled.dtype == bool and (filled & ~mask).sum() > 500
    np.testing.assert_array_equal(filled, ndimage.binary_fill_holes(mask))
    assert (filled != ndimage.binary_fill_holes(mask, structure=np.ones((3, 3, 3)))).any()  # 6-, not 26-connected
    shell = ellipsoid((15, 15, 15), (7, 7, 7), (6, 6, 6)) & ~ellipsoid((15, 15, 15), (7, 7, 7), (3, 3, 3))
    assert fill_holes(shell).sum() == ellipsoid((15, 15, 15), (7, 7, 7), (6, 6, 6)).sum()
    assert not fill_holes(np.zeros((3, 4, 5), bool)).any() and fill_holes(np.ones((3, 4, 5), bool)).all()
