import numpy as np
import pytest
from scipy import ndimage

from liverwild.datasets import load_dataset_json, verify_dataset
from liverwild.io import Reorientation, read_image
from liverwild.phantoms import DOMAINS, Tissue, generate_case, write_phantoms
from liverwild.phantoms.anatomy import Abdomen
from liverwild.phantoms.generate import case_seed


@pytest.fixture(scope="module")
def cases():
    """Two cases per domain, half the default in-plane matrix (fast)."""
    out = {}
    for name, domain in DOMAINS.items():
        out[name] = [generate_case(domain.scaled(0.5), seed=7, case=c) for c in range(2)]
    return out


def test_deterministic_from_seed():
    a = generate_case("PhantomNativeCT", seed=3, case=1)
    b = generate_case("PhantomNativeCT", seed=3, case=1)
    c = generate_case("PhantomNativeCT", seed=4, case=1)
    assert np.array_equal(a[0].array, b[0].array) and np.array_equal(a[1].array, b[1].array)
    assert not np.array_equal(a[1].array, c[1].array)


def test_anatomy_varies_between_cases(cases):
    (_, a, _), (_, b, _) = cases["PhantomPortalCT"]
    overlap = 2 * (a.array & b.array).sum() / (a.array.sum() + b.array.sum())
    assert overlap < 0.9, "two patients' livers are different shapes"


def _physical_centroid_and_extent(label):
    idx = np.argwhere(label.array > 0)[:, ::-1]  # (i, j, k)
    points = label.geometry.index_to_physical(idx)
    return points.mean(0), points.max(0) - points.min(0)


def _family(name, case):
    domain = DOMAINS[name].scaled(0.5)
    return Abdomen(np.random.default_rng(case_seed(7, domain, case))).liver.family


@pytest.mark.parametrize("name", list(DOMAINS))
def test_liver_position_and_extent(cases, name):
    for case, (_image, label, tissues) in enumerate(cases[name]):
        centroid, extent = _physical_centroid_and_extent(label)
        if _family(name, case) == "post_resection":  # a hepatectomy's remnant: smaller, either side
            assert 0.3 < (label.array > 0).sum() * np.prod(label.geometry.spacing) / 1e6 < 1.8
            continue
        # LPS: the patient's right is −x, superior +z; z = 0 is the right diaphragm dome
        assert centroid[0] < -20, "liver must lie in the patient's right abdomen"
        assert -130 < centroid[2] < -20, "liver must lie in the upper abdomen, below the dome"
        assert 100 < extent[0] < 260 and 80 < extent[1] < 220 and 90 < extent[2] < 260  # 260: Riedel's lobe
        volume_l = (label.array > 0).sum() * np.prod(label.geometry.spacing) / 1e6
        assert 0.7 < volume_l < 3.5
        # lung bases at the top slices when the domain covers them
        canonical = tissues
        top = canonical[-1]
        assert (top == Tissue.LUNG).sum() > 0


@pytest.mark.parametrize("name", list(DOMAINS))
def test_label_is_aligned_with_image(cases, name):
    """Liver-like voxels (smoothed intensity near the liver's median) overlap the mask best unshifted."""
    image, label, _ = cases[name][0]
    r = Reorientation.from_geometry(image.geometry)
    img = ndimage.gaussian_filter(r.to_canonical(image.array).astype(np.float32), 1.0)
    mask = r.to_canonical(label.array) > 0
    core = ndimage.binary_erosion(mask, iterations=2)
    centre = np.median(img[core])
    spread = np.subtract(*np.percentile(img[core], [90, 10]))
    liver_like = np.abs(img - centre) < spread

    def dice(dz, dy, dx):
        shifted = np.roll(mask, (dz, dy, dx), axis=(0, 1, 2))
        return 2 * (shifted & liver_like).sum() / (shifted.sum() + liver_like.sum())

    at_zero = dice(0, 0, 0)
    for shift in [(0, 0, 3), (0, 0, -3), (0, 3, 0), (0, -3, 0), (2, 0, 0), (-2, 0, 0)]:
        assert dice(*shift) < at_zero, shift


