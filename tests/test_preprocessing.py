import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from liverwild.backbones import FrozenBackbone
from liverwild.cli import plan_and_preprocess as cli
from liverwild.errors import ConfigurationError, LiverwildError
from liverwild.io import read_image, write_volume
from liverwild.phantoms import write_phantoms
from planning.plans import load_plans
from planning.sections import Normalization
from preprocessing import CachedCase, list_cases
from preprocessing import cache as cache_module
from preprocessing.normalization import normalize_scan
from preprocessing.pipeline import plan_and_preprocess
from preprocessing.splits import load_splits, make_loo_folds, update_splits

BACKBONE = "vit_tiny_patch16_224"  # small and fast; the default ViT-S/16 is checked separately
DOMAINS = ["PhantomNativeCT", "PhantomPortalCT", "PhantomT2MR"]


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    write_phantoms(root, DOMAINS, n_cases=3, scale=0.3, n_slices=8, progress=False)
    return root


def run(raw, pre, datasets=DOMAINS, **kw):
    kw.setdefault("random_backbone", True)
    kw.setdefault("backbone", BACKBONE)
    kw.setdefault("views", 1)
    kw.setdefault("workers", 0)
    return plan_and_preprocess(datasets, raw=str(raw), preprocessed=str(pre), progress=False, **kw)


@pytest.fixture(scope="module")
def preprocessed(raw_root, tmp_path_factory):
    pre = tmp_path_factory.mktemp("pre")
    reports = run(raw_root, pre)
    return pre, reports


def cache_dir(pre, name):
    plans = load_plans(pre / name / "plans.json")
    return pre / name / plans.data_identifier()


def test_artefacts_exist_and_are_plain_json(preprocessed):
    pre, reports = preprocessed
    assert [len(r.processed) for r in reports] == [3, 3, 3] and not any(r.failed for r in reports)
    for name in DOMAINS:
        fp = json.loads((pre / name / "dataset_fingerprint.json").read_text(encoding="utf-8"))
        case = next(iter(fp["cases"].values()))
        assert set(case["intensity_body"]) == {"p0.5", "p2", "p50", "p98", "p99.5", "mean", "std"}
        assert case["n_slices"] == 8 and case["liver_slice_range"] is not None
        assert fp["aggregate"]["n_cases"] == 3
        plans = json.loads((pre / name / "plans.json").read_text(encoding="utf-8"))
        assert plans["slice_size"] == [224, 224] and plans["backbone"]["weights"] == "random"
        assert plans["augmentation"]["views_per_slice"] == 1 and plans["augmentation"]["elastic"]["sigma_px"] == 3.5
        assert (cache_dir(pre, name) / "plans.json").is_file()


def test_windowing_per_modality(preprocessed):
    pre, _ = preprocessed
    ct = load_plans(pre / "PhantomPortalCT" / "plans.json").normalization
    mr = load_plans(pre / "PhantomT2MR" / "plans.json").normalization
    assert ct.window == [0.0, 500.0] and not ct.relative_to_body_median
    assert mr.relative_to_body_median and mr.window[0] == 0.0 and mr.window[1] > 1.0
    fp = json.loads((pre / "PhantomT2MR" / "dataset_fingerprint.json").read_text(encoding="utf-8"))
    assert mr.window[1] == pytest.approx(fp["aggregate"]["median_ratio_p99.5_to_p50_body"], abs=1e-3)


def test_normalize_scan_on_known_values():
    hu = np.array([-1000, -100, 0, 100, 250, 400, 500, 1500, 3000] * 30, np.float32).reshape(10, 27, 1)
    plan = Normalization([0.0, 500.0], clip_percentiles=[0.0, 100.0], rescale=True, zscore=False)
    out, stats = normalize_scan(hu, plan)
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.allclose(np.unique(out), [0, 0.2, 0.5, 0.8, 1.0])
    out, _ = normalize_scan(hu, dataclasses.replace(plan, zscore=True))
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4
    mr = hu.clip(1) * 3.0
    out, stats = normalize_scan(
        mr,
        Normalization([0, 2], relative_to_body_median=True, clip_percentiles=[0, 100], rescale=True, zscore=False),
        body_median=300.0,
    )
    assert stats["body_median"] == 300.0 and out.max() == 1.0


