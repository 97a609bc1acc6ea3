"""lw_demo: the whole pipeline on the embedded synthetic default, offline."""

from __future__ import annotations

import argparse
import sys

from ..backbones import TEACHERS
from ..demo import DEMO_TEACHER, run_demo
from .common import add_logging_options, at_least, parse, positive_float, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_demo",
        description="Run liverwild end to end on synthetic multi-domain "
        "phantoms (no download, no GPU needed): generate, verify, plan and preprocess, train a "
        "leave-one-domain-out fold, predict the unseen domain, evaluate.",
    )
    p.add_argument("-o", "--workdir", default="lw_demo", help="folder for everything the demo writes")
    p.add_argument("--cases", type=at_least(1), default=5, help="cases per phantom domain")
    p.add_argument("--slices", type=at_least(1), default=16, help="slices per phantom case")
    p.add_argument("--views", type=at_least(0), default=1, help="augmented views per slice")
    p.add_argument(
        "--backbone",
        default=DEMO_TEACHER,
        metavar="NAME",
        help=f"teacher ({', '.join(TEACHERS)} or a timm name; default {DEMO_TEACHER}: real ImageNet "
        "weights installed with pip)",
    )
    p.add_argument(
        "--backbone-weights",
        default=None,
        metavar="FILE",
        help="weights file for teachers that need one (DINO .pth / timm .safetensors)",
    )
    p.add_argument("--random-backbone", action="store_true", help="random teacher weights (tests only)")
    p.add_argument("--feature-tap", default=None, metavar="TAP", help="feature tap (see lw_plan_and_preprocess)")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=at_least(1), default=12, help="training epochs (demo setting)")
    p.add_argument("--target", default="PhantomT2MR", help="the unseen domain (leave-one-domain-out)")
    p.add_argument("--scale", type=positive_float, default=1.0, help="in-plane matrix scale of the phantoms")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=at_least(1), default=1)
    p.add_argument("--quick", action="store_true", help="smallest run, for smoke tests")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)

    def work():
        summary = run_demo(
            args.workdir,
            cases=args.cases,
            scale=args.scale,
            seed=args.seed,
            quick=args.quick,
            workers=args.workers,
            slices=args.slices,
            views=args.views,
            backbone_weights=args.backbone_weights,
            device=args.device,
            epochs=args.epochs,
            target=args.target,
            backbone=args.backbone,
            random_backbone=args.random_backbone,
            tap=args.feature_tap,
        )
        return 0 if summary["verified"] and summary["preprocessed_ok"] and not summary["failed"] else 1

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
