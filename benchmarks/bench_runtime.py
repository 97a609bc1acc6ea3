"""Whole ``lw_predict`` process, torch vs ONNX runtime, side by side (prints, asserts nothing).

Default: the 512×512×126 portal-venous CT phantom of ``bench_predict.py`` (the paper's average scan),
the shipped default model (copied to a temporary folder and exported there with ``lw_export --onnx``),
CPU, ``--threads 2``. Each run is a fresh process (interpreter, imports, model loading, reading, writing
included); the two runtimes alternate, ``--runs`` times each, and the medians are printed with the
per-stage seconds of the last report and the Dice between the two runtimes' masks.

    python benchmarks/bench_runtime.py [--scan FILE] [--model default] [--runs 3] [--threads 2] [--before DIR]

``--before DIR``: also run ``--runtime onnx`` from another checkout of liverwild (e.g. ``git worktree add DIR
REV``), in the same alternation, for before/after figures of a change measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_predict(scan: Path, out: Path, model: Path, runtime: str, threads: int, root: Path = ROOT) -> float:
    """Wall seconds of one ``python -m liverwild.cli.predict --runtime RUNTIME`` process of the checkout
    ``root``."""
    env = {**os.environ, "LW_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "liverwild.cli.predict", "-i", str(scan), "-o", str(out), "-m", str(model)]
    command += ["--runtime", runtime, "--device", "cpu", "--no-progress", "-q"]
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=root)  # python -m puts the cwd first
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scan", default=None, help="a scan file (default: the 512×512×126 CT phantom)")
    p.add_argument("--model", default="default", help="a trained 2D model folder, or 'default'")
    p.add_argument("--runs", type=int, default=3, help="processes per runtime (alternating)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--before", type=Path, default=None, help="another checkout: its --runtime onnx is timed too")
    args = p.parse_args()
    if args.before is not None and not (args.before / "liverwild" / "__init__.py").is_file():
        p.error(f"--before {args.before}: not a liverwild checkout (no liverwild/__init__.py)")
    from liverwild.inference.export import export_onnx
    from liverwild.inference.model_folder import resolve_model_dir
    from liverwild.io import read_label

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.scan:
            scan = Path(args.scan)
        else:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from bench_predict import write_scan

            scan = tmp / "in" / "scan.nii.gz"
            write_scan(scan, 512, 126)
        model = tmp / "model"
        shutil.copytree(resolve_model_dir(args.model), model, ignore=shutil.ignore_patterns("*.onnx", "*.onnx.json"))
        export_onnx(model)
        roots = {"torch": ROOT, "onnx": ROOT, **({"onnx-before": args.before.resolve()} if args.before else {})}
        seconds: dict[str, list] = {row: [] for row in roots}
        run_predict(scan, tmp / "warm", model, "onnx", args.threads)  # file cache warm for both
        for _ in range(args.runs):
            for row, root in roots.items():
                runtime = row.split("-")[0]
                seconds[row].append(run_predict(scan, tmp / row, model, runtime, args.threads, root))
        stem = scan.name.replace(".nii.gz", "")
        print(
            f"scan {scan} ({'phantom 512×512×126' if not args.scan else 'given'}); model {args.model}; CPU, "
            f"{args.threads} threads; {args.runs} processes per runtime, alternating"
        )
        print(f"{'runtime':12s} {'median s':>9s} {'min s':>7s} {'max s':>7s}  stages of the last run (s)")
        for row, values in seconds.items():
            report = json.loads((tmp / row / "prediction_report.json").read_text(encoding="utf-8"))
            stages = ", ".join(f"{k} {v:.2f}" for k, v in report["scans"][0]["seconds"].items())
            print(f"{row:12s} {statistics.median(values):9.2f} {min(values):7.2f} {max(values):7.2f}  {stages}")
        ratio = statistics.median(seconds["torch"]) / statistics.median(seconds["onnx"])
        a = read_label(tmp / "torch" / f"{stem}.nii.gz").array > 0
        b = read_label(tmp / "onnx" / f"{stem}.nii.gz").array > 0
        dice = 2 * int((a & b).sum()) / max(int(a.sum() + b.sum()), 1)
        print(
            f"torch / onnx: {ratio:.2f}×; masks Dice {dice:.5f} ({int(a.sum())} vs {int(b.sum())} voxels); "
            "onnx target ≤ 3.5 s"
        )
        if args.before:
            ratio = statistics.median(seconds["onnx-before"]) / statistics.median(seconds["onnx"])
            c = read_label(tmp / "onnx-before" / f"{stem}.nii.gz").array > 0
            dice = 2 * int((c & b).sum()) / max(int(c.sum() + b.sum()), 1)
            print(f"onnx before ({args.before}) / onnx: {ratio:.2f}×; masks Dice {dice:.5f}")


if __name__ == "__main__":
    main()
