"""Both neighbours as positives (the paper) against one drawn at random (liverwild before issue 26), on
the test suite's phantom fold: three tiny phantom domains (5 cases × 12 slices, scale 0.4), random
ViT-Tiny teacher, one cached view; 8 epochs at lr 1e-2 (``tests/conftest.small``), seeds 0…N−1.
Prints the best validation Dice per seed and setting, the paired mean difference and its t statistic.

    LW_THREADS=1 python benchmarks/bench_positive_pairs.py --workdir /tmp/pp --seeds 4
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

DOMAINS = ["PhantomNativeCT", "PhantomPortalCT", "PhantomT2MR"]
FOLD = "loo_PhantomT2MR"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()

    from liverwild.phantoms import write_phantoms
    from liverwild.training import SliceTrainerConfig, train_fold
    from preprocessing.pipeline import plan_and_preprocess

    root = args.workdir
    if not (root / "pre" / "splits.json").is_file():
        write_phantoms(root / "raw", DOMAINS, n_cases=5, scale=0.4, n_slices=12, progress=False)
        plan_and_preprocess(
            DOMAINS, raw=str(root / "raw"), preprocessed=str(root / "pre"), random_backbone=True,
            backbone="vit_tiny_patch16_224", views=1, workers=0, progress=False,
        )  # fmt: skip
    dice: dict[str, list[float]] = {"all": [], "one": []}
    for seed in range(args.seeds):
        for pairs in dice:
            config = SliceTrainerConfig().updated(epochs=8, lr=1e-2, val_batch_size=16, seed=seed, positive_pairs=pairs)
            summary = train_fold(
                FOLD, preprocessed=str(root / "pre"), results=str(root / f"results_{pairs}_{seed}"),
                device="cpu", config=config, progress=False,
            )  # fmt: skip
            dice[pairs].append(summary["best_val_dice"])
            print(f"seed {seed}  positive_pairs={pairs}  best val Dice {summary['best_val_dice']:.4f}", flush=True)
    differences = [a - b for a, b in zip(dice["all"], dice["one"])]
    mean, sd = statistics.mean(differences), statistics.stdev(differences) if len(differences) > 1 else 0.0
    t = mean / (sd / len(differences) ** 0.5) if sd else float("nan")
    print(f"mean best val Dice: all {statistics.mean(dice['all']):.3f}, one {statistics.mean(dice['one']):.3f}")
    print(f"paired difference all − one: {mean:+.3f} ± {sd:.3f} (s.d.), t = {t:.2f} over {len(differences)} seeds")


if __name__ == "__main__":
    main()
