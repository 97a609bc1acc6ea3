"""lw_convert: import public datasets as liverwild raw datasets, and verify raw datasets."""
from __future__ import annotations

import argparse
import sys

from ..datasets import find_dataset, verify_dataset
from ..paths import raw_folder
from .common import add_folder_options, run

CONVERTERS = ("btcv", "chaos-ct", "chaos-mr", "ircadb", "lits", "msd-liver", "amos", "act1k", "nnunet")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lw_convert", description="Convert public liver datasets to the liverwild raw "
                                "format, or verify a raw dataset.")
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    v = sub.add_parser("verify", help="check a raw dataset (pairing, geometry, label values, readability)")
    v.add_argument("names", nargs="+", metavar="NAME", help="dataset name(s) under $LW_raw, or folder paths")
    v.add_argument("--workers", type=int, default=2)
    add_folder_options(v, "raw")
    for kind in CONVERTERS:
        c = sub.add_parser(kind, help=f"convert {kind} (not available yet)")
        c.add_argument("source", metavar="SRC")
        c.add_argument("-n", "--name", default=None)
        add_folder_options(c, "raw")
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
    args = parser.parse_args(argv)
    if args.kind == "verify":
        return run(verify, args.names, args.raw, args.workers)
    print(f"lw_convert {args.kind}: not available yet; nothing was done.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
