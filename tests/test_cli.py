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


@pytest.mark.parametrize(
    "command, argv, refusal",
    [
        ("predict", ["-i", "in", "-o", "out", "--batch-size", "-1"], "argument --batch-size: -1 is below 1"),
        ("predict", ["-i", "in", "-o", "out", "--batch-size", "0"], "argument --batch-size: 0 is below 1"),
        ("predict", ["-i", "in", "-o", "out", "--num-parts", "0"], "argument --num-parts: 0 is below 1"),
        ("predict", ["-i", "in", "-o", "out", "--batch-size", "2.5"], "'2.5' is not a whole number"),
        ("train", ["loo_BTCV", "--lr", "0"], "argument --lr: 0.0 is not above 0"),
        ("train", ["loo_BTCV", "--epochs", "-3"], "argument --epochs: -3 is below 1"),
        ("phantoms", ["--scale", "nan"], "argument --scale: nan is not above 0"),
        ("experiment", ["multi-dg", "--concurrent", "0"], "argument --concurrent: 0 is below 1"),
    ],
)
def test_counts_and_rates_out_of_range_are_refused_when_parsed(command, argv, refusal, capsys):
    """A batch of -1 slices used to run no batch at all and write an uninitialised mask (exit 0); 0 was
    silently the default."""
    module = __import__(f"liverwild.cli.{command}", fromlist=["main"])
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 2 and refusal in capsys.readouterr().err


def test_the_api_refuses_a_batch_size_below_one():
    from liverwild.errors import ConfigurationError
    from liverwild.inference.base import PredictorOptions

    for size in (0, -1):
        with pytest.raises(ConfigurationError, match=f"--batch-size {size}: must be at least 1"):
            PredictorOptions(batch_size=size)
    assert PredictorOptions(batch_size=1).batch_size == 1


def test_fold_choosers_are_refused_with_a_model_folder_or_the_default(tmp_path, capsys):
    """--trainer and --results choose among a fold's models: with -m default or a model folder they
    would be parsed and ignored."""
    from liverwild.cli import predict as predict_cli
    from liverwild.shipped import default_model_dir

    scan = tmp_path / "in.nii.gz"
    scan.write_bytes(b"")
    out = tmp_path / "out"
    assert predict_cli.main(["-i", str(scan), "-o", str(out), "--trainer", "MASFTrainer"]) == 1
    assert "--trainer: picks a fold's model under $LW_results, not the default model" in capsys.readouterr().err
    folder = str(default_model_dir())
    assert predict_cli.main(["-i", str(scan), "-o", str(out), "-m", folder, "--results", str(tmp_path)]) == 1
    assert f"--results: picks a fold's model under $LW_results; {folder} is a model folder" in capsys.readouterr().err
    assert not out.exists()
