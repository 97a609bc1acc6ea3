"""Validation Dice of the 3d rows' recipes on tiny phantoms: where the feature layers sit (encoder vs
decoder) and which λ (tuned vs the paper's literal), beside the plain 3D U-Net (prints figures, asserts
nothing).

The test suite's organ phantoms (3 domains × 4 scans, 16 × 32 × 32 volumes), fold ``loo_PhantomT2MR``
(8 training volumes of the two CT domains, validation on held-out CT volumes), a 3D U-Net of
``--channels`` 4 and depth 3, three feature layers, ``--epochs`` 20 of batch 2 at lr 1e-2, CPU. Per
row and seed: the last epoch's validation Dice (mean over organs) and the liver's.

Usage::

    LW_THREADS=1 python benchmarks/bench_3d_recipes.py [--seeds 0 1] [--epochs 20] [--work /tmp/bench]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = {  # row → (trainer, settings)
    "UNet3DTrainer": ("UNet3DTrainer", {}),
    "Siamese3DTrainer (encoder, 64, λ 0.1)": ("Siamese3DTrainer", {}),
    "Siamese3DDecoderTrainer (decoder, 64, λ 0.1)": ("Siamese3DDecoderTrainer", {}),
    "Siamese3DDecoderTrainer, width 256 (before issue 26)": ("Siamese3DDecoderTrainer", {"feature_hidden": 256}),
    "Siamese3DPaperWeightTrainer (encoder, 64, λ 10)": ("Siamese3DPaperWeightTrainer", {}),
    "SupervisedContrastive3DTrainer (encoder, 64, λ 0.01)": ("SupervisedContrastive3DTrainer", {}),
    "SupervisedContrastive3DPaperWeightTrainer (encoder, 64, λ 100)": ("SupervisedContrastive3DPaperWeightTrainer", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_3d_recipes"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest
    import pandas as pd

    from liverwild.phantoms import write_phantoms
    from liverwild.training import get_trainer, train_fold

    if not (args.work / "pre" / "splits.json").is_file():
        write_phantoms(args.work / "raw", conftest.ORGAN_DOMAINS, n_cases=4, scale=0.3, n_slices=16, progress=False)
        conftest.preprocess_3d(args.work, conftest.ORGAN_DOMAINS)
    print("| row | seed | val Dice (mean over organs) | liver Dice | seconds |\n|---|---|---|---|---|")
    for index, (row, (trainer, settings)) in enumerate(ROWS.items()):
        for seed in args.seeds:
            changes = {"epochs": args.epochs, "batch_size": 2, "lr": 1e-2, "seed": seed}
            changes |= {"unet3d_channels": args.channels, "unet3d_depth": 3}
            if "voxel_features" in get_trainer(trainer).config_groups:
                changes |= {"feature_layers": 3, **settings}
            config = get_trainer(trainer).default_config().updated(**changes)
            start = time.perf_counter()
            summary = train_fold(
                "loo_PhantomT2MR",
                trainer,
                preprocessed=str(args.work / "pre"),
                results=str(args.work / "results" / f"row{index}_seed{seed}"),
                device="cpu",
                config=config,
                progress=False,
            )
            log = pd.read_csv(Path(summary["output"]) / "log.csv")
            seconds = time.perf_counter() - start
            last = log.iloc[-1]
            print(f"| {row} | {seed} | {last.val_dice:.3f} | {last.val_dice_liver:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
