"""Preprocessing throughput: CPU stages and feature extraction vs the bare backbone forward.

Prints figures, asserts nothing. Usage::

    python benchmarks/bench_preprocessing.py [--device cpu|cuda] [--backbone NAME] [--slices N] [--views K]

Figures: (1) CPU stages (read, reorient, normalise, resize to 224², K augmented views) in slices/s of
one worker process; with ``--transforms-on device`` the device path instead: the workers' share (reading)
and the transform on the device, each in slices/s; (2) the bare backbone forward on random 224² batches;
(3) FeatureExtractor on the same number of slices (float16 input/output, host↔device copies, mixed
precision on GPU); its ratio to (2) is the overhead target (≤ 1.10); (4) with ``--end-to-end W``: the
whole ``lw_plan_and_preprocess`` caching of the phantoms with W workers, both paths, in slices/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from liverwild.backbones import FrozenBackbone
from liverwild.device import autocast, configure_cpu_threads, resolve_device
from liverwild.phantoms import write_domain
from planning.fingerprint import extract_fingerprint
from planning.planner import plan_dataset
from preprocessing.cases import prepare_case, read_case, transform_case
from preprocessing.features import FeatureExtractor


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--backbone", default="vit_small_patch16_224.dino")
    p.add_argument("--slices", type=int, default=64, help="slices per phantom case")
    p.add_argument("--cases", type=int, default=2)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--scale", type=float, default=2.67, help="phantom in-plane scale (2.67 → 512² CT)")
    p.add_argument("--transforms-on", default="cpu", choices=["cpu", "device"], help="stage (1): which path")
    p.add_argument("--end-to-end", type=int, default=0, metavar="W", help="also time whole caching, W workers")
    args = p.parse_args()
    device = resolve_device(args.device)
    threads = configure_cpu_threads()
    batch = args.batch_size or (256 if device.type == "cuda" else 32)
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{threads} CPU threads'}), "
        f"backbone {args.backbone}, batch {batch}, views {args.views}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_domain(
            "PhantomPortalCT", tmp, n_cases=args.cases, scale=args.scale, n_slices=args.slices, progress=False
        )
        fp = extract_fingerprint(folder, progress=False)
        plans = plan_dataset(fp, backbone=args.backbone, weights="random", views=args.views)
        torch.set_num_threads(1)  # one CPU-stage worker, as in the pipeline
        start = time.perf_counter()
        n, shape, transform_s = 0, None, 0.0
        for case in fp["cases"].values():
            job = (Path(case["image"]).name, case["image"], case["label"], None, plans, True)
            if args.transforms_on == "cpu":
                _, arrays, _, error = prepare_case(job)
            else:
                _, inputs, known, error = read_case(job)
                torch.set_num_threads(threads)
                t0 = time.perf_counter()
                arrays, _ = transform_case(inputs, known, plans, device)
                sync(device)
                transform_s += time.perf_counter() - t0
                torch.set_num_threads(1)
            assert error is None, error
            n += arrays["slices"].shape[1]
            shape = case["shape_zyx"]
        cpu = time.perf_counter() - start - transform_s
        torch.set_num_threads(threads)
        what = "CPU stages" if args.transforms_on == "cpu" else "reading (the workers' share on the device path)"
        print(f"{what}, one worker: {n / cpu:8.1f} slices/s ({1000 * cpu / n:.1f} ms/slice; scans {shape})")
        if transform_s:
            print(f"transform on {device} (normalise, resize, {args.views} views): {n / transform_s:8.1f} slices/s")
        if args.end_to_end:
            from preprocessing.pipeline import plan_and_preprocess

            for where in ("cpu", "device"):
                start = time.perf_counter()
                reports = plan_and_preprocess(
                    [folder.name],
                    raw=tmp,
                    preprocessed=str(Path(tmp) / f"pre_{where}"),
                    backbone=args.backbone,
                    random_backbone=True,
                    views=args.views,
                    device=str(device),
                    workers=args.end_to_end,
                    batch_size=batch,
                    progress=False,
                    transforms_on=where,
                )
                seconds = time.perf_counter() - start
                slices = sum(r.slices for r in reports)
                print(
                    f"end to end, transforms on {where:6s} ({args.end_to_end} workers): {slices / seconds:8.1f} "
                    f"slices/s ({slices} slices, {seconds:.1f} s incl. fingerprint and planning)"
                )

    backbone = FrozenBackbone(args.backbone, "random").to(device)
    total = max(4 * batch, 256 if device.type == "cuda" else 96)
    x = torch.randn(batch, 1, 224, 224, device=device)
    with torch.inference_mode(), autocast(device):
        backbone(x)  # warm-up
        sync(device)
        start = time.perf_counter()
        for _ in range(total // batch):
            backbone(x)
        sync(device)
    bare = (total // batch) * batch / (time.perf_counter() - start)
    extractor = FeatureExtractor(backbone, device, batch)
    slices = np.random.randn(total, 224, 224).astype(np.float16)
    extractor(slices[:batch])
    sync(device)
    start = time.perf_counter()
    extractor(slices)
    sync(device)
    full = total / (time.perf_counter() - start)
    print(f"bare backbone forward:  {bare:8.1f} slices/s")
    print(
        f"FeatureExtractor:       {full:8.1f} slices/s  (time ratio to bare forward {bare / full:.3f}; target ≤ 1.10)"
    )
    per_slice = full / (1 + args.views)  # every slice needs 1 + K backbone passes
    print(
        f"feature extraction per slice with {args.views} views: {per_slice:8.1f} slices/s; one CPU worker "
        f"prepares {n / cpu:.1f} slices/s → CPU workers needed to keep up: {int(np.ceil(per_slice / (n / cpu)))}"
    )


if __name__ == "__main__":
    main()
