import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from liverwild.cli import evaluate as evaluate_cli
from liverwild.errors import LiverwildError
from liverwild.evaluation import all_metrics, compare_evaluations, dice, evaluate_folders, iou, ravd, surface_metrics
from liverwild.io import Geometry, write_mask


def cube(shape, lo, size):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, a + size) for a in lo)] = True
    return m


def sphere(shape, center, radius_mm, spacing=(1, 1, 1)):
    z, y, x = np.indices(shape)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip((z, y, x), center, spacing))
    return d2 <= radius_mm**2


def brute_force_surface_metrics(pred, ref, spacing):
    """Independent computation: border = mask voxels with a face neighbour outside the mask but inside
    the volume (padding with True, as CHAOS's erosion does, and shifting), nearest neighbours by a k-d
    tree on physical coordinates."""

    def border(m):
        p = np.pad(m, 1, constant_values=True)
        inner = np.ones_like(m)
        for axis in range(3):
            for shift in (-1, 1):
                inner &= np.roll(p, shift, axis)[1:-1, 1:-1, 1:-1]
        return m & ~inner

    bp, br = np.argwhere(border(pred)) * spacing, np.argwhere(border(ref)) * spacing
    d_pr, _ = cKDTree(br).query(bp)
    d_rp, _ = cKDTree(bp).query(br)
    pooled = np.concatenate([d_pr, d_rp])
    return pooled.mean(), pooled.max(), max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))


@pytest.mark.parametrize("shift", [1, 3, 5])
def test_shifted_cubes_have_known_overlap(shift):
    a = cube((40, 40, 40), (10, 10, 10), 16)
    b = cube((40, 40, 40), (10, 10, 10 + shift), 16)
    assert dice(a, b) == pytest.approx((16 - shift) / 16)
    assert iou(a, b) == pytest.approx((16 - shift) / (16 + shift))
    assert ravd(a, b) == 0
    assert surface_metrics(a, b, (1, 1, 1))["mssd_mm"] == pytest.approx(shift)


@pytest.mark.parametrize("axis, spacing, expected", [(0, (3.0, 0.8, 0.8), 6.0), (2, (3.0, 0.8, 0.5), 1.0)])
def test_anisotropic_spacing_scales_distances(axis, spacing, expected):
    a = cube((30, 30, 30), (8, 8, 8), 10)
    lo = [8, 8, 8]
    lo[axis] += 2
    b = cube((30, 30, 30), tuple(lo), 10)
    assert surface_metrics(a, b, spacing)["mssd_mm"] == pytest.approx(expected)


def test_concentric_spheres_distance_is_radius_difference():
    shape, c = (64, 64, 64), (32, 32, 32)
    outer, inner = sphere(shape, c, 20.0), sphere(shape, c, 14.0)
    m = surface_metrics(outer, inner, (1, 1, 1))
    assert 5.0 <= m["assd_mm"] <= 6.5 and 5.5 <= m["mssd_mm"] <= 7.0
    # volume of a sphere of known radius (voxelised) within 2 %
    ml = all_metrics(outer, outer, (1, 1, 1))["volume_ref_ml"]
    assert ml == pytest.approx(4 / 3 * np.pi * 20**3 / 1000, rel=0.02)
    assert all_metrics(outer, outer, (1, 1, 1))["dice"] == 1.0


def test_sphere_shifted_in_millimetres_with_anisotropic_voxels():
    spacing = (2.5, 0.7, 0.7)
    shape = (40, 120, 120)
    a = sphere(shape, (20, 60, 60), 25.0, spacing)
    b = sphere(shape, (20, 60, 60 + 10), 25.0, spacing)  # shifted by 10 voxels = 7 mm
    m = surface_metrics(a, b, spacing)
    assert m["mssd_mm"] == pytest.approx(7.0, abs=0.71)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_an_independent_computation(seed):
    rng = np.random.default_rng(seed)
    spacing = np.array([2.0, 0.9, 0.6])
    a = sphere((30, 50, 50), (15, 25, 25), 14.0, spacing) & (rng.random((30, 50, 50)) > 0.02)
    b = np.roll(sphere((30, 50, 50), (14, 24, 27), 12.0, spacing), 1, axis=2)
    ours = surface_metrics(a, b, tuple(spacing))
    assd, mssd, hd95 = brute_force_surface_metrics(a, b, spacing)
    assert ours["assd_mm"] == pytest.approx(assd, rel=1e-6)
    assert ours["mssd_mm"] == pytest.approx(mssd, rel=1e-6)
    assert ours["hd95_mm"] == pytest.approx(hd95, rel=1e-6)


