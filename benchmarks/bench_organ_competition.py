"""Binary training vs organ competition on the phantom protocol of the tests (prints figures, asserts
nothing): a smoke-scale comparison, not a verdict.

Writes the tests' three tiny phantom domains (``--cases`` per domain, ``--scale``, ``--slices``), caches
them with the tests' teacher (random ViT-Tiny, one augmented view), then runs ``lw_experiment``'s
``multi-dg`` protocol on one fold — ContrastiveDistillationTrainer and OrganCompetitionTrainer with the
same configuration and seed — which trains, predicts the held-out domain and evaluates its liver Dice.

Usage::

    python benchmarks/bench_organ_competition.py [--fold loo_PhantomT2MR] [--epochs 5] [--steps 10]
        [--batch-size 4] [--lr 1e-2] [--seed 0] [--threads 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from liverwild.device import configure_cpu_threads
from liverwild.experiments import run_experiment
from liverwild.phantoms import write_phantoms
from liverwild.training import SliceTrainerConfig
from preprocessing.pipeline import plan_and_preprocess

DOMAINS = ["PhantomNativeCT", "PhantomPortalCT", "PhantomT2MR"]
TRAINERS = ["ContrastiveDistillationTrainer", "OrganCompetitionTrainer"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", default="loo_PhantomT2MR")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--scale", type=float, default=0.4)
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="folder to keep (default: a temporary one)")
    args = parser.parse_args()
    configure_cpu_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="lw_organs_"))
    start = time.perf_counter()
    write_phantoms(work / "raw", DOMAINS, n_cases=args.cases, scale=args.scale, n_slices=args.slices, progress=False)
    plan_and_preprocess(
        DOMAINS,
        raw=str(work / "raw"),
        preprocessed=str(work / "pre"),
        random_backbone=True,
        backbone="vit_tiny_patch16_224",
        views=1,
        workers=0,
        progress=False,
    )
    prepared = time.perf_counter() - start
    config = SliceTrainerConfig().updated(
        epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    report = run_experiment(
        "multi-dg",
        raw=str(work / "raw"),
        preprocessed=str(work / "pre"),
        results=str(work / "results"),
        trainers=TRAINERS,
        fold=args.fold,
        config=config,
        device="cpu",
    )
    print(json.dumps({"prepare_seconds": round(prepared, 1), "seconds": round(time.perf_counter() - start, 1)}))
    print((Path(report["output"]) / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
