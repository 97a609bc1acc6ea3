"""One version: ``liverwild.__version__`` is what setup.py installs, what every command's ``--version``
prints, and what the reports record (with the git revision)."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from setup_commands import COMMANDS

import liverwild
from liverwild.revision import git_revision, provenance_fields, version_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_prints_the_package_version(command, capsys):
    module, function = COMMANDS[command].split(":")
    main = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out.strip()
    assert printed == version_line()
    revision = git_revision()
    assert printed == f"liverwild {liverwild.__version__}" + (f" (git {revision})" if revision else "")


def test_setup_py_installs_the_package_version():
    result = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == liverwild.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", liverwild.__version__)


def test_provenance_fields_hold_the_version_and_the_revision(tmp_path):
    import torch

    from liverwild.checkpoints import load_checkpoint

    fields = provenance_fields(torch=torch.__version__)
    assert fields["git_revision"] == git_revision()
    assert fields["versions"]["liverwild"] == liverwild.__version__
    assert type(fields["versions"]["torch"]) is str  # torch's own version class is refused by weights_only
    torch.save(fields, tmp_path / "checkpoint.pth")
    assert load_checkpoint(tmp_path / "checkpoint.pth") == fields


def test_the_evaluation_summary_records_the_version_and_revision(tmp_path):
    from liverwild.evaluation import evaluate_folders
    from liverwild.io import Geometry, write_mask

    geometry = Geometry((12, 12, 8), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    mask = np.zeros((8, 12, 12), np.uint8)
    mask[2:6, 3:9, 3:9] = 1
    write_mask(mask, geometry, tmp_path / "ref" / "a.nii.gz")
    write_mask(mask, geometry, tmp_path / "pred" / "a.nii.gz")
    evaluate_folders(tmp_path / "pred", tmp_path / "ref", output_csv=tmp_path / "results.csv")
    summary = json.loads((tmp_path / "results.summary.json").read_text(encoding="utf-8"))
    assert summary["versions"]["liverwild"] == liverwild.__version__
    assert summary["git_revision"] == git_revision()
