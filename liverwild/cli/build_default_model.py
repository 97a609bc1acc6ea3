"""lw_build_default_model: rebuild liverwild's default model from scratch (synthetic phantoms only)."""

from __future__ import annotations

import argparse
import sys

from .common import add_logging_options, parse, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_build_default_model",
        description="Rebuild the default model that lw_predict uses without -m: domain-randomised CT and MR phantoms "
        "→ teacher imagenet-effnet-lite0 → contrastive-distillation training → a slim model folder with "
        "provenance.json. Synthetic data only; not a medical device.",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="model folder to write (default: the package's own liverwild/models/default)",
    )
    p.add_argument("-w", "--workdir", default="lw_default_model_build", help="folder for phantoms, cache and runs")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--workers", type=int, default=1, help="processes for phantom generation and preprocessing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a tiny, useless model (smoke test)")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    from ..default_model import DEFAULT_MODEL_DIR, DISCLAIMER, Recipe, build_default_model, main_command

    def work():
        recipe = Recipe(seed=args.seed)
        recipe = recipe.quick() if args.quick else recipe
        print(DISCLAIMER)
        build_default_model(
            args.workdir,
            output=args.output or DEFAULT_MODEL_DIR,
            recipe=recipe,
            device=args.device,
            workers=args.workers,
            command=main_command() if argv is None else "lw_build_default_model " + " ".join(argv),
        )
        return 0

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