def test_domains_differ_in_intensity_noise_geometry(cases):
    stats = {}
    for name, items in cases.items():
        image, label, _ = items[0]
        mask = ndimage.binary_erosion(label.array > 0, iterations=2)
        liver = image.array[mask].astype(float)
        stats[name] = {
            "median": np.median(liver),
            "spread": np.subtract(*np.percentile(liver, [75, 25])),
            "orientation": image.geometry.orientation_code(),
            "spacing": image.geometry.spacing,
        }
    ct = [n for n in stats if DOMAINS[n].modality == "CT"]
    medians = {n: stats[n]["median"] for n in ct}
    others = max(medians["PhantomNativeCT"], medians["PhantomArterialCT"])  # 58 / 60 HU ± calibration
    assert medians["PhantomPortalCT"] > others + 20, f"the portal-venous liver enhances: {medians}"
    spreads = sorted(stats[n]["spread"] for n in ct)
    assert spreads[-1] > 1.8 * spreads[0], f"noise levels should differ: {spreads}"
    assert len({s["orientation"] for s in stats.values()}) >= 3
    assert len({s["spacing"][2] for s in stats.values()}) == len(stats)
    assert stats["PhantomT2MR"]["median"] > 0 and DOMAINS["PhantomT2MR"].modality == "MR"


def test_mr_domain_has_bias_field_and_arbitrary_units():
    gains = []
    for case in range(3):
        image, label, tissues = generate_case(DOMAINS["PhantomT2MR"].scaled(0.5), seed=1, case=case)
        r = Reorientation.from_geometry(image.geometry)
        img, t = r.to_canonical(image.array).astype(float), tissues
        gains.append(np.median(img[t == Tissue.MUSCLE]))
        # a bias field makes the same tissue brighter in some places than in others
        smooth = ndimage.median_filter(img, size=3)
        muscle = ndimage.binary_erosion(t == Tissue.MUSCLE, iterations=1)
        values = smooth[muscle]
        assert np.percentile(values, 90) / np.percentile(values, 10) > 1.3
    assert max(gains) / min(gains) > 1.3, "per-case gain (arbitrary units) should vary"


def test_arterial_domain_has_streaks_and_circular_fov():
    from liverwild.phantoms.render import add_streaks

    domain = DOMAINS["PhantomArterialCT"]
    # streaks: on about streak_fraction of the slices, bright and dark lines of the domain's amplitude
    lines = np.zeros((400, 48, 48), np.float32)
    add_streaks(lines, domain, np.random.default_rng(0))
    hit = np.abs(lines).max(axis=(1, 2)) > 0
    assert abs(hit.mean() - domain.streak_fraction) < 0.07
    assert (lines[hit].max(axis=(1, 2)) > 0.5 * domain.streaks).all()
    assert (lines[hit].min(axis=(1, 2)) < -0.5 * domain.streaks).all()
    # circular field of view: every voxel outside the inscribed circle holds the padding value, none inside
    image, _, _ = generate_case(domain, seed=0, case=0)
    canonical = Reorientation.from_geometry(image.geometry).to_canonical(image.array)
    nz, ny, nx = canonical.shape
    yy, xx = np.ogrid[:ny, :nx]
    outside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 > (min(ny, nx) / 2) ** 2
    assert (canonical[:, outside] == domain.circular_fov_value).all()
    assert (canonical[:, ny // 2, nx // 2] > domain.circular_fov_value).all()


def test_written_domains_are_valid_raw_datasets(tmp_path):
    folders = write_phantoms(tmp_path, n_cases=2, scale=0.4, progress=False)
    assert {f.name for f in folders} == set(DOMAINS)
    for folder in folders:
        info = load_dataset_json(folder)
        assert info.modality == DOMAINS[folder.name].modality and info.labels["liver"] == 1
        assert len(info.cases) == 2
        report = verify_dataset(folder)
        assert report.ok, [str(p) for p in report.problems]
        image = read_image(next((folder / "imagesTr").glob("*.nii.gz")))
        expected = info.extra["phantom"]["orientation"]
        assert image.geometry.orientation_code() == expected
    # re-running keeps existing cases (no regeneration)
    stamp = next((folders[0] / "imagesTr").glob("*.nii.gz")).stat().st_mtime_ns
    write_phantoms(tmp_path, n_cases=2, scale=0.4, progress=False)
    assert next((folders[0] / "imagesTr").glob("*.nii.gz")).stat().st_mtime_ns == stamp
