"""lw_plan_and_preprocess: fingerprint, plan and cache slices + backbone features, nnU-Net style."""

from __future__ import annotations

import argparse
import os
import sys

from planning.plans import NORMALIZATION_PRESETS

from ..backbones.registry import DEFAULT_TEACHER, SLICE_CONTEXTS, TEACHERS
from .common import add_folder_options, add_logging_options, at_least, parse, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_plan_and_preprocess",
        description="Measure raw datasets (dataset_fingerprint.json), plan their preprocessing (plans.json), "
        "cache normalised 224×224 slices, augmented views and frozen backbone features (-c 2d) and/or resized "
        "volumes with organ classes (-c 3d), and write leave-one-dataset-out folds (splits.json).",
    )
    p.add_argument(
        "-d", "--datasets", nargs="+", required=True, metavar="NAME", help="raw dataset names or nnU-Net ids"
    )
    p.add_argument(
        "-c",
        "--configurations",
        nargs="+",
        default=["2d"],
        choices=["2d", "3d"],
        help="which caches to write: 2d (slices, augmented views, teacher features; the default) and/or 3d "
        "(whole volumes resized to 64×128×128 with organ classes, for the multi-organ 3D U-Net trainers). "
        "plans.json always holds both configurations",
    )
    add_folder_options(p, "raw", "preprocessed")
    p.add_argument(
        "--backbone",
        default=None,
        metavar="NAME",
        help="teacher: " + ", ".join(TEACHERS) + f", or any timm model name (default {DEFAULT_TEACHER})",
    )
    p.add_argument(
        "--backbone-weights",
        default=None,
        metavar="FILE",
        help="DINO .pth or timm .safetensors file, or 'timm-cache' (imagenet-effnet-lite0 needs none: its "
        "weights come with pip)",
    )
    p.add_argument(
        "--feature-tap",
        default=None,
        metavar="TAP",
        help="which layer(s) give the feature map: default (ViT: last block; CNN: stride-16 stage), final, "
        "stride:N, last:K (ViT), or stage names such as blocks.2,blocks.4",
    )
    p.add_argument(
        "--slice-context",
        default=None,
        choices=list(SLICE_CONTEXTS),
        help="what fills the teacher's three input channels: slice (the slice itself, the paper; default) or "
        "neighbours (the slices above and below around it: 2.5D context at the same cost)",
    )
    p.add_argument(
        "--random-backbone",
        action="store_true",
        help="use a randomly initialised backbone (tests and demos only; recorded in every artefact)",
    )
    p.add_argument(
        "--normalization",
        default=None,
        choices=list(NORMALIZATION_PRESETS),
        help="normalisation preset: default (CT window [0, 500] HU); single-dg (CT window [-125, 275] HU: the "
        "paper's single-source CT→MR setting, as the works it follows window it); single-dg-0-125 (CT [0, 125] "
        "HU, the supplement's 'threshold at 125 HU' read literally)",
    )
    p.add_argument("--views", type=at_least(0), default=None, help="augmented views per slice (default 2)")
    p.add_argument(
        "--volume-size",
        type=at_least(1),
        nargs=3,
        default=None,
        metavar=("Z", "Y", "X"),
        help="3d configuration: voxels of the resized volumes (default 64 128 128, the source paper's; each "
        "divisible by 2**depth of the 3D U-Net, 16 by default)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=at_least(1), default=32, help="slices per backbone batch")
    p.add_argument(
        "--transforms-on",
        default="auto",
        choices=["auto", "cpu", "device"],
        help="where the 2d cache's normalisation, 224² resize and augmented views run: cpu (the workers), "
        "device (torch on the teacher's device; the workers only read) or auto (the device unless it is the "
        "CPU); the same cache within float16 rounding",
    )
    p.add_argument(
        "--workers",
        type=at_least(0),
        default=max(1, (os.cpu_count() or 2) - 1),
        help="processes for the CPU stages (reading, normalising, augmenting); 0 = in the main process",
    )
    p.add_argument("--threads", type=at_least(1), default=None, help="torch CPU threads (default: all cores)")
    p.add_argument(
        "--val-per-source",
        type=at_least(0),
        default=None,
        help="held-out validation cases per source dataset (default: the existing splits.json's, 5 for new splits)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the cached augmented views (plans.json augmentation.seed, part of the data identifier; "
        "default: the stored plans', 0 for new plans) and of the folds' held-out validation cases (default: the "
        "existing splits.json's, 0 for new splits)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--plan-only", action="store_true", help="stop after fingerprint and plans")
    mode.add_argument("--preprocess-only", action="store_true", help="use the existing (possibly edited) plans.json")
    p.add_argument("--replan", action="store_true", help="discard existing plans.json and plan afresh")
    p.add_argument("--no-progress", action="store_true")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    from preprocessing.pipeline import plan_and_preprocess

    def work():
        reports = plan_and_preprocess(
            args.datasets,
            raw=args.raw,
            preprocessed=args.preprocessed,
            backbone=args.backbone,
            weights=args.backbone_weights,
            random_backbone=args.random_backbone,
            views=args.views,
            device=args.device,
            workers=args.workers,
            batch_size=args.batch_size,
            plan_only=args.plan_only,
            preprocess_only=args.preprocess_only,
            replan=args.replan,
            val_per_source=args.val_per_source,
            seed=args.seed,
            threads=args.threads,
            progress=not args.no_progress,
            tap=args.feature_tap,
            normalization=args.normalization,
            configurations=tuple(args.configurations),
            volume_size=args.volume_size,
            slice_context=args.slice_context,
            transforms_on=args.transforms_on,
        )
        failed = {r.label: r.failed for r in reports if r.failed}
        if failed:
            n = sum(len(v) for v in failed.values())
            print(
                f"{n} case(s) failed and were skipped: "
                + "; ".join(f"{d}: {', '.join(sorted(c))}" for d, c in failed.items()),
                file=sys.stderr,
            )
            return 1
        return 0

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
