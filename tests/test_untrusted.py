"""Untrusted files: checkpoints load without executing code; crafted pickles are refused."""

import pytest
import torch

from liverwild.checkpoints import load_checkpoint
from liverwild.errors import LiverwildError


class RunsCode:
    """Unpickling this would call ``open(marker, 'w')`` — a stand-in for any code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"network": {}, "payload": RunsCode(marker)}, tmp_path / "checkpoint_best.pth")
    with pytest.raises(LiverwildError, match="refused — not a checkpoint of tensors and plain data"):
        load_checkpoint(tmp_path / "checkpoint_best.pth")
    assert not marker.exists()


def test_model_folder_with_a_crafted_checkpoint_is_refused(tmp_path):
    from liverwild.inference.model import TrainedModel

    marker = tmp_path / "pwned"
    torch.save({"network": RunsCode(marker)}, tmp_path / "checkpoint_best.pth")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LiverwildError, match="could run code"):
        TrainedModel(tmp_path)
    assert not marker.exists()


def test_plain_checkpoints_load_and_garbage_is_a_clear_error(tmp_path):
    torch.save({"network": {"w": torch.ones(2)}, "history": [{"epoch": 0, "val_dice": 0.5}]}, tmp_path / "ok.pth")
    assert load_checkpoint(tmp_path / "ok.pth")["history"][0]["val_dice"] == 0.5
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(LiverwildError, match="text.pth"):
        load_checkpoint(tmp_path / "text.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(LiverwildError, match="not a liverwild checkpoint"):
        load_checkpoint(tmp_path / "list.pth")


def test_zip_members_outside_the_folder_are_refused_before_extraction(tmp_path):
    import zipfile

    from liverwild.datasets.conversion import ircadb

    case = tmp_path / "3Dircadb1.1"
    case.mkdir()
    with zipfile.ZipFile(case / "PATIENT_DICOM.zip", "w") as z:
        z.writestr("PATIENT_DICOM/image_0", b"x")
        z.writestr("../../escaped.txt", b"evil")
    with pytest.raises(LiverwildError, match="outside the extraction folder"):
        ircadb._folder(case, "PATIENT_DICOM", tmp_path / "extract")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "extract").exists()


def test_zip_with_an_absurd_uncompressed_size_is_refused(tmp_path, monkeypatch):
    import zipfile

    from liverwild.datasets.conversion import ircadb

    case = tmp_path / "3Dircadb1.2"
    case.mkdir()
    with zipfile.ZipFile(case / "MASKS_DICOM.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("MASKS_DICOM/liver/image_0", b"\0" * 100_000)  # compresses to ~100 bytes
    monkeypatch.setattr(ircadb, "MAX_UNZIPPED_BYTES", 50_000)
    with pytest.raises(LiverwildError, match="uncompressed"):
        ircadb._folder(case, "MASKS_DICOM", tmp_path / "extract")
    assert not (tmp_path / "extract").exists()


def test_dataset_json_cannot_point_outside_its_folder(tmp_path):
    from liverwild.datasets import DatasetInfo, case_files

    info = DatasetInfo("X", "CT", {"background": 0, "liver": 1}, ["../../etc/passwd", "ok_1"])
    with pytest.raises(LiverwildError, match="outside the dataset folder"):
        case_files(tmp_path / "X", info, "../../etc/passwd")
    image, label = case_files(tmp_path / "X", info, "ok_1")
    assert image.parent == tmp_path / "X" / "imagesTr" and label.parent == tmp_path / "X" / "labelsTr"
