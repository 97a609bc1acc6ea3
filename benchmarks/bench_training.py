"""Training throughput and peak memory of ContrastiveDistillationTrainer's step (prints, asserts nothing).

Builds an in-memory cache of random features with the real shapes (ViT-S/16: 384×14×14, 224² slices,
1 + K views), then times ``train_step`` on batches from the real SliceDataset/DataLoader path, and
validation. Usage: ``python benchmarks/bench_training.py [--device cuda] [--batch-size 8] [--channels 384]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from liverwild.backbones import RULE, TeacherConfig, TeacherInput, TeacherTap
from liverwild.device import configure_cpu_threads, resolve_device
from liverwild.nets.layers import use_reference_layers
from liverwild.training import ContrastiveDistillationTrainer, SliceTrainerConfig
from planning.plans import Plans, save_plans
from planning.sections import Augmentation, Normalization
from preprocessing.cache import write_case


def fake_cache(root: Path, cases: int, slices: int, views: int, channels: int, fsize: int):
    rng = np.random.default_rng(0)
    for c in range(cases):
        labels = np.zeros((1 + views, slices, 224, 224), np.uint8)
        labels[:, :, 60:160, 40:150] = 1
        arrays = {
            "slices": rng.standard_normal((1 + views, slices, 224, 224)).astype(np.float16),
            "labels": labels,
            "features": rng.standard_normal((1 + views, slices, channels, fsize, fsize)).astype(np.float16),
        }
        write_case(root / f"case{c:02d}", arrays, {"case": f"case{c:02d}"})


def time_steps(trainer, steps: int, device) -> tuple:
    """Seconds spent loading and stepping over ``steps`` batches (after 3 warm-up batches). On GPU the
    steps are timed as a whole, with one synchronisation at the end, as they run in training."""
    batches = iter(trainer.loader(0))

    def next_batch(i):
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(trainer.loader(i))
            batch = next(batches)
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    for i in range(3):  # warm-up
        trainer.begin_step()
        trainer.train_step(next_batch(i))
    if device.type == "cuda":
        torch.cuda.synchronize()
    load_time, start = 0.0, time.perf_counter()
    for i in range(steps):
        t0 = time.perf_counter()
        batch = next_batch(i)
        load_time += time.perf_counter() - t0
        trainer.begin_step()
        trainer.train_step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return load_time, time.perf_counter() - start - load_time


@torch.no_grad()
def same_outputs(reference, trainer, device) -> float:
    """Largest absolute logit difference of the two networks (same weights) in eval mode."""
    trainer.network.load_state_dict(reference.network.state_dict())
    batch = next(iter(trainer.loader(0)))
    feats, slices = batch["features"].to(device), batch["slice"].to(device)
    reference.network.eval()
    trainer.network.eval()
    difference = (reference.network(feats, slices)[0] - trainer.network(feats, slices)[0]).abs().max()
    trainer.network.train()
    return float(difference)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="also time the step with torch.compile (config compile=true)")
    p.add_argument(
        "--compile-mode",
        default="default",
        help="torch.compile's mode for --compile (reduce-overhead: CUDA graphs on a GPU)",
    )
    args = p.parse_args()
    if args.compile_mode != "default" and not args.compile:
        p.error("--compile-mode needs --compile")
    device = resolve_device(args.device)
    threads = configure_cpu_threads()
    with tempfile.TemporaryDirectory() as tmp:
        fake_teacher = TeacherConfig(
            "fake", TeacherInput(RULE, [0.5], [0.5]), TeacherTap("final", "final"), teacher="fake", weights_tag="random"
        )
        plans = Plans("DS", "CT", Normalization([0.0, 500.0]), backbone=fake_teacher, augmentation=Augmentation(2))
        save_plans(plans, Path(tmp) / "DS" / "plans.json")
        fake_cache(
            Path(tmp) / "DS" / plans.data_identifier(), cases=4, slices=40, views=2, channels=args.channels, fsize=14
        )
        fold = {
            "sources": ["DS"],
            "target": "X",
            "train": {"DS": ["case00", "case01", "case02"]},
            "val": {"DS": ["case03"]},
        }
        # one epoch covers the whole measurement, so loader processes start once (as in a long epoch)
        config = SliceTrainerConfig(
            batch_size=args.batch_size, num_workers=args.num_workers, steps_per_epoch=args.steps + 3
        )
        figures = {}
        variants = ["before", "after"] + (["compiled"] if args.compile else [])
        for variant in variants:  # before: plain torch layers (nn.Conv2d, nn.Dropout)
            compiled = config.updated(compile=True, compile_mode=args.compile_mode)
            variant_config = compiled if variant == "compiled" else config
            trainer = ContrastiveDistillationTrainer("bench", fold, tmp, Path(tmp) / "res", variant_config, device)
            trainer.initialize()
            if variant == "before":
                use_reference_layers(trainer.network)
                trainer.optimizer = trainer.build_optimizer(trainer.network)
                reference = trainer
            figures[variant] = time_steps(trainer, args.steps, device)
        load_time, step_time = figures["after"]
        n = args.steps
        t0 = time.perf_counter()
        trainer.validate()
        val_rate = 40 / (time.perf_counter() - t0)
        print(
            f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{threads} CPU threads'}), "
            f"batch {args.batch_size}, features {args.channels}×14×14"
        )
        for variant, (load, step) in figures.items():
            rate = n * args.batch_size / (load + step)
            print(
                f"training ({variant}): {rate:8.1f} slices/s  (data {1000 * load / n:.1f} ms + step "
                f"{1000 * step / n:.1f} ms per batch)"
            )
        print(f"speed-up of the step: {figures['before'][1] / figures['after'][1]:.2f}×")
        print(f"eval outputs, before vs after: max |difference| {same_outputs(reference, trainer, device):.2e}")
        rate = n * args.batch_size / (load_time + step_time)
        print(f"validation: {val_rate:8.1f} slices/s")
        epoch = 10000 / rate + 10000 * 0.05 / val_rate  # 5 % of slices held out for validation
        print(f"one epoch over 10 000 slices: {epoch:8.1f} s; 150 epochs: {150 * epoch / 3600:.2f} h")
        if "compiled" in figures:
            compiled_rate = n * args.batch_size / sum(figures["compiled"])
            epoch = 10000 / compiled_rate + 10000 * 0.05 / val_rate
            print(f"compiled: one epoch over 10 000 slices {epoch:8.1f} s; 150 epochs: {150 * epoch / 3600:.2f} h")
        if device.type == "cuda":
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
        print(f"peak process memory (RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
