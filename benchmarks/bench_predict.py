"""Seconds per scan for lw_predict, split by stage, and peak memory (prints, asserts nothing).

Default: a 512×512×126 CT phantom (the paper's average scan) with a ViT-S/16 model (random weights: speed
does not depend on them). ``--slices 800`` measures peak memory for a 512×512×800 scan. Also printed,
in the same run:

- the bare teacher forward over the same slices, and the whole ``lw_predict`` *process* on the scan
  (interpreter, imports, model loading included) as a ratio of it (the ≤ 1.3× CPU target);
- ``--scans 8``: a folder of 8 such scans, seconds per scan against the single scan (reading and
  writing overlap the model's work);
- ``--int8``: the int8 teacher's forward against float32's, and, with ``--real DIR`` (folders holding
  ``image.nii.gz``, e.g. ``../shared/data/real``) and ``--model``, the Dice between the float32 and
  int8 masks of each real scan.

    python benchmarks/bench_predict.py [--device cpu|cuda] [--slices 126] [--scans 8] [--int8 --real DIR]

The whole process with the torch runtime against the ONNX runtime (``lw_export --onnx``) side by side:
``benchmarks/bench_runtime.py``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from liverwild.backbones import FrozenBackbone, teacher_config
from liverwild.device import autocast, configure_cpu_threads, resolve_device
from liverwild.inference import predict
from liverwild.inference.slices import STAGES
from liverwild.io import write_volume
from liverwild.nets import ContrastiveDistillationNet
from liverwild.phantoms import DOMAINS, generate_case


def fake_model(folder: Path, backbone: str):
    """A model folder with an untrained network and plans for ``backbone`` (random weights)."""
    import json

    from planning.plans import PLANS_VERSION, default_augmentation

    net = ContrastiveDistillationNet(in_channels=FrozenBackbone(backbone, "random").feature_channels)
    plans = {
        "dataset": "bench",
        "modality": "CT",
        "slice_size": [224, 224],
        "plans_version": PLANS_VERSION,
        "normalization": {
            "window": [0.0, 500.0],
            "relative_to_body_median": False,
            "clip_percentiles": [2.0, 98.0],
            "rescale": True,
            "zscore": True,
        },
        "backbone": teacher_config(backbone, "random").to_json(),
        "augmentation": default_augmentation().to_json(),
    }
    folder.mkdir(parents=True)
    torch.save(
        {"network": net.state_dict(), "network_config": net.config, "plans": {"bench": plans}},
        folder / "checkpoint_best.pth",
    )
    (folder / "config.json").write_text(json.dumps({"trainer": "none", "fold_name": "bench"}), encoding="utf-8")


def write_scan(path, size, slices):
    """Generate the phantom in a child process so that its memory does not count as prediction's."""
    domain = DOMAINS["PhantomPortalCT"]
    image, label, _ = generate_case(domain.scaled(size / domain.matrix), 0, 0, n_slices=slices)
    write_volume(image.array, image.geometry, path)
    write_volume(label.array, label.geometry, Path(path).parent.parent / "label.nii.gz")


