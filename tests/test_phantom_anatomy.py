"""The filled phantom abdomen (generator version 2): structures where anatomy puts them, the liver label
under the nonlinear deformation, slab partial volume, textures, contrasts, and the label-map route."""

import json

import numpy as np
import pytest
from scipy import ndimage

from liverwild.datasets import load_dataset_json, verify_dataset
from liverwild.errors import ConfigurationError
from liverwild.io import Reorientation, read_image, read_label
from liverwild.phantoms import DOMAINS, LIVER_TISSUES, Tissue, generate_case, write_domain
from liverwild.phantoms.anatomy import LIVER_FAMILIES, Abdomen
from liverwild.phantoms.deformation import displacement_field
from liverwild.phantoms.domains import Domain
from liverwild.phantoms.generate import canonical_grid, case_seed
from liverwild.phantoms.labelmaps import find_label_maps, tissue_of, write_from_label_maps
from liverwild.phantoms.randomized import HARD_NEGATIVES, case_domain
from liverwild.phantoms.render import render, texture
from liverwild.phantoms.tissues import CONTENTS

PORTAL = DOMAINS["PhantomPortalCT"].scaled(0.5)  # 96² in-plane, 3.96 mm, 2.5 mm slices (no slab)


@pytest.fixture(scope="module")
def abdomens():
    """Three patients painted on the portal-venous domain's canonical grid (organ map + contents)."""
    out = []
    for case in range(3):
        grid, _ = canonical_grid(PORTAL)
        abdomen = Abdomen(np.random.default_rng(case_seed(5, PORTAL, case)))
        out.append((abdomen, grid, abdomen.paint_canvas(grid)))
    return out


def _points(grid, mask):
    """Physical (x, y, z) mm of the voxels of a canonical mask."""
    k, j, i = np.nonzero(mask)
    return np.stack([grid.x[i], grid.y[j], grid.z[k]], axis=1)


def _distance_to(grid, mask):
    return ndimage.distance_transform_edt(~mask, sampling=grid.spacing_zyx)


def test_colon_lies_under_the_right_lobe(abdomens):
    for _, grid, canvas in abdomens:
        liver = np.isin(canvas.organs, LIVER_TISSUES)
        colon = canvas.organs == Tissue.COLON
        near = colon & (_distance_to(grid, liver) < 10)  # colon within 1 cm of the liver
        assert near.sum() > 20
        points, liver_points = _points(grid, near), _points(grid, liver)
        assert np.median(points[:, 0]) < 0, "the colon that touches the liver is on the patient's right"
        assert np.median(points[:, 2]) < np.median(liver_points[:, 2]), "and below the liver's middle"
        # the ascending colon runs on the right flank, the descending colon on the left
        low = colon & (grid.z[:, None, None] < liver_points[:, 2].min())
        xs = _points(grid, low)[:, 0]
        assert (xs < -40).sum() > 50 and (xs > 40).sum() > 50


def test_diaphragm_sheet_lies_between_lung_and_liver_dome(abdomens):
    for abdomen, _grid, canvas in abdomens:
        liver = np.isin(canvas.organs, LIVER_TISSUES)
        k, j, i = np.argwhere(liver)[np.argmax(np.argwhere(liver)[:, 0])]  # the dome's highest voxel
        column = canvas.organs[k + 1 :, j, i]
        first = column[column != Tissue.FAT][:1]
        assert first.tolist() == [Tissue.DIAPHRAGM], "right above the dome: diaphragm"
        above = column[np.flatnonzero(column == Tissue.DIAPHRAGM)[-1] + 1 :]
        assert Tissue.LUNG in above[:4], "then the lung base"
        assert 3 <= abdomen.diaphragm_mm <= 6


def test_duodenum_at_the_hilum_and_pancreas_in_its_loop(abdomens):
    for _, grid, canvas in abdomens:
        duodenum = canvas.organs == Tissue.DUODENUM
        gallbladder = canvas.organs == Tissue.GALLBLADDER
        pancreas = canvas.organs == Tissue.PANCREAS
        assert duodenum.any() and pancreas.any()
        assert _distance_to(grid, duodenum)[gallbladder].min() < 25, "D1 passes the gallbladder neck"
        assert _distance_to(grid, pancreas)[duodenum].min() < 10, "the C-loop wraps the pancreatic head"
        assert np.median(_points(grid, duodenum)[:, 0]) < 20, "the C-loop lies right of the aorta"