def test_normalize_scan_in_threads_matches_a_float64_reference():
    """Pieces of slices in threads: the same array as one thread, and the plan's steps recomputed in
    float64 on the whole volume (window, percentiles of the 1/8 subsample, rescale, z-score)."""
    rng = np.random.default_rng(3)
    hu = rng.normal(60, 300, (21, 40, 33)).astype(np.int16)  # 21 slices: pieces of 8, 8 and 5
    plan = Normalization([-100.0, 400.0], clip_percentiles=[2.0, 98.0], rescale=True, zscore=True)
    out, stats = normalize_scan(hu, plan, workers=3)
    np.testing.assert_array_equal(out, normalize_scan(hu, plan, workers=1)[0])
    ref = np.clip(hu.astype(np.float64), -100, 400)
    p_lo, p_hi = np.percentile(ref[::2, ::2, ::2], [2, 98])
    ref = (np.clip(ref, p_lo, p_hi) - p_lo) / (p_hi - p_lo)
    assert stats["zscore_mean"] == pytest.approx(ref.mean(), rel=1e-6)
    assert stats["zscore_std"] == pytest.approx(ref.std(), rel=1e-6)
    np.testing.assert_allclose(out, (ref - ref.mean()) / ref.std(), atol=2e-6)
    before = hu.copy()
    normalize_scan(hu, plan)
    np.testing.assert_array_equal(hu, before)  # the input is untouched
    f32 = hu.astype(np.float32)
    inplace, _ = normalize_scan(f32, plan, inplace=True, workers=2)
    assert inplace is f32 and np.array_equal(inplace, out)
    # z-score without rescaling, a mean far from 0: the variance must not cancel away (1000 ± 1)
    narrow = (1000 + rng.normal(0, 1, (20, 16, 16))).astype(np.float32)
    plain = Normalization([0.0, 5000.0], clip_percentiles=None, rescale=False, zscore=True)
    out, stats = normalize_scan(narrow, plain, workers=2)
    ref = narrow.astype(np.float64)
    assert stats["zscore_std"] == pytest.approx(ref.std(), rel=1e-6)
    assert abs(stats["zscore_mean"] - ref.mean()) < 1e-7  # not off by the subsample mean's float32 rounding
    np.testing.assert_allclose(out, (ref - ref.mean()) / ref.std(), atol=1e-4)


def test_cache_shapes_dtypes_and_normalisation(preprocessed):
    pre, _ = preprocessed
    for name in DOMAINS:
        folder = cache_dir(pre, name)
        cases = list_cases(folder)
        assert len(cases) == 3
        c = CachedCase(folder / cases[0])
        assert c.slices.shape == (2, 8, 224, 224) and c.slices.dtype == np.float16
        assert c.labels.shape == (2, 8, 224, 224) and c.labels.dtype == np.uint8
        assert c.features.shape == (2, 8, 192, 14, 14) and c.features.dtype == np.float16
        original = c.slices[0].astype(np.float32)
        # z-scored at native resolution, then resized (interpolation lowers the s.d. a little)
        assert abs(original.mean()) < 0.1 and 0.7 < original.std() < 1.1
        assert c.labels[0].sum() > 0 and set(np.unique(c.labels)) <= {0, 1}
        assert not np.array_equal(c.slices[0], c.slices[1]), "the augmented view must differ"
        assert c.properties["backbone"]["weights"] == "random"


def test_features_equal_backbone_on_cached_slice(raw_root, tmp_path):
    """With a weights file, the cached features are exactly what the backbone gives for the cached slice."""
    model = FrozenBackbone(BACKBONE, "random")
    weights = tmp_path / "tiny.pth"
    torch.save(model.model.state_dict(), weights)
    pre = tmp_path / "pre"
    run(raw_root, pre, ["PhantomT2MR"], random_backbone=False, weights=str(weights))
    folder = cache_dir(pre, "PhantomT2MR")
    case = CachedCase(folder / list_cases(folder)[0])
    reference = FrozenBackbone(BACKBONE, str(weights))
    for view in (0, 1):
        x = torch.from_numpy(case.slices[view, 3:6].astype(np.float32))[:, None]
        direct = reference(x).numpy()
        cached = case.features[view, 3:6].astype(np.float32)
        assert np.allclose(cached, direct, rtol=2e-3, atol=2e-3 * np.abs(direct).max())
    assert case.properties["backbone"]["weights_tag"].startswith("file-")


