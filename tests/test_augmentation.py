"""Table A1 augmentation: the elastic deformation moves a slice and its mask together, each transform
does what its parameters say, and views are reproducible from their seed."""

import dataclasses

import numpy as np
import pytest

from planning.plans import default_augmentation
from planning.sections import TRANSFORMS, Augmentation
from preprocessing.augmentation import augment_stack, elastic_displacements, warp_label_map


def only(kind: str, **changes) -> Augmentation:
    """Table A1's parameters with every transform off except ``kind`` (probability 1)."""
    params = default_augmentation()
    off = {name: dataclasses.replace(getattr(params, name), p=0.0) for name in TRANSFORMS if name != kind}
    chosen = dataclasses.replace(getattr(params, kind), p=1.0, **changes)
    return dataclasses.replace(params, **off, **{kind: chosen})


def disc_stack(n: int = 6, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Discs of different radii away from the border: the image *is* the mask (0/1 as float)."""
    yy, xx = np.mgrid[:size, :size]
    masks = np.stack([((yy - 32) ** 2 + (xx - 30) ** 2 < (10 + 2 * k) ** 2) for k in range(n)]).astype(np.uint8)
    return masks.astype(np.float32), masks


def test_elastic_deformation_keeps_the_mask_on_the_image():
    slices, masks = disc_stack()
    params = only("elastic", sigma_px=4.0)
    out_slices, out_masks = augment_stack(slices, masks, params, seed=3)
    moved = (out_masks != masks).sum(axis=(1, 2))
    assert (moved > 20).all()  # every slice was deformed, visibly
    # the image was a 0/1 copy of the mask: after the same warp, its 0.5 level set is the warped mask
    agree = ((out_slices >= 0.5) == (out_masks == 1)).mean()
    assert agree > 0.999
    # and the displacements are the ones elastic_displacements reports: an organ map warps the same way
    fields = elastic_displacements(len(slices), params, seed=3)
    assert sorted(fields) == list(range(len(slices)))
    for k, coarse in fields.items():
        assert (warp_label_map(masks[k], coarse) != out_masks[k]).sum() <= 2  # ties at exactly 0.5 only


def test_views_are_reproducible_from_their_seed_and_differ_between_seeds():
    slices, masks = disc_stack()
    params = default_augmentation()
    a = augment_stack(slices, masks, params, seed=11)
    b = augment_stack(slices, masks, params, seed=11)
    c = augment_stack(slices, masks, params, seed=12)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_noise_has_the_planned_variance_and_dropout_the_planned_fraction():
    rng = np.random.default_rng(0)
    slices = rng.normal(0, 1, (8, 64, 64)).astype(np.float32)
    masks = np.zeros(slices.shape, np.uint8)
    noisy, same_masks = augment_stack(slices, masks, only("noise", sigma=0.25), seed=1)
    assert np.array_equal(same_masks, masks)  # intensity transforms leave the mask alone
    # the plan's sigma is the noise's s.d. (batchgenerators' "noise_variance" is used as one)
    assert np.std(noisy - slices) == pytest.approx(0.25, rel=0.05)
    dropped, _ = augment_stack(slices + 5.0, masks, only("dropout", fraction=0.1), seed=1)
    assert (dropped == 0).mean() == pytest.approx(0.1, abs=0.01)


def test_gamma_keeps_the_statistics_it_is_told_to_keep():
    rng = np.random.default_rng(0)
    slices = rng.gamma(2.0, 1.0, (4, 32, 32)).astype(np.float32)
    out, _ = augment_stack(slices, np.zeros(slices.shape, np.uint8), only("gamma", range=[0.5, 0.5]), seed=0)
    for k in range(4):
        assert out[k].mean() == pytest.approx(slices[k].mean(), rel=1e-3)
        assert out[k].std() == pytest.approx(slices[k].std(), rel=1e-3)
        assert not np.allclose(out[k], slices[k])  # yet the grey values were remapped
