"""lw_adapt: adapt a trained model to a folder of the user's unlabelled scans."""

from __future__ import annotations

import argparse
import sys

from .common import RegisteredName, add_folder_options, add_logging_options, at_least, parse, run

SETTINGS = {  # the AdaptationSettings fields a user sets: (type
    "max_slices": (int, "evenly spaced slices per scan used for adaptation (default 48)"),
    "batch_size": (int, "slices per batch (default 16)"),
    "seed": (int, "random seed (default 0)"),
    "steps": (int, "entropy/adversarial: optimiser steps at most (defaults 100 / 200)"),
    "lr": (float, "entropy/adversarial: learning rate (defaults 1e-3 / 1e-4)"),
    "held_out_share": (float, "entropy/adversarial: share of the scans held out for the stopping rule (default 0.2)"),
    "max_volume_change": (
        float,
        "entropy/adversarial: stop when the held-out predicted liver volume changes by more "
        "than this fraction (default 0.3)",
    ),
    "eval_every": (int, "entropy/adversarial: steps between checks of the stopping rule (default 10)"),
    "patience": (int, "entropy: checks without a lower held-out entropy before stopping (default 3)"),
    "source": (
        str,
        "adversarial: source features from the training cache ('cache', needs --preprocessed or "
        "$LW_preprocessed), from phantoms ('phantoms'), or the cache when complete ('auto', the default)",
    ),
    "critic_steps": (int, "adversarial: critic updates per head update (default 5)"),
    "gradient_penalty": (float, "adversarial: weight of the critic's gradient penalty (default 10)"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_adapt",
        description="Adapt a trained model (the shipped default included) to a folder of unlabelled scans of one "
        "scanner/protocol; writes a model folder for lw_predict -m. Methods: bn (re-estimated normalisation "
        "statistics), entropy (TENT-style), adversarial (feature alignment, Dou et al. IJCAI 2018). "
        "See documentation/adaptation.md.",
    )
    p.add_argument("model", help="trained model folder, a fold name under $LW_results, or 'default'")
    p.add_argument("-i", "--input", required=True, help="a scan file, a DICOM series folder, or a folder of them")
    p.add_argument("-o", "--output", required=True, help="new folder for the adapted model")
    p.add_argument(
        "--method",
        default="bn",
        type=RegisteredName("liverwild.adaptation", "METHODS", "adaptation method"),
        metavar="NAME",
        help="bn (default), entropy or adversarial",
    )
    p.add_argument("--modality", default="auto", choices=["auto", "CT", "MR"])
    for name, (kind, help_text) in SETTINGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=help_text)
    p.add_argument("--trainer", default=None, help="with a fold name: which trainer's model")
    p.add_argument("--checkpoint", default="best", help="best, final, latest or a file name")
    p.add_argument("--backbone-weights", default=None, metavar="FILE", help="if the model's weights file moved")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=at_least(1), default=None, help="torch CPU threads")
    add_folder_options(p, "preprocessed", "results")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    from ..adaptation import AdaptationSettings, adapt_model
    from ..default_model import main_command

    given = {name for name in SETTINGS if getattr(args, name) is not None}
    settings = AdaptationSettings(method=args.method, **{name: getattr(args, name) for name in given})

    def work():
        provenance = adapt_model(
            args.model,
            args.input,
            args.output,
            settings=settings,
            given=given,
            modality=args.modality,
            device=args.device,
            threads=args.threads,
            preprocessed=args.preprocessed,
            trainer=args.trainer,
            results=args.results,
            backbone_weights=args.backbone_weights,
            checkpoint=args.checkpoint,
            command=main_command(),
        )
        print(
            f"done: {provenance['method']} on {len(provenance['scans'])} {provenance['modality']} scans in "
            f"{provenance['total_seconds']:.0f} s; adapted model in {args.output} (use: lw_predict -m {args.output})"
        )

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
