"""The 2D cache's per-case transform as torch operations on the teacher's device (``--transforms-on
device``), run here on the CPU: each step against the NumPy/SciPy/batchgenerators step it replaces, and
whole caches of both paths against each other (the same within float16 rounding)."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from liverwild.errors import ConfigurationError
from liverwild.phantoms import write_phantoms
from planning.plans import default_augmentation, load_plans
from planning.sections import Normalization
from preprocessing import CachedCase, list_cases
from preprocessing.augmentation import augment_stack
from preprocessing.normalization import normalize_scan
from preprocessing.on_device import augment_on_device, gaussian_blur, normalize_on_device, percentiles
from preprocessing.pipeline import plan_and_preprocess

DOMAINS = ["PhantomPortalCT", "PhantomT2MR"]


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 4097])
def test_percentiles_are_numpys_linear_ones(n):
    values = np.random.default_rng(n).normal(size=n).astype(np.float32)
    qs = [0.0, 2.0, 37.5, 98.0, 100.0]
    expected = np.percentile(values, qs)
    assert percentiles(torch.from_numpy(values), qs) == pytest.approx(expected.tolist(), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("sigma", [0.7, 1.3, 3.0])
def test_gaussian_blur_is_scipys_gaussian_filter(sigma):
    image = np.random.default_rng(1).normal(size=(37, 52)).astype(np.float32)
    image[5:20, 10:30] += 4.0  # edges, and the borders where the reflect mode shows
    expected = gaussian_filter(image, sigma, order=0)
    got = gaussian_blur(torch.from_numpy(image), sigma).numpy()
    assert got.dtype == np.float32 and np.abs(got - expected).max() < 1e-6


@pytest.mark.parametrize(
    "normalization",
    [
        Normalization([-125.0, 275.0], clip_percentiles=[2.0, 98.0]),
        Normalization([0.0, 2.5], relative_to_body_median=True, clip_percentiles=[2.0, 98.0]),
        Normalization([-200.0, 250.0], clip_percentiles=None),
        Normalization([0.0, 500.0], clip_percentiles=[0.0, 100.0], rescale=True, zscore=False),
    ],
    ids=["ct", "mr", "3d-like", "no-zscore"],
)
def test_normalisation_on_the_device_is_normalize_scan(normalization):
    volume = np.random.default_rng(2).normal(100.0, 150.0, size=(9, 40, 33)).astype(np.float32)
    median = 80.0 if normalization.relative_to_body_median else None
    expected, expected_stats = normalize_scan(volume, normalization, median)
    got, stats = normalize_on_device(torch.from_numpy(volume), normalization, median)
    assert np.abs(got.numpy() - expected).max() < 1e-5
    assert stats.keys() == expected_stats.keys()
    for key, value in expected_stats.items():
        assert np.asarray(stats[key]) == pytest.approx(np.asarray(value), rel=1e-5, abs=1e-5), key


def every_transform() -> list:
    """Table A1's views, and one with every transform at probability 1 (so that each one acts)."""
    params = default_augmentation()
    always = {name: dataclasses.replace(getattr(params, name), p=1.0) for name in ("noise", "blur", "gamma")}
    return [params, dataclasses.replace(params, **always, dropout=dataclasses.replace(params.dropout, p=1.0))]


@pytest.mark.parametrize("seed", [0, 5, 123456789])
@pytest.mark.parametrize("params", every_transform(), ids=["table-a1", "all-on"])
def test_an_augmented_view_on_the_device_is_the_cpu_paths_view(params, seed):
    rng = np.random.default_rng(3)
    slices = rng.normal(size=(6, 48, 40)).astype(np.float32)
    yy, xx = np.mgrid[:48, :40]
    masks = np.stack([((yy - 24) ** 2 + (xx - 20) ** 2 < (8 + k) ** 2) for k in range(6)]).astype(np.uint8)
    expected, expected_masks = augment_stack(slices, masks, params, seed)
    got, got_masks = augment_on_device(torch.from_numpy(slices), torch.from_numpy(masks), params, seed)
    assert not np.allclose(expected, slices)  # the view was augmented
    assert np.array_equal(got_masks.numpy(), expected_masks)
    assert np.abs(got.numpy() - expected).max() < 1e-4


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory):
    """The same phantoms cached with the transform in the workers and on the (CPU) device."""
    root = tmp_path_factory.mktemp("on_device")
    write_phantoms(root / "raw", DOMAINS, n_cases=2, scale=0.3, n_slices=8, progress=False)
    common = {"raw": str(root / "raw"), "random_backbone": True, "backbone": "vit_tiny_patch16_224", "views": 2}
    for where in ("cpu", "device"):
        plan_and_preprocess(
            DOMAINS,
            preprocessed=str(root / where),
            device="cpu",
            workers=0,
            progress=False,
            transforms_on=where,
            **common,
        )
    return root


def float16_steps(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference between two float16 arrays in units of float16's spacing there — or of 1e-6
    where that spacing is finer (values near 0, where float32 arithmetic on O(1) z-scores differs by ~1e-7
    before the rounding to float16)."""
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    spacing = np.spacing(np.maximum(np.abs(a), np.abs(b)).astype(np.float16)).astype(np.float32)
    return float((np.abs(a32 - b32) / np.maximum(spacing, 1e-6)).max())


@pytest.mark.slow
@pytest.mark.parametrize("domain", DOMAINS)
def test_both_paths_cache_the_same_slices_labels_and_features(both_paths, domain):
    plans = load_plans(both_paths / "cpu" / domain / "plans.json")
    cpu_folder = both_paths / "cpu" / domain / plans.data_identifier()
    device_folder = both_paths / "device" / domain / plans.data_identifier()
    cases = list_cases(cpu_folder)
    assert cases == list_cases(device_folder) and len(cases) == 2
    for case in cases:
        a, b = CachedCase(cpu_folder / case), CachedCase(device_folder / case)
        assert a.slices.shape == b.slices.shape == (3, 8, 224, 224)  # the slices and two augmented views
        assert float16_steps(np.asarray(a.slices), np.asarray(b.slices)) <= 1.0  # within float16 rounding
        assert np.array_equal(np.asarray(a.labels), np.asarray(b.labels))
        assert np.abs(np.asarray(a.features, np.float32) - np.asarray(b.features, np.float32)).max() < 0.05
        assert a.properties["transforms_on"] == "cpu" and b.properties["transforms_on"] == "device (cpu)"
        assert a.properties["liver_slices"] == b.properties["liver_slices"]


def test_an_unknown_place_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="--transforms-on gpu: choose one of auto, cpu, device"):
        plan_and_preprocess(["X"], raw=str(tmp_path), preprocessed=str(tmp_path / "pre"), transforms_on="gpu")


def test_where_the_transform_runs_for_each_choice_and_device():
    from preprocessing.caching import transform_device

    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")
    assert transform_device("auto", cpu) is None and transform_device("cpu", cuda) is None
    assert transform_device("auto", cuda) == cuda and transform_device("device", cpu) == cpu
    assert transform_device("auto", mps) is None  # float64 is missing there: the workers transform
    with pytest.raises(ConfigurationError, match="MPS has no float64"):
        transform_device("device", mps)