def test_float32_features_when_the_plans_say_so(raw_root, tmp_path):
    """``feature_dtype`` acts: plans that say float32 cache float32 features under another data identifier
    — exactly the teacher's output on the cached slice, as prediction computes it — and training reads
    them as they are; a dtype the cache cannot store is refused with the plans file named."""
    from liverwild.training.data import SliceDataset

    model = FrozenBackbone(BACKBONE, "random")
    weights = tmp_path / "tiny.pth"
    torch.save(model.model.state_dict(), weights)
    pre = tmp_path / "pre"
    run(raw_root, pre, ["PhantomT2MR"], random_backbone=False, weights=str(weights), plan_only=True)
    path = pre / "PhantomT2MR" / "plans.json"
    half = load_plans(path).data_identifier()
    plans = json.loads(path.read_text(encoding="utf-8"))
    plans["feature_dtype"] = "float32"
    path.write_text(json.dumps(plans))
    plan_and_preprocess(["PhantomT2MR"], raw=str(raw_root), preprocessed=str(pre), preprocess_only=True, workers=0)
    edited = load_plans(path)
    assert edited.feature_dtype == "float32" and edited.data_identifier() != half
    folder = pre / "PhantomT2MR" / edited.data_identifier()
    case = CachedCase(folder / list_cases(folder)[0])
    assert case.features.dtype == np.float32
    reference = FrozenBackbone(BACKBONE, str(weights))
    for view in (0, 1):
        x = torch.from_numpy(case.slices[view, 3:6].astype(np.float32))[:, None]
        direct = reference(x).numpy()
        np.testing.assert_allclose(case.features[view, 3:6], direct, rtol=1e-5, atol=1e-5 * np.abs(direct).max())
    item = SliceDataset([case])[5]["features"].numpy()
    assert any(np.array_equal(item, case.features[v, i]) for v in range(2) for i in range(case.n_slices))
    assert not np.shares_memory(item, case.features)  # a copy, not a tensor over the read-only memory map
    plans["feature_dtype"] = "bfloat16"
    path.write_text(json.dumps(plans))
    with pytest.raises(ConfigurationError, match="plans.json: feature_dtype 'bfloat16': the cache stores teacher"):
        plan_and_preprocess(["PhantomT2MR"], raw=str(raw_root), preprocessed=str(pre), preprocess_only=True)


def test_plans_no_longer_carry_an_evaluation_resolution_and_old_ones_load(tmp_path, caplog):
    """evaluation_resolution was read by nothing (the evaluation grid is lw_evaluate's --protocol): new
    plans leave it out; plans.json files, caches and models that have it load with the same identifier,
    and an edited value is reported as not read."""
    import logging

    from liverwild.evaluation.evaluate import PROTOCOLS
    from planning.planner import plan_dataset
    from planning.plans import Plans

    plans = plan_dataset({"dataset": "X", "modality": "CT", "aggregate": {"n_cases": 0}})
    assert "evaluation_resolution" not in plans.to_json()
    assert PROTOCOLS["multi-dg"] == 128 and PROTOCOLS["single-dg"] == 192  # where the paper's grids live
    old = {**plans.to_json(), "evaluation_resolution": [128, 128]}
    assert Plans.from_json(old) == plans  # a model's embedded plans
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        assert load_plans(path).data_identifier() == plans.data_identifier()
        assert not caplog.records
        path.write_text(json.dumps({**old, "evaluation_resolution": [192, 192]}))
        assert load_plans(path) == plans
    assert "evaluation_resolution [192, 192] is not read" in caplog.text and "--protocol" in caplog.text


def test_rerun_does_no_work(raw_root, preprocessed, monkeypatch):
    pre, _ = preprocessed
    folder = cache_dir(pre, "PhantomNativeCT")
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*.npy")}
    import planning.fingerprint as fingerprint

    def must_not_read(*args):
        raise AssertionError("an unchanged case was read again for the fingerprint")

    monkeypatch.setattr(fingerprint, "_case_job", must_not_read)
    reports = run(raw_root, pre, ["PhantomNativeCT"])
    assert reports[0].processed == [] and len(reports[0].skipped) == 3
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.npy")} == stamps