def test_cut_faces_at_the_volume_edge_are_not_surfaces():
    """A liver cut by the last slice: the cut is not a border (CHAOS convention)."""
    a = np.zeros((10, 20, 20), bool)
    a[4:, 5:15, 5:15] = True  # runs out of the volume at the top
    b = a.copy()
    b[:, :, 14] = False  # one face moved by one voxel
    m = surface_metrics(a, b, (1, 1, 1))
    assert m["mssd_mm"] == pytest.approx(1.0)
    from liverwild.evaluation import surface

    assert not surface(a)[-1, 7:13, 7:13].any()  # interior of the cut face


def test_empty_mask_rules_have_no_nan():
    empty = np.zeros((10, 10, 10), bool)
    full = cube((10, 10, 10), (2, 2, 2), 4)
    both = all_metrics(empty, empty, (1, 1, 1))
    assert both["dice"] == 1 and both["iou"] == 1 and both["ravd"] == 0 and both["assd_mm"] == 0
    missed = all_metrics(empty, full, (1, 2, 3))
    assert missed["dice"] == 0 and missed["ravd"] == 100.0
    assert missed["mssd_mm"] == pytest.approx(np.sqrt(10**2 + 20**2 + 30**2))
    spurious = all_metrics(full, empty, (1, 1, 1))
    assert spurious["ravd"] == float("inf") and not any(np.isnan(v) for v in spurious.values())


def _write_case(folder, name, mask, geometry):
    write_mask(mask, geometry, folder / f"{name}.nii.gz")