def process_seconds(inputs: Path, output: Path, model_dir: Path, device) -> float:
    """Wall time of ``python -m liverwild.cli.predict`` on ``inputs`` as a fresh process."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "liverwild.cli.predict", "-i", str(inputs), "-o", str(output)]
    command += ["-m", str(model_dir), "--device", str(device), "--no-progress", "-q"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def folder_figures(tmp: Path, n: int, model_dir: Path, device, batch_size, single: float) -> None:
    """A folder of ``n`` copies of the scan: seconds per scan, against the single-scan call."""
    import shutil

    folder = tmp / "folder"
    folder.mkdir()
    for k in range(n):
        shutil.copy(tmp / "in" / "scan.nii.gz", folder / f"scan{k:02d}.nii.gz")
    start = time.perf_counter()
    report = predict(folder, tmp / "out_folder", model=model_dir, device=device, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - start
    assert report["n_ok"] == n, report
    stages = {s: sum(scan["seconds"][s] for scan in report["scans"]) / n for s in STAGES}
    print(
        f"folder of {n} scans: {seconds:.3f} s, {seconds / n:.3f} s per scan vs {single:.3f} s for one scan "
        f"({single / (seconds / n):.2f}× throughput); per scan read {stages['read']:.3f} s and write "
        f"{stages['write']:.3f} s overlap the model; model time per scan "
        f"{stages['backbone'] + stages['head_decoder']:.3f} s (mean; first scan "
        f"{model_seconds(report['scans'][0]):.3f} s, last {model_seconds(report['scans'][-1]):.3f} s)"
    )


def model_seconds(scan: dict) -> float:
    return scan["seconds"]["backbone"] + scan["seconds"]["head_decoder"]


def int8_figures(backbone, x, batch: int, bare: float, device) -> None:
    """Forward time of the int8 teacher over the same slices, and its features' agreement."""
    import copy

    from liverwild.backbones.quantization import quantize_teacher_int8

    if device.type != "cpu":
        print("int8 teacher: CPU only (skipped)")
        return
    quantized = quantize_teacher_int8(copy.deepcopy(backbone))
    with torch.inference_mode():
        quantized(x[:batch])
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            quantized(x[i : i + batch])
        seconds = time.perf_counter() - start
        cosine = torch.nn.functional.cosine_similarity(
            quantized(x[:batch]).flatten(1), backbone(x[:batch]).flatten(1)
        ).min()
    print(
        f"int8 teacher forward: {seconds:.3f} s vs float32 {bare:.3f} s → {bare / seconds:.2f}× faster; "
        f"feature cosine (min over slices) {float(cosine):.4f}"
    )


