"""Domain randomisation's synthesis (SynthSeg-style): thick axial slices from the cached neighbours, the
nonlinear deformation of the label maps, and which label maps the dataset hands to it."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from liverwild.training.baselines import randomization
from liverwild.training.baselines.randomization import SynthesisDataset
from liverwild.training.baselines.synthesis import (
    spatial_map,
    synthesize,
    thick_slice_weights,
    through_plane_half_width,
    velocity_displacement,
    warp_nearest,
)

# ---- through-plane partial volume ----------------------------------------------------------------


def test_thick_slice_weights_give_hand_computed_partial_volumes():
    """Slices at offsets −2…2 hold 10, 0, 3, 9, 20. A 3-slice-thick slice centred on 0 is the mean of
    0, 3, 9 = 4; a 2-slice-thick one covers half of each neighbour: (0·½ + 3 + 9·½) / 2 = 3.75. At phase 1
    the acquired 2-thick slices are centred at −1 and +1: (10·½ + 0 + 3·½) / 2 = 3.25 and (3·½ + 9 + 20·½)
    / 2 = 10.25, and offset 0 lies halfway: 6.75."""
    values = np.array([10.0, 0.0, 3.0, 9.0, 20.0])
    assert thick_slice_weights(3.0, 0.0, 2) @ values == pytest.approx(4.0)
    assert thick_slice_weights(2.0, 0.0, 2) @ values == pytest.approx(3.75)
    assert thick_slice_weights(2.0, 1.0, 2) @ values == pytest.approx(6.75)
    for thickness in (1.2, 2.5, 7.3):  # the neighbours the dataset fetches always hold the whole profile
        half = through_plane_half_width(thickness)
        for phase in np.linspace(0, thickness, 7, endpoint=False):
            assert thick_slice_weights(thickness, phase, half).sum() == pytest.approx(1.0)
    assert through_plane_half_width(1.0) == 0 and through_plane_half_width(0.5) == 0


def test_neighbouring_slices_enter_only_through_the_through_plane_step():
    """Two stacks alike but for the neighbours' content (the same classes, so the same random draws): the
    synthetic slices are identical for seeds without a through-plane draw and differ for the others —
    which occur, at about ½ · ⅓ of the items."""
    image = np.random.default_rng(0).normal(size=(5, 64, 64)).astype(np.float32)
    image[:] = image[2]
    centre = np.zeros((64, 64), np.uint8)
    centre[10:30, 10:30] = 3
    moved = np.zeros((64, 64), np.uint8)
    moved[34:54, 34:54] = 3  # the same organ elsewhere in the neighbouring slices
    same = np.stack([centre] * 5)
    other = np.stack([moved, moved, centre, moved, moved])
    liver = centre == 3
    differ = 0
    for seed in range(60):
        a, _ = synthesize(same, liver, image, np.random.default_rng(seed), 3, max_thickness=1.3)
        b, _ = synthesize(other, liver, image, np.random.default_rng(seed), 3, max_thickness=1.3)
        differ += not np.array_equal(a, b)
    assert 3 <= differ <= 20, differ


def test_without_neighbours_no_through_plane_step():
    labels = np.zeros((32, 32), np.uint8)
    labels[8:20, 8:20] = 3
    image = np.random.default_rng(1).normal(size=(32, 32)).astype(np.float32)
    for seed in range(10):  # a lone slice and the same slice as a stack of one give the same image
        a, _ = synthesize(labels, labels == 3, image, np.random.default_rng(seed), max_thickness=4.0)
        b, _ = synthesize(labels[None], labels == 3, image[None], np.random.default_rng(seed), max_thickness=4.0)
        assert np.array_equal(a, b)


# ---- nonlinear deformation -------------------------------------------------------------------------


def test_nonlinear_deformation_moves_labels_and_keeps_their_topology():
    """Same seed with and without the deformation: the same affine, so what differs is the deformation.
    It moves the disk's boundary, keeps its area within 10 % and its one piece, and never folds."""
    shape = (96, 96)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disk = (((yy - 48) ** 2 + (xx - 48) ** 2) < 20**2).astype(np.uint8)
    moved = 0
    for seed in range(10):
        affine_only = warp_nearest(disk, spatial_map(shape, np.random.default_rng(seed), 0.0), fill=0)
        deformed = warp_nearest(disk, spatial_map(shape, np.random.default_rng(seed), 3.5), fill=0)
        moved += int((affine_only != deformed).sum() > 20)
        assert int(deformed.sum()) == pytest.approx(int(affine_only.sum()), rel=0.1)
        assert ndimage.label(deformed)[1] == 1 and ndimage.label(1 - deformed)[1] == 1
        d = velocity_displacement(shape, np.random.default_rng(seed), 3.5)
        (dyy, dyx), (dxy, dxx) = np.gradient(d[0]), np.gradient(d[1])
        assert ((1 + dyy) * (1 + dxx) - dyx * dxy).min() > 0, "the deformation must not fold"
    assert moved >= 8, "the deformation must move the label map"
    assert not velocity_displacement(shape, np.random.default_rng(0), 0.0).any()


