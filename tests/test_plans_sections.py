"""The typed sections of plans.json: plans written before them load unchanged (same data identifiers,
same JSON), and an edited entry of the wrong name or type is refused with the file and the entry."""

import json
from pathlib import Path

import pytest

from liverwild.backbones import TeacherConfig
from liverwild.errors import ConfigurationError
from planning.plans import Plans, load_plans
from planning.sections import Augmentation, Config3D, Normalization

WRITTEN_BEFORE = sorted((Path(__file__).parent / "data" / "plans_0984a67").glob("*.json"))
"""plans.json files written by liverwild at commit 0984a67, when the sections were plain dicts: a CT
dataset with organ maps and the single-dg window, an MR one with a ViT teacher in the neighbours context,
a DINOv2 one (``model_args``)."""


@pytest.mark.parametrize("path", WRITTEN_BEFORE, ids=lambda p: p.stem)
def test_plans_written_with_dict_sections_keep_their_identifiers_and_json(path):
    written = json.loads(path.read_text(encoding="utf-8"))
    plans = load_plans(path)
    assert isinstance(plans.normalization, Normalization) and isinstance(plans.augmentation, Augmentation)
    assert isinstance(plans.backbone, TeacherConfig) and isinstance(plans.config_3d, Config3D)
    assert plans.data_identifier() == written["data_identifier"]
    assert plans.data_identifier_3d() == written["3d"]["data_identifier"]
    assert json.dumps(plans.to_json()) == json.dumps(written)  # same entries, same order, same number types


def test_three_files_cover_the_optional_entries():
    names = {p.stem for p in WRITTEN_BEFORE}
    assert names == {"ct_organs_single_dg", "mr_neighbours_vit", "ct_dinov2"}
    loaded = {p.stem: load_plans(p) for p in WRITTEN_BEFORE}
    assert loaded["ct_organs_single_dg"].normalization.preset == "single-dg"
    assert loaded["ct_organs_single_dg"].config_3d.label_maps == "organs"
    assert loaded["mr_neighbours_vit"].backbone.context == "neighbours"
    assert loaded["ct_dinov2"].backbone.model_args == {"img_size": 224}


def _edited(tmp_path, edit) -> Path:
    data = json.loads(WRITTEN_BEFORE[0].read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["augmentation"]["noise"].update(sigma="high"), r"augmentation\.noise\.sigma: expected a number"),
        (lambda d: d["augmentation"]["blur"].update(p=1.5), r"augmentation\.blur\.p: a probability"),
        (lambda d: d["augmentation"].update(mixup=True), r"augmentation: unknown entry mixup"),
        (lambda d: d["normalization"].update(window=[500, 0]), r"normalization\.window: expected \[low, high\]"),
        (lambda d: d["normalization"].update(zscore="yes"), r"normalization\.zscore: expected true or false"),
        (lambda d: d["3d"].update(volume_size=[64, 128]), r"3d\.volume_size: expected three positive sizes"),
        (lambda d: d["3d"].update(label_maps="all"), r"3d\.label_maps: 'all' is not one of organs, liver"),
        (lambda d: d["backbone"].update(pixel_mean=[0.5]), r"backbone: unknown entry pixel_mean"),
    ],
)
def test_mistyped_or_unknown_entries_are_refused_naming_file_and_entry(tmp_path, edit, message):
    path = _edited(tmp_path, edit)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_plans(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_an_edited_value_of_the_right_type_is_used(tmp_path):
    def edit(d):
        d["augmentation"]["noise"]["sigma"] = 0.3
        d["normalization"]["window"] = [-100, 200]  # ints stay ints: the identifier hashes what was written

    plans = load_plans(_edited(tmp_path, edit))
    assert plans.augmentation.noise.sigma == 0.3 and plans.normalization.window == [-100, 200]
    assert plans.to_json()["normalization"]["window"] == [-100, 200]
    assert plans.data_identifier() != json.loads(WRITTEN_BEFORE[0].read_text(encoding="utf-8"))["data_identifier"]


def test_default_preset_is_not_written_and_a_plans_without_teacher_says_so():
    assert "preset" not in Normalization([0.0, 500.0], clip_percentiles=[2.0, 98.0]).to_json()
    assert Normalization([0.0, 500.0], preset="single-dg").to_json()["preset"] == "single-dg"
    plans = Plans("X", "CT", Normalization([0.0, 500.0]))
    assert plans.to_json()["backbone"] == {} and "3d" not in plans.to_json()
    with pytest.raises(ConfigurationError, match="name no teacher"):
        plans.teacher()
    with pytest.raises(Exception, match="no 3d configuration"):
        plans.planned_3d()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["augmentation"].pop("views_per_slice"), r"augmentation: missing views_per_slice"),
        (lambda d: d["augmentation"]["gamma"].pop("retain_stats"), r"augmentation\.gamma: missing retain_stats"),
        (lambda d: d["normalization"].pop("clip_percentiles"), r"normalization: missing clip_percentiles"),
        (lambda d: d["3d"].pop("label_maps"), r"3d: missing label_maps"),
        (lambda d: d["backbone"]["tap"].pop("norm"), r"backbone\.tap: missing norm"),
        (lambda d: d.pop("augmentation"), r"missing augmentation"),
    ],
)
def test_a_missing_entry_is_refused_not_filled_with_a_default(tmp_path, edit, message):
    """A default filled in would give the plans another data identifier than the entries they hold
    (an augmentation without views_per_slice meant 0 views before the sections were typed, 2 after)."""
    with pytest.raises(ConfigurationError, match=message):
        load_plans(_edited(tmp_path, edit))
