"""lw_evaluate: Dice, IoU, RAVD, ASSD, MSSD, HD95 per case (or per case and organ); summary; paired
comparison of two runs."""

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
        "--organs",
        nargs="*",
        default=None,
        metavar="ORGAN",
        help="multi-label evaluation, one row per case and organ: the organs named (default: every organ both "
        "sides have). Label values come from PRED/prediction_report.json and from the reference dataset's "
        "dataset.json (REF = <dataset>/labelsTr_organs or labelsTr), or from --pred-labels / --ref-labels",
    )
    p.add_argument(
        "--pred-labels",
        nargs="+",
        default=None,
        metavar="NAME=V",
        help="with --organs: the predictions' label values, e.g. liver=4 spleen=1",
    )
    p.add_argument(
        "--ref-labels",
        nargs="+",
        default=None,
        metavar="NAME=V[,V]",
        help="with --organs: the references' label values, e.g. liver=6 left_kidney=3",
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


def warn_if_several_organs(predictions) -> None:
    """A folder of organ maps (a 3d model's) evaluated as one binary mask is almost surely a mistake."""
    import json

    report = predictions / "prediction_report.json"
    if report.is_file():
        classes = json.loads(report.read_text(encoding="utf-8")).get("classes") or {}
        organs = [name for name in classes if name != "background"]
        if len(organs) > 1:
            print(
                f"warning: {predictions} holds organ maps ({', '.join(organs)}); without --organs every organ "
                "counts as foreground",
                file=sys.stderr,
            )


def main(argv=None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    from ..evaluation import compare_evaluations, evaluate_folders, match_classes
    from ..evaluation.organs import parse_label_list

    def work():
        if args.compare:
            first, second = args.compare
            _, table = compare_evaluations(first, second, names=args.names)
            print(table)
            return 0
        if not args.predictions or not args.references:
            parser.error("-p and -r are required (or use --compare A.csv B.csv)")
        from pathlib import Path

        classes = None
        if args.organs is not None or args.pred_labels or args.ref_labels:
            classes = match_classes(
                args.predictions,
                args.references,
                args.organs,
                parse_label_list(args.pred_labels) or None,
                parse_label_list(args.ref_labels) or None,
            )
        if classes is None:
            warn_if_several_organs(Path(args.predictions))
        out = args.output or str(Path(args.predictions) / "results.csv")
        table, summary, failures = evaluate_folders(
            args.predictions,
            args.references,
            labels=tuple(args.labels),
            output_csv=out,
            protocol=args.protocol,
            classes=classes,
        )
        if classes:
            print(f"{'organ':14s} {'Dice':>16s} {'HD95 (mm)':>18s} {'ASSD (mm)':>18s}   n")
            for organ, s in summary["organs"].items():
                cells = [
                    f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" if s[m]["mean"] is not None else "—"
                    for m in ("dice", "hd95_mm", "assd_mm")
                ]
                print(f"{organ:14s} {cells[0]:>16s} {cells[1]:>18s} {cells[2]:>18s}   {s['n_cases']}")
            print("mean over each case's organs:")
        for metric in ("dice", "iou", "ravd", "assd_mm", "mssd_mm", "hd95_mm"):
            s = summary[metric]
            if s["mean"] is not None:
                unit = "%" if metric == "ravd" else ""
                left_out = f"; {s['n_nonfinite']} non-finite left out" if s["n_nonfinite"] else ""
                print(
                    f"{metric:8s} {s['mean']:.4f}{unit} ± {s['std']:.4f}{unit}  (median {s['median']:.4f}, "
                    f"n={summary['n_cases'] - s['n_nonfinite']}{left_out})"
                )
        print("mean ± population s.d. across scans")
        print(f"protocol: {args.protocol}")
        print(f"per case: {out}; summary: {Path(out).with_suffix('.summary.json')}")
        return 1 if failures else 0

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
