"""Seconds per scan for lw_predict, split by stage, and peak memory (prints, asserts nothing).

Default: a 512×512×126 CT phantom (the paper's average scan) with a ViT-S/16 model (random weights: speed
does not depend on them). ``--slices 800`` measures peak memory for a 512×512×800 scan. The bare
backbone forward over the same slices is timed for the ≤ 1.3× CPU target.

    python benchmarks/bench_predict.py [--device cpu|cuda] [--slices 126] [--no-bare]
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
from liverwild.inference.predictor import STAGES, predict
from liverwild.io import write_volume
from liverwild.nets import ContrastiveDistillationNet
from liverwild.phantoms import DOMAINS, generate_case


def fake_model(folder: Path, backbone: str):
    """A model folder with an untrained network and plans for ``backbone`` (random weights)."""
    import json

    from planning.plans import PLANS_VERSION

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
        "backbone": teacher_config(backbone, "random"),
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
        print(f"  {'model':13s} {model_time:8.3f} s (backbone + head/decoder)")
        print(f"  {'total':13s} {total:8.3f} s (whole lw_predict call incl. model loading)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        from liverwild.inference.postprocessing import postprocess
        from liverwild.io import read_label

        liver = read_label(tmp / "label.nii.gz").array > 0
        start = time.perf_counter()
        postprocess(liver)
        print(
            f"  (post-processing the phantom's true liver mask, {int(liver.sum())} voxels: "
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
                f"bare backbone forward over the same {args.slices} slices: {bare:.3f} s → lw_predict / bare = "
                f"{total / bare:.2f} (target ≤ 1.3 on CPU)"
            )


if __name__ == "__main__":
    main()
