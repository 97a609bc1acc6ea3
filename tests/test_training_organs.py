"""OrganCompetitionTrainer: softmax losses per class, training on phantom organ maps, a liver mask out."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small

from liverwild.cli import predict as predict_cli
from liverwild.datasets.organs import competing_class_values
from liverwild.errors import LiverwildError
from liverwild.inference.model import TrainedModel
from liverwild.io import read_image
from liverwild.losses import (
    NOT_LIVER,
    class_log_iou_loss,
    class_tversky_loss,
    entropy_loss,
    focal_loss,
    log_iou_loss,
    softmax_entropy_loss,
    softmax_focal_loss,
    tversky_loss,
)
from liverwild.nets import liver_logits
from liverwild.phantoms.generate import organ_labels
from liverwild.training import TRAINERS, train_fold
from preprocessing.augmentation import warp_label_map
from preprocessing.splits import load_splits

FOLD = "loo_PhantomT2MR"  # sources PhantomNativeCT and PortalCT (with organ maps), target T2 MR
ORGAN_TERMS = (softmax_focal_loss, class_tversky_loss, class_log_iou_loss)


def confident(target: torch.Tensor, n_classes: int, scale: float = 20.0) -> torch.Tensor:
    """Logits ``(B, K, H, W)`` that put almost all probability on each pixel's class of ``target`` ``(B, H, W)``."""
    return scale * torch.nn.functional.one_hot(target.long(), n_classes).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module")
def target():
    """A ``(2, 8, 8)`` map of classes 0 (background), 1 (liver), 2 and 3; class 4 absent."""
    t = torch.zeros(2, 8, 8, dtype=torch.long)
    t[:, :4, :4], t[:, 4:, :3], t[0, 5:, 5:] = 1, 2, 3
    return t


