"""CPU forward speed of teachers: N z-scored 224² slices through ``FrozenBackbone`` (default tap).

    python benchmarks/bench_teacher_speed.py --threads 2 --slices 126

For each teacher: the time to build it (weights read and mapped), then the best of ``--repeats`` passes
over the slices in batches of ``--batch-size`` (as ``lw_plan_and_preprocess --batch-size``), after one
warm-up batch. The slices are seeded random z-scores: a dense network's speed does not depend on the
values. Teachers whose weights come from a file the user gives run with ``random`` weights (marked).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEACHERS = ["imagenet-effnet-lite0", "dinov2-vits14", "dino-vits16"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teachers", nargs="+", default=TEACHERS)
    p.add_argument("--slices", type=int, default=126)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    import timm  # noqa: F401 — imported before the first build is timed
    import torch

    from liverwild.backbones import TEACHERS as REGISTRY
    from liverwild.backbones import FrozenBackbone

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    slices = torch.randn(args.slices, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = [
        f"| teacher | feature map | build (s) | {args.slices} slices (s, best of {args.repeats}) | slices/s |",
        "|---|---|---|---|---|",
    ]
    for name in args.teachers:
        random = REGISTRY[name].weights == "user-file"
        start = time.perf_counter()
        teacher = FrozenBackbone(name, "random" if random else None)
        built = time.perf_counter() - start
        teacher(slices[: args.batch_size])  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            for i in range(0, args.slices, args.batch_size):
                teacher(slices[i : i + args.batch_size])
            best = min(best, time.perf_counter() - start)
        shape = f"{teacher.feature_channels} × {teacher.feature_size[0]} × {teacher.feature_size[1]}"
        label = name + (" (random weights)" if random else "")
        rows.append(f"| {label} | {shape} | {built:.1f} | {best:.1f} | {args.slices / best:.1f} |")
        print(rows[-1], flush=True)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or platform.machine()
    rows += [
        "",
        f"Command: `python benchmarks/bench_teacher_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"Machine: {os.cpu_count()} CPU cores ({cpu}), "
        f"torch.set_num_threads({args.threads}), torch {torch.__version__}, "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (the run itself adds about "
        f"{args.threads}).",
    ]
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
