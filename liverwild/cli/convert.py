"""lw_convert: import public datasets as liverwild raw datasets, and verify raw datasets."""

from __future__ import annotations

import argparse
import sys

from ..datasets import find_dataset, verify_dataset
from ..paths import raw_folder
from .common import add_folder_options, add_logging_options, at_least, parse, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_convert",
        description="Convert public liver datasets to the liverwild raw format, or verify a raw dataset.",
    )
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    v = sub.add_parser("verify", help="check a raw dataset (pairing, geometry, label values, readability)")
    v.add_argument("names", nargs="+", metavar="NAME", help="dataset name(s) under $LW_raw, or folder paths")
    v.add_argument("--workers", type=at_least(1), default=2)
    add_folder_options(v, "raw")
    from ..datasets.conversion import CONVERTERS

    for kind, entry in CONVERTERS.items():
        c = sub.add_parser(kind, help=entry.layout, description=entry.layout)
        c.add_argument("source", metavar="SRC", help="the dataset as unpacked from its download")
        c.add_argument("-n", "--name", default=None, help="output dataset name (default: a standard one)")
        c.add_argument("--workers", type=at_least(1), default=2, help="cases converted in parallel")
        c.add_argument("--overwrite", action="store_true", help="redo cases that are already converted")
        c.add_argument("--no-progress", action="store_true")
        if "sequence" in entry.options:
            c.add_argument("--sequence", default="T2SPIR", choices=["T2SPIR", "T1DUAL_in", "T1DUAL_out"])
        if "liver_label" in entry.options:
            c.add_argument("--liver-label", type=int, nargs="+", required=True, help="label value(s) that are liver")
        if "amos_modalities" in entry.options:
            c.add_argument("--only", choices=["CT", "MR"], default=None, help="write only one modality's dataset")
        add_folder_options(c, "raw")
    add_logging_options(p)
    return p


def verify(names, raw=None, workers=2) -> int:
    """Verify each named dataset; print every problem and a summary. Returns the exit code."""
    from pathlib import Path

    failed = 0
    for name in names:
        folder = Path(name) if Path(name).is_dir() else find_dataset(name, raw_folder(raw))
        report = verify_dataset(folder, workers)
        for problem in report.problems:
            print(problem)
        print(report.summary())
        failed += not report.ok
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if args.kind == "verify":
        return run(verify, args.names, args.raw, args.workers)

    def work():
        from ..datasets.conversion import convert

        reports = convert(
            args.kind,
            args.source,
            raw_folder(args.raw),
            name=args.name,
            workers=args.workers,
            overwrite=args.overwrite,
            sequence=getattr(args, "sequence", "T2SPIR"),
            liver_label=getattr(args, "liver_label", (1,)),
            amos_modalities=(args.only,) if getattr(args, "only", None) else ("CT", "MR"),
            progress=not args.no_progress,
        )
        for report in reports:
            for problem in report.verification.problems:
                print(problem)
            print(report.summary())
            print(report.verification.summary())
        return 0 if all(r.ok for r in reports) else 1

    return run(work)


if __name__ == "__main__":
    sys.exit(main())