def test_evaluate_folders_csv_summary_and_geometry_errors(tmp_path):
    g = Geometry((30, 30, 20), (0.8, 0.8, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    truth = cube((20, 30, 30), (5, 8, 8), 10)
    _write_case(ref, "a", truth, g)
    _write_case(pred, "a", np.roll(truth, 2, axis=2), g)
    _write_case(ref, "b", truth, g)
    _write_case(pred, "b", truth, g)
    moved = Geometry(g.size, g.spacing, (5.0, 0.0, 0.0), g.direction)
    _write_case(ref, "c", truth, g)
    _write_case(pred, "c", truth, moved)
    _write_case(ref, "d", truth, g)  # no prediction
    table, summary, failures = evaluate_folders(pred, ref, output_csv=tmp_path / "res.csv")
    assert list(table["case"]) == ["a", "b"]
    assert table.set_index("case").loc["a", "dice"] == pytest.approx(0.8)
    assert table.set_index("case").loc["a", "mssd_mm"] == pytest.approx(1.6)
    assert set(failures) == {"c", "d"} and "geometry differs" in failures["c"]
    saved = json.loads((tmp_path / "res.summary.json").read_text(encoding="utf-8"))
    assert saved["dice"]["mean"] == pytest.approx(0.9) and saved["dice"]["std"] == pytest.approx(0.1)
    assert evaluate_cli.main(["-p", str(pred), "-r", str(ref), "-o", str(tmp_path / "cli.csv")]) == 1


def test_a_case_with_two_files_is_reported_not_scored_against_one(tmp_path, capsys):
    """``e.nii.gz`` and a stale empty ``e_0000.nii``: both are case ``e``; one used to be scored silently.
    The printed n counts the values averaged (an infinite RAVD is left out and said)."""
    g = Geometry((20, 20, 10), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    truth = cube((10, 20, 20), (2, 5, 5), 6)
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for case in ("e", "f", "g"):
        _write_case(ref, case, truth, g)
        _write_case(pred, case, truth, g)
    write_mask(np.zeros_like(truth), g, pred / "e_0000.nii")
    _write_case(ref, "h", np.zeros_like(truth), g)  # empty reference, a prediction: RAVD +inf
    _write_case(pred, "h", truth, g)
    table, summary, failures = evaluate_folders(pred, ref)
    assert sorted(table["case"]) == ["f", "g", "h"]
    assert list(failures) == ["e"] and "case e has 2 files (e.nii.gz, e_0000.nii); keep one" in failures["e"]
    assert evaluate_cli.main(["-p", str(pred), "-r", str(ref), "-o", str(tmp_path / "cli.csv")]) == 1
    out = capsys.readouterr().out
    assert "n=3)" in out and "n=2; 1 non-finite left out)" in out and "population s.d." in out


def test_compare_refuses_rows_that_do_not_pair(tmp_path):
    import pandas as pd

    metrics = {m: [0.9, 0.8] for m in ("dice", "iou", "ravd", "assd_mm", "mssd_mm", "hd95_mm")}
    pd.DataFrame({"case": ["a", "b"], **metrics}).to_csv(tmp_path / "liver.csv", index=False)
    organs = {m: [0.9, 0.8, 0.7, 0.6] for m in metrics}
    frame = {"case": ["a", "a", "b", "b"], "organ": ["liver", "spleen"] * 2, **organs}
    pd.DataFrame(frame).to_csv(tmp_path / "organs.csv", index=False)
    with pytest.raises(LiverwildError, match="scores organs, .*liver.csv one mask per case"):
        compare_evaluations(tmp_path / "organs.csv", tmp_path / "liver.csv")
    pd.DataFrame({"case": ["a", "a", "b"], **{m: [0.9, 0.8, 0.7] for m in metrics}}).to_csv(tmp_path / "twice.csv")
    with pytest.raises(LiverwildError, match="several rows for one case"):
        compare_evaluations(tmp_path / "twice.csv", tmp_path / "liver.csv")


def test_labels_option_counts_tumour_as_liver(tmp_path):
    g = Geometry((20, 20, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ref = np.zeros((10, 20, 20), np.uint8)
    ref[2:8, 5:15, 5:15] = 1
    ref[4:6, 8:12, 8:12] = 2
    write_mask(ref, g, tmp_path / "ref" / "x.nii.gz")
    write_mask(ref > 0, g, tmp_path / "pred" / "x_0000.nii.gz")
    table, _, _ = evaluate_folders(tmp_path / "pred", tmp_path / "ref", labels=(1, 2))
    assert table["dice"].iloc[0] == 1.0
    table, _, _ = evaluate_folders(tmp_path / "pred", tmp_path / "ref", labels=(1,))
    assert table["dice"].iloc[0] < 1.0


def test_paired_t_test_on_a_hand_example(tmp_path, capsys):
    import pandas as pd

    x = np.array([0.90, 0.80, 0.85, 0.95])
    y = x + np.array([0.01, 0.02, 0.01, 0.02])
    cols = {m: x for m in ("iou", "ravd", "assd_mm", "mssd_mm", "hd95_mm")}
    pd.DataFrame({"case": list("abcd"), "dice": x, **cols}).to_csv(tmp_path / "A.csv", index=False)
    pd.DataFrame({"case": list("abcd"), "dice": y, **cols}).to_csv(tmp_path / "B.csv", index=False)
    rows, table = compare_evaluations(tmp_path / "A.csv", tmp_path / "B.csv", names=("ours", "baseline"))
    assert rows[0]["p_value"] == pytest.approx(0.01385, rel=1e-2)  # by hand: t = 5.196, 3 d.o.f., two-sided
    assert rows[1]["p_value"] == 1.0  # identical columns
    assert "| dice | 0.875 ± 0.056 | 0.890 ± 0.056 |" in table
    assert evaluate_cli.main(["--compare", str(tmp_path / "A.csv"), str(tmp_path / "B.csv")]) == 0
    out = capsys.readouterr().out
    assert "paired t-test" in out and "| dice | 0.875 ± 0.056 | 0.890 ± 0.056 | 0.0138 |" in out


def test_ravd_is_in_percent():
    a = cube((30, 30, 30), (5, 5, 5), 10)
    b = np.zeros_like(a)
    b[5:17, 5:15, 5:15] = True  # 1200 vs 1000 voxels
    assert ravd(b, a) == pytest.approx(20.0) and ravd(a, b) == pytest.approx(100 * 200 / 1200)


def test_hd95_is_monai_not_medpy():
    """A reference sphere and a prediction with a long spike: the directed P→R percentile sees the spike,
    the pooled (medpy) percentile dilutes it with the many R→P distances near zero."""
    ref = sphere((40, 40, 40), (20, 20, 20), 10)
    pred = ref.copy()
    pred[20, 20, 30:39] = True
    pred[19:22, 19:22, 30:39] = True
    d_pr, d_rp = (
        cKDTree(np.argwhere(m2)).query(np.argwhere(m1))[0]
        for m1, m2 in ((_border(pred), _border(ref)), (_border(ref), _border(pred)))
    )
    monai = max(np.percentile(d_pr, 95), np.percentile(d_rp, 95))
    medpy = np.percentile(np.concatenate([d_pr, d_rp]), 95)
    ours = surface_metrics(pred, ref, (1, 1, 1))["hd95_mm"]
    assert ours == pytest.approx(monai) and ours > medpy + 0.5


def _border(m):
    from scipy import ndimage

    return m & ~ndimage.binary_erosion(m, border_value=1)


def test_paper_protocol_resamples_inplane(tmp_path):
    """On a 256² grid a mask shifted by 2 voxels in x: natively 2 × 0.5 mm; at 128² the shift is one
    1 mm voxel — the same millimetres, on the paper's grid — and the spacing is reported accordingly."""
    from liverwild.evaluation.evaluate import evaluate_case, inplane_resampled

    g = Geometry((256, 256, 12), (0.5, 0.5, 4.0), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ref = np.zeros((12, 256, 256), np.uint8)
    ref[2:10, 60:180, 60:180] = 1
    pred = np.zeros_like(ref)
    pred[2:10, 60:180, 62:182] = 1
    write_mask(ref, g, tmp_path / "ref.nii.gz")
    write_mask(pred, g, tmp_path / "pred.nii.gz")
    native = evaluate_case(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz")
    paper = evaluate_case(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz", protocol="multi-dg")
    assert native["mssd_mm"] == pytest.approx(1.0) and paper["mssd_mm"] == pytest.approx(1.0)
    assert native["dice"] == pytest.approx(118 / 120) and paper["dice"] == pytest.approx(59 / 60)
    small, spacing = inplane_resampled(ref > 0, g, 192)
    assert small.shape == (12, 192, 192) and spacing == pytest.approx((4.0, 256 * 0.5 / 192, 256 * 0.5 / 192))
    with pytest.raises(Exception, match="unknown evaluation protocol"):
        evaluate_case(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz", protocol="nope")


def test_one_dice_from_counts_as_from_masks():
    from liverwild.evaluation.metrics import dice_from_counts
    from liverwild.training.volumes import volume_dice

    assert dice_from_counts(3, 4, 5) == pytest.approx(6 / 9)  # 2·3 / (4 + 5)
    assert dice_from_counts(0, 0, 0) == 1.0 and dice_from_counts(0, 2, 0) == 0.0
    # the 3d trainers' per-class Dice, by hand: class 1 overlaps in 1 of 2 + 1 voxels, class 2 only predicted
    prediction = np.array([[[1, 1, 2, 0]]])
    reference = np.array([[[1, 0, 0, 0]]])
    assert volume_dice(prediction, reference, 4) == {1: pytest.approx(2 / 3), 2: 0.0}  # class 3: absent, left out