def agreement(real: Path, model_dir: Path, tmp: Path) -> None:
    """Dice between the float32 and int8-teacher masks of every real scan in ``real``."""
    from liverwild.io import read_label

    scans = tmp / "real"
    scans.mkdir()
    for image in sorted(real.glob("*/image.nii.gz")):
        (scans / f"{image.parent.name}.nii.gz").symlink_to(image.resolve())
    for int8 in (False, True):
        predict(scans, tmp / f"real_{int8}", model=model_dir, device="cpu", progress=False, int8_teacher=int8)
    for mask in sorted((tmp / "real_False").glob("*.nii.gz")):
        a = read_label(mask).array > 0
        b = read_label(tmp / "real_True" / mask.name).array > 0
        total = int(a.sum() + b.sum())
        dice = 1.0 if total == 0 else 2 * int((a & b).sum()) / total
        print(
            f"int8 vs float32 masks, {mask.name}: Dice {dice:.4f} ({int(a.sum())} vs {int(b.sum())} voxels, "
            f"target ≥ 0.995)"
        )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--slices", type=int, default=126)
    p.add_argument("--size", type=int, default=512)
    p.add_argument(
        "--backbone",
        default="vit_small_patch16_224.dino",
        help="teacher of the untrained benchmark model (ignored with --model)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="a trained model folder, or 'default' (the shipped default model), instead of an untrained one",
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--no-bare", action="store_true", help="skip the bare backbone timing")
    p.add_argument("--scans", type=int, default=1, help="also time a folder of this many scans (pipelining)")
    p.add_argument("--no-process", action="store_true", help="skip timing lw_predict as a separate process")
    p.add_argument("--int8", action="store_true", help="time the int8 teacher and its mask agreement")
    p.add_argument("--real", default=None, help="folder of real scans (<name>/image.nii.gz) for --int8 agreement")
    args = p.parse_args()
    device = resolve_device(args.device)
    threads = configure_cpu_threads()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import multiprocessing

        child = multiprocessing.get_context("spawn").Process(
            target=write_scan, args=(tmp / "in" / "scan.nii.gz", args.size, args.slices)
        )
        child.start()
        child.join()
        if args.model:
            from liverwild.inference.model import resolve_model_dir

            model_dir = resolve_model_dir(args.model)
        else:
            model_dir = tmp / "model"
            fake_model(model_dir, args.backbone)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        report = predict(
            tmp / "in",
            tmp / "out",
            model=model_dir,
            device=device,
            batch_size=args.batch_size,
            progress=False,
        )
        total = time.perf_counter() - start
        scan = report["scans"][0]
        assert not scan["error"], scan["error"]
        print(
            f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{threads} CPU threads'}); "
            f"scan {args.size}×{args.size}×{args.slices}; model {args.model or 'untrained'}; "
            f"teacher {report['model']['teacher']}"
        )
        for stage in STAGES:
            print(f"  {stage:13s} {scan['seconds'][stage]:8.3f} s")
        model_time = scan["seconds"]["backbone"] + scan["seconds"]["head_decoder"]
        print(f"  {'model':13s} {model_time:8.3f} s (backbone + head/decoder; GPU target ≤ 0.03 s)")
        stages = sum(scan["seconds"].values())
        print(f"  {'scan':13s} {stages:8.3f} s (read → write, the stages above; GPU target ≤ 1 s)")
        print(f"  {'warm-up':13s} {report['warmup_seconds']:8.3f} s (once per process, on GPU)")
        print(f"  {'total':13s} {total:8.3f} s (whole lw_predict call incl. model loading)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        from liverwild.inference.postprocessing import body_centre_mm, postprocess
        from liverwild.io import Reorientation, read_image, read_label

        label, scan = read_label(tmp / "label.nii.gz"), read_image(tmp / "in" / "scan.nii.gz")
        r = Reorientation.from_geometry(label.geometry)
        liver = r.to_canonical(label.array > 0)
        start = time.perf_counter()
        postprocess(
            liver, r.canonical_geometry(label.geometry), body_centre=body_centre_mm(scan.array, scan.geometry, "CT")
        )
        print(
            f"  (post-processing the phantom's true liver mask, {int(liver.sum())} voxels, every step: "
            f"{time.perf_counter() - start:.3f} s; the untrained benchmark network's mask is not realistic)"
        )
        print(f"peak process memory (RSS): {peak:.0f} MiB (before prediction {rss_before:.0f} MiB)")
        if device.type == "cuda":
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
        if not args.no_bare:
            if args.model:
                from liverwild.inference.model import TrainedModel

                spec = TrainedModel(model_dir).backbone_spec
                backbone = FrozenBackbone.from_config(spec).to(device)
            else:
                backbone = FrozenBackbone(args.backbone, "random").to(device)
            batch = args.batch_size or (128 if device.type == "cuda" else 16)
            x = torch.randn(args.slices, 1, 224, 224)
            with torch.inference_mode(), autocast(device):
                backbone(x[:batch].to(device))
                start = time.perf_counter()
                for i in range(0, args.slices, batch):
                    backbone(x[i : i + batch].to(device))
                if device.type == "cuda":
                    torch.cuda.synchronize()
            bare = time.perf_counter() - start
            print(
                f"bare backbone forward over the same {args.slices} slices: {bare:.3f} s → lw_predict call / bare = "
                f"{total / bare:.2f} (in-process)"
            )
            if not args.no_process:
                seconds = process_seconds(tmp / "in", tmp / "out_process", model_dir, device)
                print(
                    f"whole lw_predict process: {seconds:.3f} s → process / bare = {seconds / bare:.2f} "
                    "(target ≤ 1.3 on CPU)"
                )
            if args.int8:
                int8_figures(backbone, x, batch, bare, device)
        if args.scans > 1:
            folder_figures(tmp, args.scans, model_dir, device, args.batch_size, total)
        if args.int8 and args.real:
            agreement(Path(args.real), model_dir, tmp)


if __name__ == "__main__":
    main()
