"""lw_train: train one named fold of splits.json."""

from __future__ import annotations

import argparse
import sys

from .common import (
    RegisteredName,
    add_folder_options,
    add_logging_options,
    add_settings_option,
    at_least,
    parse,
    positive_float,
    run,
    trainer_config,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_train",
        description="Train one fold (e.g. loo_<Target>) from $LW_preprocessed/splits.json on cached backbone features.",
        epilog="Several GPUs or nodes: torchrun --nproc_per_node N -m liverwild.cli.train FOLD ... trains with "
        "DistributedDataParallel (--batch-size per process; rank 0 validates and writes the model folder).",
    )
    p.add_argument("fold", help="fold name in splits.json, e.g. loo_BTCV")
    p.add_argument(
        "-tr",
        "--trainer",
        default="ContrastiveDistillationTrainer",
        type=RegisteredName("liverwild.training", "TRAINERS", "trainer"),
        metavar="NAME",
        help="a registered trainer (default ContrastiveDistillationTrainer; an unknown name is refused with the list)",
    )
    p.add_argument("--epochs", type=at_least(1), default=None, help="default 150 (3D trainers: 500)")
    p.add_argument("--batch-size", type=at_least(1), default=None, help="default 8 (3D trainers: 4 volumes)")
    p.add_argument("--lr", type=positive_float, default=None, help="default 1e-4 (3D trainers: 1e-3)")
    p.add_argument(
        "--steps-per-epoch", type=at_least(1), default=None, help="default: one pass over the training slices"
    )
    p.add_argument("--num-workers", type=at_least(0), default=None, help="data-loading processes (default 0)")
    p.add_argument("--seed", type=int, default=None)
    add_settings_option(
        p,
        "any other field of the trainer configuration (documentation/training.md), e.g. unet_channels=16 inner_lr=1e-3",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=at_least(1), default=None, help="torch CPU threads")
    p.add_argument(
        "--continue", dest="continue_training", action="store_true", help="resume from checkpoint_latest.pth"
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--no-export",
        action="store_true",
        help="do not export a finished 2d model to ONNX (default: exported when the onnx package is installed, "
        "so that lw_predict runs it without torch, about 3x faster on a CPU)",
    )
    add_folder_options(p, "preprocessed", "results")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    from ..distributed import process_rank
    from ..training import train_fold

    def work():
        summary = train_fold(
            args.fold,
            args.trainer,
            preprocessed=args.preprocessed,
            results=args.results,
            device=args.device,
            continue_training=args.continue_training,
            config=trainer_config(
                args, args.trainer, "epochs", "batch_size", "lr", "steps_per_epoch", "num_workers", "seed"
            ),
            progress=not args.no_progress,
            threads=args.threads,
        )
        if process_rank() == 0:  # under torchrun: one summary per job
            if not args.no_export:
                from ..inference.export import export_after_training

                export_after_training(summary["output"])
            print(f"done: best validation Dice {summary['best_val_dice']:.4f}; results in {summary['output']}")

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
