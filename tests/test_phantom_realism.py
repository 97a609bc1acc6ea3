"""liverwild.phantoms.realism: structure groups, shell composition around the liver, reading label maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liverwild.io import read_label
from liverwild.phantoms.realism import (
    GROUPS,
    STRUCTURE_GROUPS,
    body_mask,
    liver_summary,
    read_canonical,
    read_label_map,
    read_names,
    shell_composition,
    structure_group,
)

# TotalSegmentator names (both shared organs.json files and a few more), by hand
TOTALSEG = {
    "liver": "liver",
    "spleen": "spleen",
    "kidney_right": "right_kidney",
    "kidney_left": "left_kidney",
    "kidney_cyst_left": "left_kidney",
    "gallbladder": "gallbladder",
    "stomach": "stomach",
    "pancreas": "pancreas",
    "adrenal_gland_right": "other",
    "adrenal_gland_left": "other",
    "lung_upper_lobe_left": "lung",
    "lung_lower_lobe_left": "lung",
    "lung_upper_lobe_right": "lung",
    "lung_middle_lobe_right": "lung",
    "lung_lower_lobe_right": "lung",
    "lung_right": "lung",
    "lung_left": "lung",
    "small_bowel": "bowel",
    "duodenum": "bowel",
    "colon": "bowel",
    "urinary_bladder": "other",
    "prostate": "other",
    "esophagus": "other",
    "sacrum": "bone",
    "vertebrae": "bone",
    "intervertebral_discs": "bone",
    "spinal_cord": "other",
    "aorta": "vessels",
    "inferior_vena_cava": "vessels",
    "portal_vein_and_splenic_vein": "vessels",
    "pulmonary_vein": "vessels",
    "heart": "heart",
    "femur_left": "bone",
    "femur_right": "bone",
    "hip_left": "bone",
    "hip_right": "bone",
    "costal_cartilages": "bone",
    "sternum": "bone",
    "autochthon_left": "muscle",
    "autochthon_right": "muscle",
    "iliopsoas_left": "muscle",
    "iliopsoas_right": "muscle",
}
PATTERNS = {
    "vertebrae_": "bone",
    "rib_": "bone",
    "gluteus_": "muscle",
    "iliac_arter": "vessels",
    "iliac_vena": "vessels",
}

# phantom names, today's and those the anatomy may add
PHANTOM = {
    "fat": "fat",
    "muscle": "muscle",
    "liver": "liver",
    "liver_vessel": "liver",
    "liver_lesion": "liver",
    "spleen": "spleen",
    "right_kidney_cortex": "right_kidney",
    "right_kidney_medulla": "right_kidney",
    "kidney_cortex": "right_kidney",
    "kidney_medulla": "right_kidney",
    "left_kidney_cortex": "left_kidney",
    "left_kidney_medulla": "left_kidney",
    "Kidney-Left": "left_kidney",
    "aorta": "vessels",
    "vein": "vessels",
    "ivc": "vessels",
    "bone": "bone",
    "marrow": "bone",
    "rib": "bone",
    "costal_cartilage": "bone",
    "hip": "bone",
    "disc": "bone",
    "csf": "other",
    "stomach": "stomach",
    "bowel": "bowel",
    "colon": "bowel",
    "duodenum": "bowel",
    "small_bowel": "bowel",
    "gas": "gas",
    "lung": "lung",
    "heart": "heart",
    "gallbladder": "gallbladder",
    "pancreas": "pancreas",
    "diaphragm": "diaphragm",
    "adrenal_gland_right": "other",
    "adrenal_gland_left": "other",
    "fluid": "other",  # lumen contents: never in an organ map, but named in organ_labels
    "stool": "other",
    "oral_contrast": "other",
    "ascites": "other",
    "urinary_bladder": "other",
    "table": "outside",
}


def expected_group(name: str) -> str:
    if name in TOTALSEG:
        return TOTALSEG[name]
    return next(g for prefix, g in PATTERNS.items() if name.startswith(prefix))


@pytest.mark.parametrize("name, group", sorted({**TOTALSEG, **PHANTOM}.items()))
def test_structure_group_by_hand(name, group):
    assert structure_group(name) == group


def test_groups_cover_the_brief():
    for group in ("liver", "bowel", "stomach", "right_kidney", "left_kidney", "gallbladder", "lung", "spleen"):
        assert group in STRUCTURE_GROUPS
    for group in ("pancreas", "heart", "vessels", "bone", "muscle", "diaphragm", "fat", "gas"):
        assert group in STRUCTURE_GROUPS
    assert {"other", "unlabelled", "air"} <= set(GROUPS)


def test_phantom_organ_labels_all_grouped():
    from liverwild.phantoms.generate import organ_labels

    for name in organ_labels():
        assert structure_group(name) == PHANTOM[name], name


@pytest.mark.parametrize("folder", ["totalseg_ct", "totalseg_mr"])
def test_every_real_name_maps_to_its_group(real_data_dir, folder):
    names = json.loads((real_data_dir / folder / "organs.json").read_text())["labels"]
    for name in names.values():
        assert structure_group(name) == expected_group(name), name


def _slab_volume():
    """(20, 4, 5) map, spacing (x, y, z) = (1, 1, 2.5) mm: liver (3, plus a vessel 4) in slices 0–2
    over the whole plane, so a voxel in slice z lies (z − 2) × 2.5 mm from the liver; colon (7) in
    slices 6–7 at x ∈ {0, 1}; column x = 4 outside the body (air); slice 3, row y = 0, x < 4 label 0
    inside the body (unlabelled); the rest fat (1)."""
    labels = np.ones((20, 4, 5), np.int16)
    labels[0:3] = 3
    labels[1, 1, 1] = 4
    labels[6:8, :, 0:2] = 7
    labels[3:, :, 4] = 0
    labels[3, 0, 0:4] = 0
    body = np.ones(labels.shape, bool)
    body[3:, :, 4] = False
    names = {1: "fat", 3: "liver", 4: "liver_vessel", 7: "colon"}
    return labels, (1.0, 1.0, 2.5), names, body


def test_shell_composition_known_answer():
    labels, spacing, names, body = _slab_volume()
    result = shell_composition(labels, spacing, names, body=body)
    # 0–4 mm: slice 3 (2.5 mm), 20 voxels: 4 air, 4 unlabelled, 12 fat
    # 4–15 mm: slices 4–8 (5–15 mm), 100 voxels: 20 air, 16 colon, 64 fat
    # 15–30 mm: slices 9–14 (17.5–30 mm), 120 voxels: 24 air, 96 fat
    expected = {
        "0-4 mm": {"air": 0.2, "unlabelled": 0.2, "fat": 0.6},
        "4-15 mm": {"air": 0.2, "bowel": 0.16, "fat": 0.64},
        "15-30 mm": {"air": 0.2, "fat": 0.8},
    }
    assert list(result) == list(expected)
    for shell, shares in expected.items():
        assert result[shell].keys() == shares.keys(), shell
        for group, share in shares.items():
            assert result[shell][group] == pytest.approx(share), (shell, group)
        assert sum(result[shell].values()) == pytest.approx(1.0)
    # isotropic 1 mm would put the colon (slices 6–7 = 4–5 mm) across the first two shells
    iso = shell_composition(labels, (1.0, 1.0, 1.0), names, body=body)
    assert iso["0-4 mm"]["bowel"] == pytest.approx(8 / 80)


def test_shell_composition_truncated_by_the_scan_and_without_liver():
    labels, spacing, names, body = _slab_volume()
    short = shell_composition(labels[:10], spacing, names, body=body[:10])  # scan ends at 17.5 mm
    assert short["15-30 mm"] == pytest.approx({"air": 0.2, "fat": 0.8})
    none = shell_composition(np.ones((4, 4, 4), np.int16), spacing, {1: "fat"})
    assert none == {"0-4 mm": {}, "4-15 mm": {}, "15-30 mm": {}}


def test_body_mask_fills_holes_and_leaves_the_table_out():
    labels = np.zeros((3, 9, 9), np.int16)
    labels[:, 1:6, 1:8] = 1  # fat
    labels[:, 3, 3:5] = 0  # a hole inside
    labels[:, 7:9, :] = 20  # table, touching the body
    body = body_mask(labels, {1: "fat", 20: "table"})
    assert body[:, 3, 3:5].all() and not body[:, 7:, :].any() and not body[:, 0].any()


def test_liver_summary():
    labels, spacing, names, _ = _slab_volume()
    summary = liver_summary(labels, spacing, names)
    assert summary["volume_ml"] == pytest.approx(3 * 4 * 5 * 2.5 / 1000)
    assert summary["z_extent_mm"] == pytest.approx(7.5)
    assert summary["touches_bottom"] and not summary["touches_top"]


def test_read_names_formats(tmp_path):
    (tmp_path / "organs.json").write_text(json.dumps({"labels": {"1": "spleen", "5": "liver"}}))
    (tmp_path / "dataset.json").write_text(json.dumps({"organ_labels": {"background": 0, "liver": 3, "fat": 1}}))
    assert read_names(tmp_path / "organs.json") == {1: "spleen", 5: "liver"}
    assert read_names(tmp_path / "dataset.json") == {3: "liver", 1: "fat"}


@pytest.mark.parametrize("folder", ["totalseg_ct", "totalseg_mr"])
def test_read_label_map_liver_matches_liver_mask(real_data_dir, folder):
    labels, spacing, names = read_label_map(real_data_dir / folder / "organs.nii.gz")
    liver_mask = read_label(real_data_dir / folder / "liver.nii.gz")
    voxel_ml = float(np.prod(liver_mask.geometry.spacing)) / 1000
    summary = liver_summary(labels, spacing, names)
    assert summary["volume_ml"] == pytest.approx(int((liver_mask.array > 0).sum()) * voxel_ml)
    canonical_liver, canonical_spacing = read_canonical(real_data_dir / folder / "liver.nii.gz", label=True)
    assert canonical_spacing == spacing
    liver_values = [v for v, n in names.items() if n == "liver"]
    assert np.array_equal(np.isin(labels, liver_values), canonical_liver > 0)