def test_caudate_lobe_wraps_the_intrahepatic_ivc(abdomens):
    for abdomen, grid, canvas in abdomens:
        liver = np.isin(canvas.organs, LIVER_TISSUES)
        k = int(np.searchsorted(grid.z, abdomen.liver.caudate.center[2]))  # the caudate's level
        x, y = abdomen.ivc
        i, j = int(np.argmin(abs(grid.x - x))), int(np.argmin(abs(grid.y - y)))
        r = int(np.ceil((abdomen.ivc_r + 12) / grid.spacing_zyx[2]))
        around = liver[k, j - r : j + r + 1, i - r : i + r + 1]
        assert canvas.organs[k, j, i] == Tissue.VEIN and around.mean() > 0.3, "liver on several sides of the IVC"
        assert liver[k, j, i + 1 : i + r + 1].any(), "liver on the IVC's left (the caudate)"


def test_contents_stay_inside_hollow_organs_and_out_of_the_organ_map(abdomens):
    hollow = (Tissue.STOMACH, Tissue.COLON, Tissue.SMALL_BOWEL, Tissue.DUODENUM)
    seen = set()
    for _, _, canvas in abdomens:
        assert not np.isin(canvas.organs, CONTENTS).any()
        filled = canvas.content > 0
        assert np.isin(canvas.organs[filled], hollow).all()
        seen |= set(np.unique(canvas.content[filled]).tolist())
    assert {Tissue.GAS, Tissue.FLUID} <= seen


def test_stacks_reach_from_the_lung_bases_to_the_pelvis():
    domain = Domain(
        "Tall", "CT", "lung bases to pelvis", DOMAINS["PhantomPortalCT"].intensities, 300, 64, 6.0, (-480, 30)
    )
    _, _, tissues = generate_case(domain, seed=2, case=0)
    present = set(np.unique(tissues).tolist())
    assert {Tissue.LUNG, Tissue.BLADDER, Tissue.ILIAC_BONE, Tissue.COLON, Tissue.SMALL_BOWEL} <= present
    slices = np.flatnonzero(np.isin(tissues, LIVER_TISSUES).any((1, 2)))
    assert 0 < slices[0] and slices[-1] < tissues.shape[0] - 1, "the whole liver inside, with slices below and above"
    bladder_z = np.argwhere(tissues == Tissue.BLADDER)[:, 0].mean()
    assert bladder_z < slices[0], "bladder below the liver"
    # randomised stacks: some reach the pelvis, some the lung bases (and thin-slice windows still hold liver)
    ranges = [case_domain(0, "CT", c).z_range for c in range(200)]
    assert sum(lo < -400 for lo, _ in ranges) > 10 and sum(hi > 0 for _, hi in ranges) > 60
    overlap = [min(hi, 0) - max(lo, -190) for lo, hi in ranges]  # with the liver's region z ∈ [−190, 0]
    assert all(o >= min(0.5 * (hi - lo), 130) - 1 for o, (lo, hi) in zip(overlap, ranges))


def test_every_liver_family_is_drawn_and_changes_the_liver():
    families: dict = {}
    for case in range(60):
        abdomen = Abdomen(np.random.default_rng(case_seed(9, PORTAL, case)))
        families.setdefault(abdomen.liver.family, abdomen.liver)
    assert set(families) == set(LIVER_FAMILIES)
    typical = families["typical"]
    assert families["large_left_lobe"].liver_left.radii[0] > typical.liver_left.radii[0]
    assert families["riedel_lobe"].extra_lobes and families["cirrhotic"].nodules
    assert families["post_resection"].resection is not None


def test_liver_label_follows_the_deformation_exactly():
    """The label equals an independent warp (scipy map_coordinates) of the undeformed liver."""
    seed, case = 3, 1
    _, label, tissues = generate_case(PORTAL, seed, case)
    grid, _ = canonical_grid(PORTAL)
    abdomen = Abdomen(np.random.default_rng(case_seed(seed, PORTAL, case)))
    amplitude, abdomen.deformation_mm = abdomen.deformation_mm, 0.0
    flat = np.isin(abdomen.paint(grid), LIVER_TISSUES).astype(np.uint8)
    rng = np.random.default_rng(abdomen.deformation_seed)
    shift = displacement_field(grid.shape, grid.spacing_zyx, amplitude, abdomen.deformation_control_mm, rng)
    expected = ndimage.map_coordinates(flat, np.indices(flat.shape) + shift, order=0, mode="nearest")
    canonical = Reorientation.from_geometry(label.geometry).to_canonical(label.array)
    assert np.array_equal(canonical, expected)
    assert np.array_equal(canonical, np.isin(tissues, LIVER_TISSUES))
    assert (expected != flat).sum() > 0.05 * flat.sum(), "the deformation moves the liver's surface"