def test_two_classes_are_the_binary_losses():
    """With background and liver alone, the softmax losses are the paper's sigmoid losses of z₁ − z₀,
    also where the target is NOT_LIVER (then: background)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 16, 16, generator=g)
    liver = (torch.rand(2, 1, 16, 16, generator=g) > 0.6).float()
    binary = logits[:, 1:] - logits[:, :1]
    unknown = torch.where(liver > 0, 1, NOT_LIVER).to(torch.uint8)
    for classes, sigmoid in zip(ORGAN_TERMS, (focal_loss, tversky_loss, log_iou_loss)):
        expected = sigmoid(binary, liver)
        assert classes(logits, liver.long()) == pytest.approx(expected.item(), rel=1e-5)
        assert classes(logits, unknown) == pytest.approx(expected.item(), rel=1e-5)
    assert softmax_entropy_loss(logits) == pytest.approx(entropy_loss(binary).item(), rel=1e-5)


def test_perfect_prediction_is_minimal_and_swapping_classes_costs(target):
    perfect = confident(target, 5)
    swapped = target.clone()
    swapped[target == 2], swapped[target == 3] = 3, 2
    for loss in ORGAN_TERMS:
        best = loss(perfect, target).item()
        assert 0 <= best < 1e-4, loss.__name__
        assert loss(confident(swapped, 5), target).item() > 0.3, loss.__name__
    assert softmax_entropy_loss(perfect).item() < 1e-4
    assert softmax_entropy_loss(torch.zeros(1, 5, 4, 4)).item() == pytest.approx(np.log(5), rel=1e-6)


def test_absent_class_adds_nothing_and_no_nan(target):
    """Class 4 is absent: its false positives change neither Tversky nor −log IoU (the focal term sees
    them), and the mean runs over the liver and classes 2, 3 — here one class wrong out of three."""
    logits = confident(target, 5)
    noisy = logits.clone()
    noisy[:, 4, :2, 6:] = 40.0  # predicted class 4 on background pixels
    for loss in (class_tversky_loss, class_log_iou_loss):
        assert loss(noisy, target).item() == pytest.approx(loss(logits, target).item(), abs=1e-6)
    assert softmax_focal_loss(noisy, target) > softmax_focal_loss(logits, target) + 1e-3
    wrong = target.clone()
    wrong[target == 3] = 2  # class 3's 9 pixels predicted as class 2 (24 pixels): TP, FP, FN per class
    expected = (0 + (1 - 25 / (24 + 0.5 * 9 + 1)) + (1 - 1 / (0.5 * 9 + 1))) / 3  # liver, 2, 3 (smooth 1)
    assert class_tversky_loss(confident(wrong, 5), target).item() == pytest.approx(expected, rel=1e-4)
    no_liver = torch.zeros(1, 4, 4, dtype=torch.long)  # the liver absent and not predicted: zero, not NaN
    for loss in ORGAN_TERMS:
        assert loss(confident(no_liver, 3), no_liver).item() == pytest.approx(0.0, abs=1e-6)


def test_not_liver_accepts_any_other_class():
    """A NOT_LIVER pixel may be background or any organ but the liver."""
    target = torch.full((1, 1, 2), NOT_LIVER, dtype=torch.uint8)
    as_stomach, as_background, as_liver = (confident(torch.full((1, 1, 2), c), 3) for c in (2, 0, 1))
    for loss in ORGAN_TERMS:
        assert loss(as_stomach, target).item() == pytest.approx(loss(as_background, target).item(), abs=1e-6)
        assert loss(as_liver, target).item() > 0.3


def test_liver_logit_is_the_softmax_liver_probability():
    logits = torch.randn(3, 6, 5, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.sigmoid(liver_logits(logits)), torch.softmax(logits, 1)[:, 1:2])
    binary = logits[:, :1]
    assert liver_logits(binary) is binary


def test_classes_are_chosen_by_name():
    assert competing_class_values(organ_labels()) == {
        "liver": [3, 4, 5],
        "stomach": [14],
        "bowel": [15, 24, 25, 26],
        "kidney": [7, 8, 22, 23],
        "spleen": [6],
        "pancreas": [27],
        "gallbladder": [19],
    }
    btcv = {"spleen": 1, "right_kidney": 2, "left_kidney": 3, "liver": 6, "stomach": 7, "aorta": 8, "Kidney-Left": 9}
    assert competing_class_values(btcv) == {"liver": [6], "stomach": [7], "kidney": [2, 3, 9], "spleen": [1]}
    assert competing_class_values(None) == {}


@pytest.fixture(scope="module")
def organ_model(phantom_study, tmp_path_factory):
    """A short OrganCompetitionTrainer run on loo_PhantomT2MR (5 epochs of 10 steps of 4 slices; the liver's
    softmax probability starts near 1/8 and first passes 0.5 after 30–40 steps): ``train_fold``'s summary."""
    return train_fold(
        FOLD,
        "OrganCompetitionTrainer",
        preprocessed=str(phantom_study / "pre"),
        results=str(tmp_path_factory.mktemp("organ_model")),
        device="cpu",
        config=small(epochs=5, steps_per_epoch=10, batch_size=4),
        progress=False,
    )


@pytest.mark.slow  # trains 50 steps (about a minute on 2 cores)
def test_trains_and_records_its_classes(organ_model):
    out = Path(organ_model["output"])
    assert organ_model["best_val_dice"] > 0.4, "liver validation Dice must rise well above 0 (untrained)"
    classes = ["liver", "stomach", "bowel", "kidney", "spleen", "pancreas", "gallbladder"]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["organ_classes"] == classes and config["network"]["classes"] == classes
    assert config["organ_class_values"]["PhantomPortalCT"]["bowel"] == [15, 24, 25, 26]
    state = torch.load(out / "checkpoint_best.pth", weights_only=False)
    assert state["network"]["decoder.fuse.2.weight"].shape[0] == 1 + len(classes)
    model = TrainedModel(out, device="cpu")  # rebuilt from the checkpoint's network_config
    assert model.classes == ["liver"] and model.net.config["classes"] == classes
    logits, _ = model.segment(torch.zeros(2, 1, 224, 224))
    assert logits.shape == (2, 1, 224, 224)


