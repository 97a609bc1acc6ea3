"""lw_evaluate: Dice, IoU, RAVD, ASSD, MSSD, HD95 per case; summary; paired comparison of two runs."""

from __future__ import annotations

import argparse
import sys

from .common import add_logging_options, parse, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_evaluate",
        description="Evaluate predicted masks against references "
        "(distances in mm), or compare two evaluations with a paired t-test.",
    )
    p.add_argument("-p", "--predictions", help="folder of predicted masks")
    p.add_argument("-r", "--references", help="folder of reference label maps")
    p.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=[1],
        help="reference label values counted as foreground (e.g. 1 2 for liver + tumour)",
    )
    p.add_argument(
        "--protocol",
        default="native",
        choices=["native", "multi-dg", "single-dg"],
        help="native: the scan's own grid (default); multi-dg / single-dg: the paper's protocol, masks "
        "compared on axial slices resized to 128² / 192²",
    )
    p.add_argument("-o", "--output", default=None, help="per-case CSV (default PRED/results.csv); summary JSON beside")
    p.add_argument("--compare", nargs=2, metavar=("A.csv", "B.csv"), help="paired t-test per metric, Markdown table")
    p.add_argument("--names", nargs=2, default=None, help="column names for --compare")
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    from ..evaluation import compare_evaluations, evaluate_folders

    def work():
        if args.compare:
            _, table = compare_evaluations(*args.compare, names=args.names)
            print(table)
            return 0
        if not args.predictions or not args.references:
            parser.error("-p and -r are required (or use --compare A.csv B.csv)")
        from pathlib import Path

        out = args.output or str(Path(args.predictions) / "results.csv")
        table, summary, failures = evaluate_folders(
            args.predictions, args.references, labels=tuple(args.labels), output_csv=out, protocol=args.protocol
        )
        for metric in ("dice", "iou", "ravd", "assd_mm", "mssd_mm", "hd95_mm"):
            s = summary[metric]
            if s["mean"] is not None:
                unit = "%" if metric == "ravd" else ""
                print(
                    f"{metric:8s} {s['mean']:.4f}{unit} ± {s['std']:.4f}{unit}  (median {s['median']:.4f}, "
                    f"n={summary['n_cases']})"
                )
        print(f"protocol: {args.protocol}")
        print(f"per case: {out}; summary: {Path(out).with_suffix('.summary.json')}")
        return 1 if failures else 0

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