def test_thick_slices_integrate_their_slab():
    """6 mm slices: each slice is the mean of its three sub-slices (no texture, blur or noise)."""
    flat = {t.name: (0.0, 0.0) for t in Tissue} | {"FAT": (-100.0, 0.0), "LIVER": (60.0, 0.0)}
    domain = Domain("Slab", "CT", "", flat, slice_mm=6.0, psf_mm=(0.0, 0.0), noise=0.0, noise_corr=0.0)
    tissues = np.full((6, 4, 4), Tissue.LIVER, np.uint8)
    tissues[:2] = Tissue.FAT  # slab 0 = fat, fat, liver; slab 1 = liver × 3
    image = render(tissues, domain, (2.0, 2.0, 6.0), np.random.default_rng(0), slab=3)
    assert image.shape == (2, 4, 4)
    np.testing.assert_allclose(image[0], (2 * -100 + 60) / 3, atol=1e-3)
    np.testing.assert_allclose(image[1], 60, atol=1e-3)


def test_tissues_get_textures_of_their_own_at_several_scales():
    shape = (16, 48, 48)
    textures = np.zeros(len(Tissue), np.float32)
    textures[Tissue.LIVER] = textures[Tissue.SPLEEN] = 10.0
    a = texture(np.full(shape, Tissue.LIVER, np.uint8), textures, np.random.default_rng(4))
    b = texture(np.full(shape, Tissue.SPLEEN, np.uint8), textures, np.random.default_rng(4))
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.9, "two tissues do not share one pattern"
    grain = np.abs(np.diff(a, axis=2)).mean()  # neighbour differences: the fine scale
    shading = ndimage.uniform_filter(a, 8).std()  # 8-voxel averages: the smooth scales
    assert grain > 0.5 and shading > 1.5


def test_ct_contrasts_are_independent_in_a_third_and_hard_negatives_occur():
    domains = [case_domain(0, "CT", c) for c in range(300)]
    independent = sum(d.extra["contrast"] == "ct_random" for d in domains)
    assert independent >= 100, independent
    hard = 0
    for d in domains:
        liver = d.intensities["LIVER"][0]
        hard += any(abs(d.intensities[t][0] - liver) <= 10 for t in HARD_NEGATIVES)
    assert hard >= 75, hard
    signs = {np.sign(d.intensities["LESION"][0] - d.intensities["LIVER"][0]) for d in domains}
    assert signs == {-1.0, 1.0}, "lesions darker and brighter than the liver"


def test_label_names_map_to_tissues():
    assert tissue_of("liver") == Tissue.LIVER and tissue_of("liver_tumour") == Tissue.LESION
    assert tissue_of("kidney_left") == Tissue.LEFT_KIDNEY_CORTEX and tissue_of("right_kidney") == Tissue.KIDNEY_CORTEX
    assert tissue_of("adrenal_gland_left") == Tissue.ADRENAL_LEFT and tissue_of("urinary_bladder") == Tissue.BLADDER
    assert tissue_of("small_bowel") == Tissue.SMALL_BOWEL and tissue_of("colon") == Tissue.COLON
    assert tissue_of("lung_lower_lobe_right") == Tissue.LUNG and tissue_of("inferior_vena_cava") == Tissue.VEIN
    assert tissue_of("costal_cartilages") == Tissue.CARTILAGE and tissue_of("rib_left_7") == Tissue.BONE
    assert tissue_of("gallbladder") == Tissue.GALLBLADDER and tissue_of("gluteus_maximus_left") == Tissue.MUSCLE