def test_interrupted_run_resumes(raw_root, tmp_path, monkeypatch):
    pre = tmp_path / "pre"
    real_write = cache_module.write_case
    calls = {"n": 0}

    def crash_on_second(case_dir, arrays, properties):
        calls["n"] += 1
        if calls["n"] == 2:
            # simulate a kill in the middle of writing: a half-written hidden folder stays behind
            tmp = case_dir.parent / f".{case_dir.name}.tmp-99999"
            tmp.mkdir(parents=True)
            np.save(tmp / "slices.npy", arrays["slices"][:1])
            raise KeyboardInterrupt
        return real_write(case_dir, arrays, properties)

    monkeypatch.setattr("preprocessing.caching.write_case", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run(raw_root, pre, ["PhantomPortalCT"])
    folder = cache_dir(pre, "PhantomPortalCT")
    assert list_cases(folder) == ["phantomportalct_000"]
    monkeypatch.setattr("preprocessing.caching.write_case", real_write)
    # a case folder that lost an array is not trusted either
    reports = run(raw_root, pre, ["PhantomPortalCT"])
    assert reports[0].skipped == ["phantomportalct_000"]
    assert sorted(reports[0].processed) == ["phantomportalct_001", "phantomportalct_002"]
    assert not list(folder.glob(".*tmp*"))
    (folder / "phantomportalct_001" / "features.npy").unlink()
    reports = run(raw_root, pre, ["PhantomPortalCT"])
    assert reports[0].processed == ["phantomportalct_001"]


def test_changed_input_is_redone(raw_root, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_root / "PhantomT2MR", raw / "PhantomT2MR")
    pre = tmp_path / "pre"
    run(raw, pre, ["PhantomT2MR"])
    image_path = raw / "PhantomT2MR" / "imagesTr" / "phantomt2mr_001_0000.nii.gz"
    image = read_image(image_path, dtype=None)
    write_volume(image.array + 1, image.geometry, image_path)
    reports = run(raw, pre, ["PhantomT2MR"])
    assert reports[0].processed == ["phantomt2mr_001"]


def test_changed_views_or_backbone_gives_new_data_identifier(raw_root, tmp_path):
    pre = tmp_path / "pre"
    run(raw_root, pre, ["PhantomT2MR"], views=1)
    first = load_plans(pre / "PhantomT2MR" / "plans.json").data_identifier()
    run(raw_root, pre, ["PhantomT2MR"], views=2)
    second = load_plans(pre / "PhantomT2MR" / "plans.json").data_identifier()
    assert first != second and "_2v_" in second
    assert (pre / "PhantomT2MR" / first).is_dir() and (pre / "PhantomT2MR" / second).is_dir()
    assert CachedCase(pre / "PhantomT2MR" / second / "phantomt2mr_000").slices.shape[0] == 3


def test_seed_chooses_the_cached_views_and_the_data_identifier(raw_root, tmp_path):
    """lw_plan_and_preprocess --seed reaches the augmentation: the same seed caches the same augmented
    views under the same identifier, another seed other views under another; a re-run without --seed
    keeps the stored seed; --preprocess-only refuses a seed that would change the plans."""
    common = ["-d", "PhantomPortalCT", "--raw", str(raw_root), "--backbone", BACKBONE, "--random-backbone"]
    common += ["--views", "1", "--workers", "0", "--no-progress", "-q"]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert cli.main([*common, "--preprocessed", str(a), "--seed", "1"]) == 0
    run(raw_root, b, ["PhantomPortalCT"], seed=1)
    assert cli.main([*common, "--preprocessed", str(c), "--seed", "2"]) == 0
    plans = [load_plans(pre / "PhantomPortalCT" / "plans.json") for pre in (a, b, c)]
    assert [p.augmentation.seed for p in plans] == [1, 1, 2]
    assert plans[0].data_identifier() == plans[1].data_identifier() != plans[2].data_identifier()

    def slices(pre, p):
        return CachedCase(pre / "PhantomPortalCT" / p.data_identifier() / "phantomportalct_000").slices

    assert np.array_equal(slices(a, plans[0]), slices(b, plans[1]))  # original and augmented views
    assert np.array_equal(slices(a, plans[0])[0], slices(c, plans[2])[0])  # the originals agree
    assert not np.array_equal(slices(a, plans[0])[1], slices(c, plans[2])[1])  # the augmented views do not
    assert cli.main([*common, "--preprocessed", str(c)]) == 0  # without --seed: the stored seed
    assert load_plans(c / "PhantomPortalCT" / "plans.json").augmentation.seed == 2
    with pytest.raises(ConfigurationError, match="--seed 5 would change the plans of PhantomPortalCT"):
        plan_and_preprocess(["PhantomPortalCT"], raw=str(raw_root), preprocessed=str(c), preprocess_only=True, seed=5)
    plan_and_preprocess(["PhantomPortalCT"], raw=str(raw_root), preprocessed=str(c), preprocess_only=True, seed=2)


def test_edited_plans_are_used_with_preprocess_only(raw_root, tmp_path):
    pre = tmp_path / "pre"
    run(raw_root, pre, ["PhantomPortalCT"])
    path = pre / "PhantomPortalCT" / "plans.json"
    plans = json.loads(path.read_text(encoding="utf-8"))
    plans["normalization"]["window"] = [0.0, 125.0]  # an edited window (the literal single-DG reading)
    path.write_text(json.dumps(plans))
    with pytest.raises(ConfigurationError, match="--views would change the plans"):
        run(raw_root, pre, ["PhantomPortalCT"], preprocess_only=True, backbone=None, random_backbone=False, views=2)
    plan_and_preprocess(["PhantomPortalCT"], raw=str(raw_root), preprocessed=str(pre), preprocess_only=True, workers=0)
    edited = load_plans(path)
    assert edited.normalization.window == [0.0, 125.0]
    case = CachedCase(pre / "PhantomPortalCT" / edited.data_identifier() / "phantomportalct_000")
    assert case.properties["normalization"]["window"] == [0.0, 125.0]


def test_bad_cases_are_reported_skipped_and_exit_nonzero(raw_root, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(raw_root / "PhantomNativeCT", raw / "PhantomNativeCT")
    bad_image = raw / "PhantomNativeCT" / "imagesTr" / "phantomnativect_000_0000.nii.gz"
    bad_image.write_bytes(b"\x00" * 100)
    label_path = raw / "PhantomNativeCT" / "labelsTr" / "phantomnativect_002.nii.gz"
    label = read_image(label_path, dtype=None)
    g = label.geometry
    write_volume(
        label.array, type(g)(g.size, g.spacing, (g.origin[0] + 5, g.origin[1], g.origin[2]), g.direction), label_path
    )
    code = cli.main(
        [
            "-d",
            "PhantomNativeCT",
            "--raw",
            str(raw),
            "--preprocessed",
            str(tmp_path / "pre"),
            "--random-backbone",
            "--backbone",
            BACKBONE,
            "--views",
            "0",
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    err = capsys.readouterr()
    assert code == 1
    assert "phantomnativect_000" in err.err and "phantomnativect_002" in err.err
    assert str(bad_image) in err.out and "geometry differs" in err.out
    assert list_cases(cache_dir(tmp_path / "pre", "PhantomNativeCT")) == ["phantomnativect_001"]


def test_missing_weights_say_what_to_do(raw_root, tmp_path):
    with pytest.raises(ConfigurationError, match="--backbone-weights FILE") as info:
        run(raw_root, tmp_path / "pre", ["PhantomT2MR"], random_backbone=False)
    assert "--random-backbone" in str(info.value)
    with pytest.raises(ConfigurationError, match="does not exist"):
        run(raw_root, tmp_path / "pre", ["PhantomT2MR"], random_backbone=False, weights=str(tmp_path / "no.pth"))


def test_splits_are_leave_one_dataset_out(preprocessed):
    pre, _ = preprocessed
    splits = load_splits(pre / "splits.json")
    assert set(splits["folds"]) == {f"loo_{d}" for d in DOMAINS}
    fold = splits["folds"]["loo_PhantomT2MR"]
    assert fold["target"] == "PhantomT2MR" and sorted(fold["sources"]) == ["PhantomNativeCT", "PhantomPortalCT"]
    for source in fold["sources"]:
        assert len(fold["val"][source]) == 1  # min(5, 3 // 2)
        assert not set(fold["val"][source]) & set(fold["train"][source])
        assert len(fold["val"][source]) + len(fold["train"][source]) == 3
    assert "PhantomT2MR" not in fold["train"] and "PhantomT2MR" not in fold["val"]


def test_splits_keep_user_folds_and_respect_containment(tmp_path):
    datasets = {
        "LiTS": [f"l{i}" for i in range(20)],
        "IRCADb": [f"i{i}" for i in range(20)],
        "BTCV": [f"b{i}" for i in range(30)],
    }
    folds = make_loo_folds(datasets, 5, 0, {"IRCADb": ["LiTS"]})
    assert "loo_IRCADb" not in folds and "loo_LiTS" in folds
    assert folds["loo_LiTS"]["sources"] == ["BTCV"] and "IRCADb" in folds["loo_LiTS"]["excluded"]
    assert len(folds["loo_LiTS"]["val"]["BTCV"]) == 5
    assert folds == make_loo_folds(datasets, 5, 0, {"IRCADb": ["LiTS"]})  # seeded
    path = tmp_path / "splits.json"
    update_splits(path, datasets)
    splits = json.loads(path.read_text(encoding="utf-8"))
    splits["folds"]["mine"] = {"sources": ["BTCV"], "target": "LiTS", "train": {}, "val": {}, "test": {}}
    path.write_text(json.dumps(splits))
    refreshed = update_splits(path, datasets)
    assert "mine" in refreshed["folds"] and "loo_BTCV" in refreshed["folds"]


def test_default_backbone_gives_384x14x14():
    backbone = FrozenBackbone("vit_small_patch16_224.dino", "random")
    assert backbone.feature_channels == 384 and backbone.feature_size == (14, 14)
    out = backbone(torch.zeros(2, 1, 224, 224))
    assert out.shape == (2, 384, 14, 14)
    assert not any(p.requires_grad for p in backbone.parameters())


def test_official_dino_checkpoint_format_loads_strictly(tmp_path):
    """DINO's training checkpoints hold {'teacher': {'backbone.*', 'head.*'}}; the loader accepts both
    that and a plain state dict, strict=True. (The weights here are random: the format is tested.)"""
    import timm

    source = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0)
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["head.mlp.0.weight"] = torch.zeros(3, 3)
    torch.save({"teacher": state, "epoch": 100}, tmp_path / "checkpoint.pth")
    loaded = FrozenBackbone("vit_small_patch16_224.dino", str(tmp_path / "checkpoint.pth"))
    assert torch.equal(loaded.model.pos_embed, source.pos_embed)
    torch.save({k: v for k, v in list(source.state_dict().items())[:-1]}, tmp_path / "broken.pth")
    with pytest.raises(ConfigurationError, match="do not fit"):
        FrozenBackbone("vit_small_patch16_224.dino", str(tmp_path / "broken.pth"))


# portal-venous CT, HU: air, fat, bile, liver, spleen, portal vein, renal cortex (equal shares of the scan)
TISSUES_HU = {"air": -1000, "fat": -100, "bile": 10, "liver": 110, "spleen": 120, "vein": 170, "kidney": 180}


def tissue_values(normalization: Normalization) -> dict:
    """Each tissue's value after normalising a scan made of equal blocks of the tissues above."""
    scan = np.repeat(np.array(list(TISSUES_HU.values()), np.float32), 8 * 4 * 4).reshape(-1, 4, 4)
    out, _ = normalize_scan(scan, normalization)
    return {name: float(out[8 * k, 0, 0]) for k, name in enumerate(TISSUES_HU)}


def test_single_dg_preset_windows_ct_to_the_soft_tissue_range(raw_root, tmp_path):
    from planning.plans import default_normalization

    assert default_normalization("CT").window == [0.0, 500.0] and "preset" not in default_normalization("CT").to_json()
    assert default_normalization("CT", preset="single-dg").window == [-125.0, 275.0]
    assert default_normalization("MR", preset="single-dg").relative_to_body_median
    v = tissue_values(default_normalization("CT", preset="single-dg"))
    assert v["fat"] < v["bile"] < v["liver"] < v["spleen"] < v["vein"] < v["kidney"]  # every tissue kept apart
    # linear inside the window: (liver − fat) / (kidney − fat) = 210 / 280 HU
    assert (v["liver"] - v["fat"]) / (v["kidney"] - v["fat"]) == pytest.approx(0.75, abs=1e-5)
    literal = tissue_values(default_normalization("CT", preset="single-dg-0-125"))  # the earlier reading
    assert literal["fat"] == literal["air"] and literal["vein"] == literal["kidney"]  # saturated together
    assert default_normalization("CT", preset="single-dg-0-125").window == [0.0, 125.0]
    reports = run(raw_root, tmp_path / "pre", ["PhantomNativeCT"], normalization="single-dg")
    plans = json.loads((tmp_path / "pre" / "PhantomNativeCT" / "plans.json").read_text(encoding="utf-8"))
    assert plans["normalization"]["window"] == [-125.0, 275.0] and plans["normalization"]["preset"] == "single-dg"
    again = run(raw_root, tmp_path / "pre", ["PhantomNativeCT"], normalization="default")
    assert again[0].data_identifier != reports[0].data_identifier
    with pytest.raises(LiverwildError, match="unknown normalisation preset"):
        default_normalization("CT", preset="bogus")


def test_plans_of_the_earlier_single_dg_reading_load_unchanged_with_a_warning(raw_root, tmp_path, caplog):
    import logging

    run(raw_root, tmp_path / "pre", ["PhantomNativeCT"], normalization="single-dg-0-125")
    path = tmp_path / "pre" / "PhantomNativeCT" / "plans.json"
    plans = json.loads(path.read_text(encoding="utf-8"))
    plans["normalization"]["preset"] = "single-dg"  # as the earlier single-dg preset wrote it
    path.write_text(json.dumps(plans), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="liverwild"):
        loaded = load_plans(path)
    assert loaded.normalization.window == [0.0, 125.0]  # kept as written: its cache stays valid
    assert "earlier reading" in caplog.text and "single-dg-0-125" in caplog.text


@pytest.mark.slow
def test_full_disk_while_writing_the_cache_leaves_no_case(raw_root, tmp_path):
    import subprocess

    from badinputs import file_size_limit

    result = subprocess.run(
        [
            "lw_plan_and_preprocess",
            "-d",
            "PhantomT2MR",
            "--raw",
            str(raw_root),
            "--preprocessed",
            str(tmp_path / "pre"),
            "--random-backbone",
            "--backbone",
            BACKBONE,
            "--views",
            "0",
            "--workers",
            "0",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        preexec_fn=file_size_limit(200_000),
        timeout=600,
    )
    assert result.returncode == 1 and "cannot be written" in result.stderr, result.stderr[-2000:]
    assert list_cases(next((tmp_path / "pre" / "PhantomT2MR").glob("lwdata_*"))) == []
    assert not list((tmp_path / "pre").rglob(".*tmp*"))


def test_splits_keep_their_seed_and_drop_cases_gone_from_the_raw_data(phantom_study, tmp_path):
    """Re-planning one dataset with another --seed used to move every fold's validation cases, and a
    later run without --seed moved them back; a case removed from the raw dataset stayed a validation case."""
    from preprocessing.splits import refresh_splits

    pre, raw = tmp_path / "pre", tmp_path / "raw"
    pre.mkdir()
    for dataset in (phantom_study / "pre").iterdir():
        if dataset.is_dir():
            (pre / dataset.name).symlink_to(dataset)  # read-only use: only splits.json is written here
    shutil.copytree(phantom_study / "raw", raw)
    first = refresh_splits(pre, raw)
    assert (first["seed"], first["val_per_source"]) == (0, 5)
    other = refresh_splits(pre, raw, seed=7)
    val = {name: fold["val"] for name, fold in other["folds"].items()}
    assert val != {name: fold["val"] for name, fold in first["folds"].items()}  # seed 7 holds out others
    again = refresh_splits(pre, raw)  # no --seed: the stored one, not 0
    assert again["seed"] == 7 and {name: fold["val"] for name, fold in again["folds"].items()} == val
    info = json.loads((raw / "PhantomNativeCT" / "dataset.json").read_text(encoding="utf-8"))
    gone = info["cases"].pop(3)
    (raw / "PhantomNativeCT" / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    pruned = refresh_splits(pre, raw)
    listed = json.dumps(pruned["folds"])
    assert gone not in listed and info["cases"][0] in listed
