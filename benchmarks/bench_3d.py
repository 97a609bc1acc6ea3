"""Throughput of the 3d configuration: training steps of the three 3d trainers and inference of the 3D U-Net
(prints figures, asserts nothing).

In one run, on tiny-to-paper-sized phantoms with organ maps (``liverwild.phantoms``, 5 organs):

1. preprocessing: ``lw_plan_and_preprocess -c 3d`` of ``--cases`` phantom scans → seconds per case;
2. training: for UNet3DTrainer, Siamese3DTrainer and SupervisedContrastive3DTrainer, ``--steps`` steps of
   batch ``--batch-size`` volumes of ``--size`` (default the paper's 64 × 128 × 128, batch 4) through the
   real data path → seconds per step, volumes per second, peak memory; the feature layers' overhead is
   Siamese's step over UNet3D's;
3. inference: the bare 3D U-Net forward on one volume, and ``lw_predict`` of a 512 × 512 × 126 CT
   phantom (the 2D configuration's reference scan) split by stage.

Usage::

    python benchmarks/bench_3d.py [--device cpu|cuda] [--size 64 128 128] [--batch-size 4] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from liverwild.device import autocast, configure_cpu_threads, resolve_device
from liverwild.io import write_volume
from liverwild.nets import UNet3d
from liverwild.phantoms import DOMAINS, generate_case, write_phantoms

TRAINERS = ("UNet3DTrainer", "Siamese3DTrainer", "SupervisedContrastive3DTrainer")


def peak_memory(device) -> str:
    """Peak resident memory of this process (CPU) or peak allocated GPU memory so far."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def preprocess(root: Path, cases: int, size, workers: int) -> float:
    from preprocessing.pipeline import plan_and_preprocess

    write_phantoms(root / "raw", ["PhantomPortalCT", "PhantomNativeCT"], n_cases=cases, scale=0.6, progress=False)
    start = time.perf_counter()
    plan_and_preprocess(
        ["PhantomPortalCT", "PhantomNativeCT"],
        raw=str(root / "raw"),
        preprocessed=str(root / "pre"),
        configurations=("3d",),
        volume_size=size,
        workers=workers,
        progress=False,
    )
    return (time.perf_counter() - start) / (2 * cases)


def time_training(root: Path, name: str, args, device) -> dict:
    """Seconds per training step of one 3d trainer (after one warm-up step), through its loader."""
    from liverwild.training import get_trainer
    from preprocessing.splits import get_fold

    fold = get_fold(root / "pre" / "splits.json", "loo_PhantomNativeCT")
    changes = {"batch_size": args.batch_size, "unet3d_channels": args.channels, "unet3d_depth": args.depth}
    changes["feature_layers"] = min(3, args.depth)  # the paper's 3, when the U-Net has them
    config = get_trainer(name).default_config().updated(**changes, steps_per_epoch=args.steps + 1, num_workers=0)
    trainer = get_trainer(name)("loo_PhantomNativeCT", fold, root / "pre", root / "res", config, device)
    trainer.initialize()
    batches = iter(trainer.loader(0))
    trainer.train_step({k: v.to(device) for k, v in next(batches).items()})  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        trainer.train_step({k: v.to(device, non_blocking=True) for k, v in batch.items()})
    synchronize(device)
    seconds = (time.perf_counter() - start) / args.steps
    parameters = sum(p.numel() for p in trainer.network.parameters())
    return {"step_s": seconds, "volumes_per_s": args.batch_size / seconds, "parameters": parameters}