def _check_synthetic_dataset(folder, source_maps):
    info = load_dataset_json(folder)
    report = verify_dataset(folder)
    assert report.ok, [str(p) for p in report.problems]
    liver_values = [v for n, v in info.extra["organ_labels"].items() if tissue_of(n) in LIVER_TISSUES]
    for case in info.cases:
        image = read_image(folder / "imagesTr" / f"{case}_0000.nii.gz")
        label = read_label(folder / "labelsTr" / f"{case}.nii.gz")
        organs = read_label(folder / "labelsTr_organs" / f"{case}.nii.gz")
        source, source_liver = source_maps[case.rsplit("_", 1)[0]]
        assert image.geometry == source.geometry == label.geometry  # the map's own grid and orientation
        assert np.array_equal(label.array, np.isin(organs.array, liver_values)), "label = the map's liver"
        ratio = label.array.sum() / np.isin(source.array, source_liver).sum()
        assert 0.8 < ratio < 1.25, "a smooth deformation keeps the liver's size"
        assert not np.array_equal(label.array, np.isin(source.array, source_liver)), "but moves it"


def test_from_label_maps_on_the_phantoms_own_maps(tmp_path):
    phantoms = write_domain("PhantomT2MR", tmp_path / "raw", n_cases=2, scale=0.4, progress=False)
    folder = write_from_label_maps(phantoms, tmp_path / "out", "CT", copies=2, seed=1, progress=False)
    maps = {}
    for item in find_label_maps(phantoms):
        maps[item.case] = (read_label(item.path), [v for v, n in item.names.items() if tissue_of(n) in LIVER_TISSUES])
    assert len(load_dataset_json(folder).cases) == 4
    _check_synthetic_dataset(folder, maps)


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_from_label_maps_on_the_development_scans_maps(real_data_dir, tmp_path, modality):
    real = real_data_dir
    source = tmp_path / "maps"
    for scan in ("totalseg_ct", "totalseg_mr"):  # only the maps and their tables (no images, no liver.nii.gz)
        (source / scan).mkdir(parents=True)
        for name in ("organs.nii.gz", "organs.json"):
            (source / scan / name).write_bytes((real / scan / name).read_bytes())
    folder = write_from_label_maps(source, tmp_path / "out", modality, copies=1, progress=False)
    maps = {}
    for scan in ("totalseg_ct", "totalseg_mr"):
        volume = read_label(real / scan / "organs.nii.gz")
        maps[f"{scan}_organs"] = (volume, [5])
        # the liver label 5 of these maps is exactly liver.nii.gz
        assert np.array_equal(volume.array == 5, read_label(real / scan / "liver.nii.gz").array > 0)
    _check_synthetic_dataset(folder, maps)
    info = json.loads((folder / "dataset.json").read_text())
    assert {"liver", "colon", "duodenum", "kidney_right"} <= set(info["organ_labels"])


def test_from_label_maps_skips_a_map_without_liver_and_refuses_when_none_is_usable(tmp_path, caplog):
    phantoms = write_domain("PhantomT2MR", tmp_path / "raw", n_cases=1, scale=0.3, progress=False)
    spleen_only = tmp_path / "spleen"
    spleen_only.mkdir()
    organs = read_label(next((phantoms / "labelsTr_organs").glob("*.nii.gz")))
    from liverwild.io import write_volume

    write_volume((organs.array == Tissue.SPLEEN).astype(np.uint8), organs.geometry, spleen_only / "map.nii.gz")
    (spleen_only / "map.json").write_text(json.dumps({"labels": {"1": "spleen"}}))
    with pytest.raises(ConfigurationError, match="none of the 1 label maps"):
        write_from_label_maps(spleen_only, tmp_path / "out", "MR", progress=False)
    assert "FAILED" in caplog.text and "no liver label" in caplog.text
    with pytest.raises(ConfigurationError, match="no label map"):
        write_from_label_maps(tmp_path / "raw" / "PhantomT2MR" / "imagesTr", tmp_path / "out", "MR", progress=False)


def test_lw_phantoms_from_label_maps_command(tmp_path):
    from liverwild.cli import phantoms as cli

    raw = write_domain("PhantomT2MR", tmp_path / "raw", n_cases=1, scale=0.3, progress=False)
    rc = cli.main(["--from-label-maps", str(raw), "-o", str(tmp_path / "out"), "--modality", "MR", "-n", "2"])
    assert rc == 0 and len(load_dataset_json(tmp_path / "out" / "FromLabelMapsMR").cases) == 2
    assert cli.main(["--from-label-maps", str(raw), "-o", str(tmp_path / "o2"), "--scale", "0.5"]) == 2
    assert cli.main(["-o", str(tmp_path / "o3"), "--names", "x.json"]) == 2
