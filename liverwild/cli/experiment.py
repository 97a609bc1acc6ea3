"""lw_experiment: run a named protocol end to end (train, predict the target, evaluate, report)."""

from __future__ import annotations

import argparse
import sys

from .common import (
    add_folder_options,
    add_logging_options,
    add_settings_option,
    at_least,
    config_changes,
    parse,
    positive_float,
    run,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_experiment",
        description="Run one of the paper's experiments on the preprocessed datasets: for each fold, trainer and "
        "seed train, predict the target, evaluate; then a Markdown report shaped like the paper's tables "
        "(mean ± s.d. over scans, paired t-tests against the reference trainer). Interrupted runs resume; a "
        "finished run is reused only when made with the same configuration, else redone (the old one moved to "
        "stale/).",
    )
    p.add_argument("protocol", choices=["multi-dg", "single-dg", "ablations", "seeds", "organs-3d"])
    p.add_argument("--trainers", nargs="+", default=None, metavar="NAME", help="trainers (default: per protocol)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default 0; seeds protocol: 0 1 2)")
    p.add_argument(
        "--fold",
        nargs="+",
        default=None,
        help="folds to run (multi-dg, single-dg: default all; ablations, seeds: one, default the first LOO fold; "
        "organs-3d: default the first LOO fold)",
    )
    p.add_argument(
        "--evaluation",
        default="native",
        choices=["native", "paper", "multi-dg", "single-dg"],
        help="paper: the paper's protocol — its in-plane grid (128², 192² for single-dg) and no post-processing; "
        "native (default), multi-dg (128²), single-dg (192²): that grid with lw_predict's post-processing",
    )
    p.add_argument("--epochs", type=at_least(1), default=None, help="default 150 (the paper; 3D trainers 500)")
    p.add_argument("--lr", type=positive_float, default=None, help="default 1e-4 (the paper; 3D trainers 1e-3)")
    p.add_argument("--steps-per-epoch", type=at_least(1), default=None)
    p.add_argument("--batch-size", type=at_least(1), default=None, help="default 8 (3D trainers: 4 volumes)")
    add_settings_option(p, "any other trainer-configuration field for every run, e.g. unet_channels=16")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--concurrent",
        type=at_least(1),
        default=1,
        metavar="K",
        help="K runs at once on the device, each in its own process with 1/K of its memory (CPU: of the "
        "threads); for GPUs that one small run leaves idle (default 1)",
    )
    p.add_argument("-o", "--output", default=None, help="results folder (default $LW_results/experiments/<protocol>)")
    p.add_argument(
        "--quick", action="store_true", help="2 epochs of 4 steps (3D: 2 of 2 volumes): a smoke test, not a result"
    )
    add_folder_options(p, "raw", "preprocessed", "results")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    from ..experiments import run_experiment

    def work():
        report = run_experiment(
            args.protocol,
            raw=args.raw,
            preprocessed=args.preprocessed,
            results=args.results,
            output=args.output,
            trainers=args.trainers,
            seeds=args.seeds,
            fold=args.fold,
            settings=config_changes(args, "epochs", "lr", "batch_size", "steps_per_epoch"),
            device=args.device,
            evaluation=args.evaluation,
            quick=args.quick,
            concurrent=args.concurrent,
        )
        print(f"report: {report['output']}/report.md ({report['n_scans']} scan results)")
        return 0

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
