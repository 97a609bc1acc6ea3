import subprocess
import sys

import pytest

from liverwild.cli import common
from liverwild.cli import phantoms as phantoms_cli


def test_converter_without_raw_folder_names_the_variable(capsys, tmp_path, monkeypatch):
    from liverwild.cli import convert

    monkeypatch.delenv("LW_raw", raising=False)
    assert convert.main(["btcv", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "LW_raw" in err and "--raw" in err


def test_lw_phantoms_writes_domains(tmp_path, capsys):
    assert (
        phantoms_cli.main(["-o", str(tmp_path), "-d", "PhantomT2MR", "-n", "2", "--scale", "0.3", "--workers", "1"])
        == 0
    )
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


def test_commands_skip_the_final_garbage_collection():
    """After a command ran, the exit hooks freeze every object (registered once however often it runs):
    an exit hook registered before the command runs after it and sees the frozen objects."""
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 1000))\n"
        "from liverwild.cli import common\n"
        "hooks = atexit._ncallbacks()\n"
        "print('before', gc.get_freeze_count())\n"
        "common.run(lambda: None); common.run(lambda: None)\n"
        "print('new hooks', atexit._ncallbacks() - hooks)\n"
    )
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert lines == ["before", "0", "new", "hooks", "1", "frozen", "True"]


def test_every_console_script_is_installed_and_answers_help():
    from setup_commands import COMMANDS

    for command in COMMANDS:
        result = subprocess.run([command, "--help"], capture_output=True, text=True, encoding="utf-8", timeout=120)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        assert f"usage: {command}" in result.stdout and "-v, --verbose" in result.stdout, command


def test_no_console_script_imports_torch_for_its_help():
    """``--help`` needs no model: each command's help, one after another in a fresh process, leaves torch,
    torchvision and timm unimported (lw_train's used to take 2.5 s to answer)."""
    from setup_commands import COMMANDS

    code = (
        "import importlib, sys\n"
        f"for command, target in {COMMANDS!r}.items():\n"
        "    module, function = target.split(':')\n"
        "    try:\n"
        "        getattr(importlib.import_module(module), function)(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    print('imported', command, sorted({'torch', 'torchvision', 'timm'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("imported ")]
    assert lines == [f"imported {command} []" for command in COMMANDS], done.stdout[-2000:] + done.stderr


@pytest.mark.parametrize(
    "argv, refusal",
    [
        (["lw_train", "loo_BTCV", "-tr", "NoSuchTrainer"], "unknown trainer 'NoSuchTrainer'; choose from "),
        (["lw_adapt", "default", "-i", "in", "-o", "out", "--method", "tent"], "unknown adaptation method 'tent'"),
    ],
)
def test_an_unknown_registered_name_is_refused_with_the_registered_ones(argv, refusal):
    from liverwild.cli import adapt, train

    main = {"lw_train": train.main, "lw_adapt": adapt.main}[argv[0]]
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; from {main.__module__} import main; sys.exit(main({argv[1:]!r}))"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 2 and refusal in result.stderr, result.stderr
    listed = result.stderr.split("choose from ")[1].strip().split(", ")
    expected = ["ContrastiveDistillationTrainer", "MASFTrainer"] if argv[0] == "lw_train" else ["adversarial", "bn"]
    assert set(expected) <= set(listed)


def test_a_registered_name_is_accepted_by_the_parser():
    from liverwild.cli import adapt, train

    args = train.build_parser().parse_args(["loo_BTCV", "-tr", "MASFTrainer"])
    assert args.trainer == "MASFTrainer"
    assert train.build_parser().parse_args(["loo_BTCV"]).trainer == "ContrastiveDistillationTrainer"
    assert adapt.build_parser().parse_args(["default", "-i", "a", "-o", "b", "--method", "entropy"]).method == "entropy"


@pytest.mark.slow
def test_demo_runs_end_to_end_and_again_in_the_same_folder(tmp_path):
    """The README's main job (``lw_demo --quick``), as a user runs it, twice."""
    result = subprocess.run(
        ["lw_demo", "--quick", "-o", str(tmp_path / "demo"), "--workers", "1"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "PhantomT2MR: OK" in result.stdout and "[6/6] evaluate" in result.stdout
    assert "teacher: imagenet-effnet-lite0 (tf_efficientnet_lite0, tap blocks.4, file-" in result.stdout
    assert "RANDOM" not in result.stdout and "not patients" in result.stdout
    report = __import__("json").loads((tmp_path / "demo" / "demo_report.json").read_text(encoding="utf-8"))
    assert report["backbone"]["teacher"] == "imagenet-effnet-lite0" and report["backbone"]["weights_tag"] != "random"
    import pandas as pd

    from liverwild.io import read_image

    table = pd.read_csv(report["evaluation_csv"])
    assert report["summary"]["n_cases"] == 3 == len(table)
    assert report["summary"]["dice"]["mean"] == pytest.approx(table.dice.mean())
    # it learns (measured: 0.58 on the sources' validation cases, 0.30 on the unseen MR target, whose full mask
    # scores under 0.1 and empty one 0)
    assert report["best_val_dice"] > 0.4 and report["summary"]["dice"]["mean"] > 0.15
    for row in table.itertuples():  # what it prints is what it measured
        assert f"{row.case:22s} {row.dice:6.3f}" in result.stdout
        mask = read_image(tmp_path / "demo" / "predictions" / f"{row.case}.nii.gz", dtype=None)
        image = read_image(tmp_path / "demo" / "raw" / "PhantomT2MR" / "imagesTr" / f"{row.case}_0000.nii.gz")
        assert mask.geometry == image.geometry
    again = subprocess.run(
        ["lw_demo", "--quick", "-o", str(tmp_path / "demo"), "--workers", "1"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert again.returncode == 0, again.stderr  # a re-run in the same folder just works
    assert "PhantomT2MR: OK" in again.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "liverwild.cli.convert", "--help"], capture_output=True, text=True, encoding="utf-8"
    ).stdout
    assert "verify" in help_text
