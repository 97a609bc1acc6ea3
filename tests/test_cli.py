import subprocess
import sys

import pytest

from liverwild.cli import phantoms as phantoms_cli
from liverwild.cli import common


@pytest.mark.parametrize("module", ["predict", "evaluate"])
def test_unimplemented_commands_say_so_and_fail(module, capsys):
    main = __import__(f"liverwild.cli.{module}", fromlist=["main"]).main
    assert main([]) == 2
    assert "not available yet" in capsys.readouterr().err


def test_lw_phantoms_writes_domains(tmp_path, capsys):
    assert phantoms_cli.main(["-o", str(tmp_path), "-d", "PhantomT2MR", "-n", "2", "--scale", "0.3",
                              "--workers", "1"]) == 0
    assert len(list((tmp_path / "PhantomT2MR" / "imagesTr").glob("*.nii.gz"))) == 2


def test_lw_phantoms_without_output_names_the_variable(monkeypatch, capsys):
    monkeypatch.delenv("LW_raw", raising=False)
    assert phantoms_cli.main([]) == 1
    assert "LW_raw" in capsys.readouterr().err


def test_errors_become_one_line_and_exit_code(capsys):
    from liverwild.errors import ImageReadError

    def fail():
        raise ImageReadError("/data/x.nii.gz", "is 2D")
    assert common.run(fail) == 1
    assert capsys.readouterr().err.strip() == "error: /data/x.nii.gz: is 2D"


def test_console_scripts_are_installed_and_demo_runs(tmp_path):
    result = subprocess.run(["lw_demo", "--quick", "-o", str(tmp_path / "demo"), "--workers", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "verify: PhantomT2MR: OK" in result.stdout
    help_text = subprocess.run([sys.executable, "-m", "liverwild.cli.convert", "--help"], capture_output=True,
                               text=True).stdout
    assert "verify" in help_text
