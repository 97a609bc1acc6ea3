"""liverwild.labelling: SimpleITK's connected components against SciPy's, label for label."""

import numpy as np
import pytest
from scipy import ndimage

from liverwild.labelling import fill_holes, label, label_slices


def random_masks(count: int, seed: int):
    """Blobby random masks of random size, 2D and 3D, down to one voxel per axis."""
    rng = np.random.default_rng(seed)
    for trial in range(count):
        shape = tuple(int(n) for n in rng.integers(1, 24, 2 + trial % 2))
        smooth = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.3, 2.0))
        yield smooth > np.quantile(smooth, rng.uniform(0.3, 0.8))


@pytest.mark.parametrize("full", [True, False])
def test_labels_equal_scipys_label_for_label(full):
    """Same components, same numbering (raster order of first voxel), 26/8- or 6/4-connected; bool or 0/1
    input, contiguous or not."""
    several = 0
    for mask in random_masks(120, seed=int(full)):
        expected, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim) if full else None)
        for given in (mask, mask.astype(np.uint8) * 3, np.asfortranarray(mask)):
            labels, count = label(given, full)
            assert count == n and labels.dtype == np.int32
            np.testing.assert_array_equal(labels, expected)
        several += n > 2
    assert several > 20, "too few masks of several components: the numbering would go untested"


def test_diagonal_neighbours_join_only_when_fully_connected():
    mask = np.eye(4, dtype=bool)
    assert label(mask, True)[1] == 1 and label(mask, False)[1] == 4
    assert label(np.zeros((3, 0, 2), bool), True)[1] == 0 and label(np.zeros((2, 2), bool), False)[1] == 0


def test_slices_are_labelled_each_on_its_own():
    """Slice after slice, each numbered as SciPy numbers it in 2D (8-connected), never joined across slices
    — also where a piece runs straight through the stack."""
    rng = np.random.default_rng(5)
    stack = ndimage.gaussian_filter(rng.random((9, 30, 25)), (0, 1.5, 1.5)) > 0.5
    stack[:, 10:14, 3] = True  # a rod through every slice
    labels, n = label_slices(stack)
    offset = 0
    for k, piece in enumerate(stack):
        expected, m = ndimage.label(piece, structure=np.ones((3, 3)))
        np.testing.assert_array_equal(labels[k], np.where(expected > 0, expected + offset, 0))
        offset += m
    assert n == offset > 2 * len(stack)


@pytest.mark.parametrize("ndim", [2, 3])
def test_fill_holes_equals_scipys_binary_fill_holes(ndim):
    rng = np.random.default_rng(ndim)
    for _ in range(20):
        mask = ndimage.gaussian_filter(rng.random((20,) * ndim), 1.0) > 0.45  # sponge-like: many cavities
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    assert (fill_holes(mask) != mask).any(), "no cavity was filled: the comparison would say little"
