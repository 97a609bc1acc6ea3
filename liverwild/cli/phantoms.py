"""lw_phantoms: write the multi-domain synthetic datasets (one raw dataset per domain)."""

from __future__ import annotations

import argparse
import os
import sys

from ..phantoms import DOMAINS, save_preview, write_phantoms
from .common import add_logging_options, at_least, parse, positive_float, run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lw_phantoms",
        description="Generate synthetic abdominal CT/MR phantoms with exact liver masks, "
        "one raw dataset per imaging domain, under OUT (usable as $LW_raw).",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=os.environ.get("LW_raw"),
        help="where to write the datasets (default: $LW_raw)",
    )
    p.add_argument(
        "-d", "--domains", nargs="+", choices=sorted(DOMAINS), default=None, help="domains to write (default: all)"
    )
    p.add_argument("-n", "--cases", type=at_least(1), default=None, help="cases per domain (default: the domain's, 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed ⇒ same scans)")
    p.add_argument(
        "--scale", type=positive_float, default=1.0, help="in-plane matrix scale (0.5 = half the voxels per row)"
    )
    p.add_argument("--slices", type=at_least(1), default=None, help="slices per case (default: the domain's coverage)")
    p.add_argument("--workers", type=at_least(1), default=min(4, os.cpu_count() or 1), help="parallel processes")
    p.add_argument("--overwrite", action="store_true", help="regenerate cases that already exist")
    p.add_argument("--list", action="store_true", help="list the domains and exit")
    p.add_argument(
        "--from-label-maps",
        metavar="DIR",
        default=None,
        help="instead of the phantom anatomy, render synthetic scans from the organ label maps under DIR "
        "(SynthSeg route; name tables: dataset.json, <map stem>.json beside each map, or --names); "
        "-n = synthetic scans per map (default 1)",
    )
    p.add_argument("--names", metavar="JSON", default=None, help="with --from-label-maps: one name table for every map")
    p.add_argument(
        "--modality",
        nargs="+",
        choices=("CT", "MR"),
        default=["CT", "MR"],
        help="with --from-label-maps: one dataset per modality (default: both)",
    )
    p.add_argument(
        "--dataset-name",
        default=None,
        help="with --from-label-maps: dataset name prefix (default FromLabelMaps; the modality is appended)",
    )
    p.add_argument(
        "--preview",
        metavar="PNG",
        default=None,
        help="also save a picture with one case per domain (axial/coronal/sagittal)",
    )
    add_logging_options(p)
    return p


def main(argv=None) -> int:
    args = parse(build_parser(), argv)
    if args.list:
        for name, d in DOMAINS.items():
            print(f"{name:20s} {d.modality}  {d.description}")
        return 0
    if args.preview and not args.output:
        print(f"wrote {save_preview(args.preview, args.domains, args.seed, scale=args.scale)}")
        return 0
    if not args.output:
        print("error: no output folder: pass -o DIR or set LW_raw", file=sys.stderr)
        return 1
    if args.from_label_maps:
        refused = [
            o
            for o, v in (
                ("--domains", args.domains),
                ("--scale", args.scale != 1.0),
                ("--slices", args.slices),
                ("--preview", args.preview),
            )
            if v
        ]
        if refused:
            print(f"error: not available with --from-label-maps: {', '.join(refused)}", file=sys.stderr)
            return 2
        return run(lambda: _from_label_maps(args))
    if args.names or args.dataset_name or args.modality != ["CT", "MR"]:
        print("error: --names, --dataset-name and --modality need --from-label-maps", file=sys.stderr)
        return 2

    def work():
        folders = write_phantoms(
            args.output, args.domains, args.cases, args.seed, args.scale, args.slices, args.workers, args.overwrite
        )
        for folder in folders:
            print(f"wrote {folder}")
        if args.preview:
            print(f"wrote {save_preview(args.preview, args.domains, args.seed, scale=args.scale)}")

    return run(work)


def _from_label_maps(args) -> None:
    from ..phantoms.labelmaps import write_from_label_maps

    for modality in args.modality:
        name = f"{args.dataset_name or 'FromLabelMaps'}{modality}"
        folder = write_from_label_maps(
            args.from_label_maps,
            args.output,
            modality,
            copies=args.cases or 1,
            seed=args.seed,
            dataset_name=name,
            names_file=args.names,
            overwrite=args.overwrite,
        )
        print(f"wrote {folder}")


if __name__ == "__main__":
    sys.exit(main())
