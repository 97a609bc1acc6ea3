"""lw_build_default_model: rebuild liverwild's default model from scratch (synthetic phantoms only)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from ..default_recipe import Recipe
from .common import add_logging_options, at_least, parse, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_build_default_model",
        description="Rebuild the default model that lw_predict uses without -m: domain-randomised CT and MR phantoms "
        "→ the recipe's teacher → contrastive-distillation training → a slim model folder with "
        "provenance.json. Synthetic data only; not a medical device. The recipe options change the model "
        "(provenance.json records them); without them it is the shipped model's recipe.",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="model folder to write (default: the package's own liverwild/models/default)",
    )
    p.add_argument("-w", "--workdir", default="lw_default_model_build", help="folder for phantoms, cache and runs")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--workers", type=at_least(1), default=1, help="processes for phantom generation and preprocessing")
    p.add_argument("--quick", action="store_true", help="a tiny, useless model (smoke test)")
    recipe = p.add_argument_group("recipe (default: the shipped model's)")
    for field in fields(Recipe):
        default = getattr(Recipe(), field.name)
        kind = type(default) if default is not None else str
        recipe.add_argument(
            "--" + field.name.replace("_", "-"),
            type=kind,
            default=None,
            metavar=kind.__name__.upper(),
            help=f"default {default}",
        )
    add_logging_options(p)
    return p


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The shipped recipe with the recipe options given on the command line."""
    return Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe) if getattr(args, f.name) is not None})


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    from ..default_model import DEFAULT_MODEL_DIR, DISCLAIMER, build_default_model, main_command

    def work():
        recipe = recipe_from_args(args)
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