@pytest.mark.slow  # trains 50 steps (about a minute on 2 cores)
def test_prediction_writes_a_liver_mask_in_the_input_geometry(organ_model, phantom_study, tmp_path):
    scan = sorted((phantom_study / "raw" / "PhantomPortalCT" / "imagesTr").glob("*.nii.gz"))[0]
    (tmp_path / "in").mkdir()
    shutil.copy(scan, tmp_path / "in" / scan.name)
    args = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", organ_model["output"], "--device", "cpu"]
    assert predict_cli.main([*args, "--no-progress"]) == 0  # lw_predict
    report = json.loads((tmp_path / "out" / "prediction_report.json").read_text(encoding="utf-8"))
    assert report["n_ok"] == 1 and report["model"]["classes"] == ["liver"]
    name = scan.name.replace("_0000.nii.gz", ".nii.gz")
    mask, image = read_image(tmp_path / "out" / name, dtype=None), read_image(scan)
    assert mask.array.dtype == np.uint8 and set(np.unique(mask.array)) == {0, 1}
    assert mask.geometry.differences(image.geometry, spacing_tol=1e-6, origin_tol=1e-4, direction_tol=1e-6) == []


def test_augmented_views_get_their_own_deformation_of_the_organ_map(phantom_study, tmp_path):
    """The elastic deformation re-drawn from the augmentation seed turns view 0's liver label into the
    cached augmented label exactly; the training targets of an augmented view carry the competing organs."""
    pre = phantom_study / "pre"
    fold = load_splits(pre / "splits.json")["folds"][FOLD]
    trainer = TRAINERS["OrganCompetitionTrainer"](FOLD, fold, pre, tmp_path, small(), "cpu")
    trainer.build_datasets()
    data = trainer.train_set
    case = data.cases[0]
    deformed = data.displacements(0, 1)
    assert deformed and set(deformed) < set(range(case.n_slices))  # p = 0.9 per slice
    for si in range(case.n_slices):
        original, augmented = np.asarray(case.labels[0, si]), np.asarray(case.labels[1, si])
        warped = warp_label_map(original, deformed[si]) if si in deformed else original
        assert np.array_equal(warped, augmented), si
    si = next(i for i in deformed if np.asarray(case.labels[1, i]).any())
    target = data.target(0, 1, si)[0].numpy()
    assert np.array_equal(target == 1, np.asarray(case.labels[1, si]) > 0)
    assert len(set(np.unique(target)) - {0, 1, NOT_LIVER}) >= 2, "competing organs on the augmented view"


def test_organ_classes_setting_chooses_and_orders_the_classes(phantom_study, tmp_path):
    pre = phantom_study / "pre"
    fold = load_splits(pre / "splits.json")["folds"][FOLD]

    def trainer(classes):
        return TRAINERS["OrganCompetitionTrainer"](FOLD, fold, pre, tmp_path, small(organ_classes=classes), "cpu")

    chosen = trainer(["liver", "kidney", "bowel"])
    chosen.build_datasets()
    assert chosen.classes == ["liver", "kidney", "bowel"]
    table = chosen.train_set.tables[0]
    assert table[22] == 2 and table[24] == 3 and table[14] == 0 and table[3] == NOT_LIVER  # kidney, colon, stomach
    for wrong in (["kidney", "liver"], ["liver", "colon"], ["liver", "bowel", "bowel"]):
        with pytest.raises(LiverwildError, match="must be 'liver' then distinct classes"):
            trainer(wrong).build_datasets()


def test_a_source_without_organ_maps_is_refused(phantom_study, tmp_path):
    pre = tmp_path / "pre"
    shutil.copytree(phantom_study / "pre", pre, copy_function=os.symlink)  # links: the fixture stays as it is
    for organs in (pre / "PhantomNativeCT").glob("*/*/organs.npy"):
        organs.unlink()
    fold = load_splits(pre / "splits.json")["folds"][FOLD]
    trainer = TRAINERS["OrganCompetitionTrainer"](FOLD, fold, pre, tmp_path / "results", small(), "cpu")
    with pytest.raises(LiverwildError, match=r"^PhantomNativeCT: no organ maps .* ContrastiveDistillationTrainer$"):
        trainer.build_datasets()