def test_deformed_liver_stays_on_its_tissue():
    """The liver mask and the label map go through the same map: the returned mask covers pixels of
    one synthetic intensity class (low spread inside), with a strong deformation too."""
    labels = np.zeros((96, 96), np.uint8)
    labels[20:70, 20:70] = 3
    image = np.random.default_rng(0).normal(size=(96, 96)).astype(np.float32)
    spread = []
    for seed in range(12):
        out, mask = synthesize(labels, labels == 3, image, np.random.default_rng(seed), 3, deformation_sd=8.0)
        inner = ndimage.binary_erosion(mask > 0, iterations=3)
        spread.append(out[inner].std() / out[ndimage.binary_dilation(mask > 0, iterations=3) ^ (mask > 0)].std())
    assert np.median(spread) < 0.5


# ---- which label maps the dataset uses -----------------------------------------------------------


def fake_case(n_slices: int, organs: bool, spacing_mm: float):
    rng = np.random.default_rng(0)
    labels = np.zeros((1, n_slices, 8, 8), np.uint8)
    labels[0, :, 2:5, 2:5] = 1
    return SimpleNamespace(
        n_slices=n_slices,
        slices=rng.normal(size=(1, n_slices, 8, 8)).astype(np.float16),
        labels=labels,
        organs=(np.arange(n_slices, dtype=np.uint8)[:, None, None] + 10) * np.ones((1, 8, 8), np.uint8)
        if organs
        else None,
        properties={"canonical_geometry": {"spacing": [0.8, 0.8, spacing_mm]}},
    )


def test_dataset_hands_organ_maps_or_liver_labels_with_their_neighbours(monkeypatch):
    """An 8 mm maximum thickness at 2 mm slices is 4 slices: 7 neighbours a side (ends repeated). The
    organ maps are the label maps where the case has them, its liver labels where it has not."""
    seen = []

    def spy(labels, liver, image, rng, background_classes, max_thickness, deformation_sd):
        seen.append((labels.copy(), image.shape, max_thickness, deformation_sd))
        return np.zeros(liver.shape, np.float32), liver

    monkeypatch.setattr(randomization, "synthesize", spy)
    with_organs, without = fake_case(6, True, 2.0), fake_case(6, False, 2.0)
    data = SynthesisDataset([with_organs, without], [0, 1], max_slice_thickness_mm=8.0, deformation_sd_px=2.0)
    data[1]  # slice 1 of the case with organ maps
    labels, image_shape, max_thickness, sd = seen[-1]
    assert max_thickness == pytest.approx(4.0) and sd == 2.0 and image_shape == (15, 8, 8)
    expected = np.clip(np.arange(1 - 7, 1 + 8), 0, 5) + 10  # organ value = slice index + 10
    assert np.array_equal(labels[:, 0, 0], expected)
    data[6 + 5]  # last slice of the case without organ maps: its liver labels
    labels = seen[-1][0]
    assert labels.shape == (15, 8, 8) and np.array_equal(labels, np.repeat(without.labels[0, :1], 15, axis=0))
    thin = SynthesisDataset([fake_case(6, True, 10.0)], [0], max_slice_thickness_mm=8.0)
    thin[2]  # slices already thicker than the maximum: the slice alone
    assert seen[-1][0].shape == (1, 8, 8) and seen[-1][0][0, 0, 0] == 12
