"""The 3d configuration's plans, volume transform and cache."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import ORGAN_DOMAINS, SIGNED_PERMUTATIONS, VOLUME_SIZE, geometry_for, preprocess_3d

from liverwild.io import Reorientation, stored_geometry
from liverwild.phantoms import write_phantoms
from planning.planner import PlanRequest, make_plans, plan_dataset
from planning.plans import Plans, load_plans, save_plans
from preprocessing.cache import CachedVolume, list_cases
from preprocessing.splits import load_splits
from preprocessing.volumes import prepare_class_map, prepare_volume, resample, resize_class_map, resize_volume

FINGERPRINT = {"dataset": "X", "modality": "CT", "aggregate": {"n_cases": 0}}


def test_plans_hold_a_3d_configuration_beside_the_2d_one(tmp_path):
    plans = plan_dataset(FINGERPRINT, organ_labels={"liver": 6, "spleen": 1, "aorta": 8})
    d = plans.to_json()
    assert d["3d"]["volume_size"] == [64, 128, 128] and d["3d"]["normalization"]["window"] == [-200.0, 250.0]
    assert d["3d"]["classes"] == ["spleen", "liver"] and d["3d"]["label_values"] == {"spleen": [1], "liver": [6]}
    assert d["3d"]["data_identifier"] == plans.data_identifier_3d() and plans.data_identifier_3d().startswith(
        "lw3d_64x128x128_2c_"
    )
    assert Plans.from_json(json.loads(json.dumps(d))) == plans
    aggregate = {"n_cases": 2, "median_ratio_p99.5_to_p50_body": 3}
    mr = plan_dataset({**FINGERPRINT, "modality": "MR", "aggregate": aggregate})
    assert mr.config_3d.normalization.window == [0.0, 3.0]
    assert mr.config_3d.normalization.relative_to_body_median
    assert mr.config_3d.classes == ["liver"] and mr.config_3d.label_maps == "liver"  # no organ maps
    # the 3d entry does not change the 2D cache's identifier; editing it changes the 3d one
    edited = Plans.from_json(d)
    edited.config_3d = dataclasses.replace(edited.config_3d, volume_size=[32, 64, 64])
    assert edited.data_identifier() == plans.data_identifier()
    assert edited.data_identifier_3d() != plans.data_identifier_3d()


def test_plans_written_before_the_3d_entry_get_it_and_keep_their_2d_identifier(tmp_path):
    old = plan_dataset(FINGERPRINT)
    data = old.to_json()
    del data["3d"]
    (tmp_path / "plans.json").write_text(json.dumps(data), encoding="utf-8")
    loaded = load_plans(tmp_path / "plans.json")
    assert loaded.config_3d is None
    with pytest.raises(Exception, match="no 3d configuration.*-c 3d"):
        loaded.data_identifier_3d()
    updated = make_plans(FINGERPRINT, tmp_path / "plans.json", organ_labels={"liver": 1})
    assert updated.config_3d.classes == ["liver"] and updated.data_identifier() == old.data_identifier()
    save_plans(updated, tmp_path / "plans.json")
    resized = make_plans(FINGERPRINT, tmp_path / "plans.json", PlanRequest(volume_size=(16, 32, 48)))
    assert resized.config_3d.volume_size == [16, 32, 48] and resized.config_3d.classes == ["liver"]
    with pytest.raises(Exception, match="three positive sizes"):
        make_plans(FINGERPRINT, tmp_path / "plans.json", PlanRequest(volume_size=(16, 0, 32)))


def test_resample_averages_what_shrinks_and_interpolates_what_grows():
    x = torch.arange(4 * 8 * 8, dtype=torch.float32).reshape(1, 1, 4, 8, 8)
    down = resample(x, (4, 4, 2))  # y by 2 and x by 4: box means
    assert torch.allclose(down[0, 0], x[0, 0].reshape(4, 4, 2, 2, 4).mean(dim=(2, 4)))
    ramp = torch.arange(4, dtype=torch.float32).reshape(1, 1, 4, 1, 1).expand(1, 1, 4, 2, 2)
    up = resample(ramp, (8, 2, 2))[0, 0, :, 0, 0]  # linear along z, half-voxel centred
    assert torch.allclose(up, torch.tensor([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]))
    assert np.array_equal(resize_volume(np.ones((3, 5, 7), np.float32), (3, 5, 7)), np.ones((3, 5, 7)))


def test_class_maps_take_the_class_covering_most_of_each_voxel():
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[:, :4, :4] = 1  # a whole output voxel
    labels[:3, 4:, 4:] = 2  # 3/4 of an output voxel
    labels[:1, :4, 4:] = 3  # 1/4: background wins
    out = resize_class_map(labels, (1, 2, 2), 4)
    assert out.tolist() == [[[1, 0], [0, 2]]]


def test_the_3d_transform_is_the_same_whatever_the_storage_orientation():
    rng = np.random.default_rng(0)
    canonical = rng.normal(40, 80, (10, 12, 14)).astype(np.float32)
    organs = rng.integers(0, 4, (10, 12, 14)).astype(np.uint8)
    config = plan_dataset(FINGERPRINT, organ_labels={"liver": 1, "spleen": 2, "stomach": 3}).config_3d
    config = dataclasses.replace(config, volume_size=[4, 6, 8])
    base = geometry_for(canonical.shape)
    reference = None
    for direction in SIGNED_PERMUTATIONS[::5]:
        geometry = stored_geometry(base, direction)
        reorient = Reorientation.from_geometry(geometry)
        stored, stored_organs = reorient.from_canonical(canonical), reorient.from_canonical(organs)
        volume, _, r = prepare_volume(
            np.ascontiguousarray(stored), geometry, "CT", config.volume_size, config.normalization
        )
        classes, voxels = prepare_class_map(np.ascontiguousarray(stored_organs), r, config)
        if reference is None:
            reference = (volume, classes, voxels)
        assert np.allclose(volume, reference[0], atol=1e-5) and np.array_equal(classes, reference[1])
        assert (
            voxels
            == reference[2]
            == {
                "spleen": int((organs == 2).sum()),
                "liver": int((organs == 1).sum()),
                "stomach": int((organs == 3).sum()),
            }
        )


def test_3d_preprocessing_caches_volumes_with_organ_classes(organ_study):
    plans = load_plans(organ_study / "pre" / "PhantomT2MR" / "plans.json")
    folder = organ_study / "pre" / "PhantomT2MR" / plans.data_identifier_3d()
    assert plans.data_identifier_3d().startswith("lw3d_16x32x32_7c_") and (folder / "plans.json").is_file()
    cases = list_cases(folder)
    assert len(cases) == 4
    case = CachedVolume(folder / cases[0])
    assert case.volume.shape == VOLUME_SIZE and case.volume.dtype == np.float16
    assert case.labels.shape == VOLUME_SIZE and set(np.unique(case.labels)) <= set(range(8))  # 7 organs + background
    assert case.classes == ["spleen", "left_kidney", "gallbladder", "liver", "stomach", "pancreas", "duodenum"]
    assert case.properties["class_voxels"]["liver"] > 0 and (np.asarray(case.labels) == 4).any()
    assert abs(float(np.asarray(case.volume, np.float32).mean())) < 0.2  # z-scored
    # no 2D cache was written, yet the folds exist (from the 3d caches)
    assert not (organ_study / "pre" / "PhantomT2MR" / plans.data_identifier()).exists()
    folds = load_splits(organ_study / "pre" / "splits.json")["folds"]
    assert sorted(folds) == [f"loo_{d}" for d in sorted(ORGAN_DOMAINS)]


def test_3d_preprocessing_resumes_and_reports_a_case_without_organ_map(tmp_path):
    write_phantoms(tmp_path / "raw", ["PhantomNativeCT"], n_cases=3, scale=0.3, n_slices=12, progress=False)
    (first,) = preprocess_3d(tmp_path, ["PhantomNativeCT"])
    assert first.configuration == "3d" and len(first.processed) == 3 and "(3d)" in first.summary()
    (again,) = preprocess_3d(tmp_path, ["PhantomNativeCT"])
    assert again.processed == [] and len(again.skipped) == 3
    (tmp_path / "raw" / "PhantomNativeCT" / "labelsTr_organs" / "phantomnativect_001.nii.gz").unlink()
    shutil.rmtree(next((tmp_path / "pre" / "PhantomNativeCT").glob("lw3d_*")) / "phantomnativect_001")
    (third,) = preprocess_3d(tmp_path, ["PhantomNativeCT"])
    assert list(third.failed) == ["phantomnativect_001"] and len(third.skipped) == 2
    reason = third.failed["phantomnativect_001"]
    assert "labelsTr_organs/phantomnativect_001.nii.gz: missing" in reason and "\n" not in reason


def test_the_command_writes_both_caches_and_refuses_a_volume_size_it_cannot_apply(tmp_path, capsys):
    from liverwild.cli import plan_and_preprocess as cli

    write_phantoms(tmp_path / "raw", ["PhantomT2MR"], n_cases=2, scale=0.3, n_slices=8, progress=False)
    common = ["--raw", str(tmp_path / "raw"), "--preprocessed", str(tmp_path / "pre"), "--workers", "0"]
    args = ["-d", "PhantomT2MR", "--random-backbone", "--backbone", "vit_tiny_patch16_224", "--views", "0"]
    assert cli.main([*args, *common, "-c", "2d", "3d", "--volume-size", "8", "16", "16", "--no-progress"]) == 0
    plans = load_plans(tmp_path / "pre" / "PhantomT2MR" / "plans.json")
    for identifier in (plans.data_identifier(), plans.data_identifier_3d()):
        assert len(list_cases(tmp_path / "pre" / "PhantomT2MR" / identifier)) == 2
    assert "PhantomT2MR (3d): 2 processed" in capsys.readouterr().out
    only = ["-d", "PhantomT2MR", "--preprocess-only", "-c", "3d", "--no-progress"]
    assert cli.main([*only, *common, "--volume-size", "8", "8", "8"]) == 1
    assert "--volume-size would change the plans" in capsys.readouterr().err