@torch.inference_mode()
def time_forward(model, size, device, repeats: int) -> float:
    x = torch.randn(1, 1, *size, device=device)
    with autocast(device, True):
        model(x)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        with autocast(device, True):
            model(x)
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def time_prediction(root: Path, model_dir: Path, device) -> dict:
    """``lw_predict``'s seconds per stage on a 512 × 512 × 126 CT phantom (the second of two runs)."""
    from liverwild.datasets.organs import class_values, to_class_map
    from liverwild.inference import predict
    from liverwild.inference.postprocessing import largest_component_per_class
    from liverwild.phantoms.generate import organ_labels

    domain = DOMAINS["PhantomPortalCT"]
    image, _, tissues = generate_case(domain.scaled(512 / domain.matrix), 0, 0, n_slices=126)
    write_volume(image.array, image.geometry, root / "scan" / "ct512.nii.gz")
    for run in range(2):
        report = predict(root / "scan", root / f"pred{run}", model=model_dir, device=str(device), progress=False)
    scan = report["scans"][0]
    values = class_values(organ_labels())
    organs = to_class_map(tissues, values, list(values))  # the true organ map: compact organs
    start = time.perf_counter()
    largest_component_per_class(organs)
    compact = time.perf_counter() - start
    figures = {**scan["seconds"], "total": sum(scan["seconds"].values()), "warmup": report["warmup_seconds"]}
    return {**figures, "postprocess_true_organ_map": compact}


def trained_model(root: Path, args, device) -> Path:
    """A UNet3DTrainer model folder after one step (prediction's speed does not depend on the weights)."""
    from liverwild.training import get_trainer, train_fold

    config = (
        get_trainer("UNet3DTrainer")
        .default_config()
        .updated(unet3d_channels=args.channels, unet3d_depth=args.depth, epochs=1, steps_per_epoch=1, batch_size=1)
    )
    trained = train_fold(
        "loo_PhantomNativeCT",
        "UNet3DTrainer",
        preprocessed=str(root / "pre"),
        results=str(root / "model"),
        device=str(device),
        config=config,
        progress=False,
    )
    return Path(trained["output"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, nargs=3, default=[64, 128, 128], metavar=("Z", "Y", "X"))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--channels", type=int, default=16, help="unet3d_channels")
    parser.add_argument("--depth", type=int, default=4, help="unet3d_depth")
    parser.add_argument("--cases", type=int, default=4, help="phantom scans per domain (2 domains)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-predict", action="store_true", help="skip the 512×512×126 lw_predict run")
    args = parser.parse_args()
    configure_cpu_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    size = tuple(args.size)
    print(f"device: {name}; torch {torch.__version__}; volume {'×'.join(map(str, size))}, batch {args.batch_size}")
    results: dict = {"device": name, "size": list(size), "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results["preprocess_s_per_case"] = preprocess(root, args.cases, size, args.workers)
        per_case = results["preprocess_s_per_case"]
        print(f"preprocessing (-c 3d, {2 * args.cases} phantom scans): {per_case:.2f} s per case")
        print(f"\n{'trainer':32s} {'s/step':>8s} {'volumes/s':>10s}  parameters")
        for trainer in TRAINERS:
            figures = time_training(root, trainer, args, device)
            results[trainer] = figures
            print(
                f"{trainer:32s} {figures['step_s']:8.3f} {figures['volumes_per_s']:10.2f}  "
                f"{figures['parameters'] / 1e6:.2f} M"
            )
        overhead = results["Siamese3DTrainer"]["step_s"] / results["UNet3DTrainer"]["step_s"]
        print(f"feature layers + voxel loss: {overhead:.2f}× the plain U-Net's step; peak {peak_memory(device)}")
        net = UNet3d(1, 6, args.channels, args.depth).to(device).eval()
        results["forward_s"] = time_forward(net, size, device, 3)
        print(f"\ninference: 3D U-Net forward {results['forward_s']:.3f} s per volume")
        if not args.no_predict:
            stages = time_prediction(root, trained_model(root, args, device), device)
            results["predict_512x512x126"] = stages
            shown = [k for k in stages if k not in ("total", "warmup", "postprocess_true_organ_map")]
            print(
                "lw_predict, 512×512×126 CT: "
                + ", ".join(f"{k} {stages[k]:.3f}" for k in shown)
                + f" → {stages['total']:.2f} s per scan (model loading warm-up {stages['warmup']:.2f} s)"
            )
            print(
                "  (the model is barely trained, so its labels are scattered: post-processing the phantom's true "
                f"organ map takes {stages['postprocess_true_organ_map']:.3f} s)"
            )
        print(f"peak memory: {peak_memory(device)}")
    print("\n" + json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
