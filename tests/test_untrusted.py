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
