"""The default model (or any model) on real scans with reference masks: Dice, ASSD and MSSD per scan.

    python benchmarks/bench_in_the_wild.py --real ../shared/data/real [-m default] [--out table.md]

``--real DIR`` holds one folder per scan with ``image.*`` (NIfTI, NRRD, MHA) and one reference mask
(the one other image file in that folder, or ``liver.*`` when there are several, as beside an organ map;
every value > 0 is liver, so tumour labels count as liver), e.g.
``../shared/data/real/{totalseg_ct,totalseg_mr,lits117}``. Each scan goes through ``lw_predict``'s own
function (the scan's own geometry, modality detected automatically) and is compared with its reference
in the original geometry. Nothing here is tuned to these scans.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def find_pairs(folder: Path) -> list:
    """[(name, image path, reference path)] for every sub-folder with ``image.*`` and one other image."""
    pairs = []
    for case in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = [p for p in sorted(case.iterdir()) if p.name.endswith(IMAGE_SUFFIXES)]
        images = [p for p in files if p.name.startswith("image.")]
        refs = [p for p in files if not p.name.startswith("image.")]
        if len(refs) > 1:  # e.g. liver.nii.gz beside an organ map (organs.nii.gz): the liver mask is the reference
            refs = [p for p in refs if p.name.startswith("liver.")]
        if len(images) == 1 and len(refs) == 1:
            pairs.append((case.name, images[0], refs[0]))
        else:
            print(f"skipped {case}: needs image.* and one reference mask (or liver.*)", file=sys.stderr)
    return pairs


def target_lines(rows: list) -> list:
    """The targets of "Default model v2" checked on these rows: every CT Dice ≥ 0.90; MR mean Dice ≥ 0.85
    and every MR ≥ 0.75; ASSD ≤ 3 mm on the scans whose name starts with ``totalseg`` (the scans with a
    physical spacing: LiTS 117's header holds a placeholder)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    ct = [r["dice"] for r in rows if r["modality"] == "CT"]
    mr = [r["dice"] for r in rows if r["modality"] == "MR"]
    assd = [r["assd_mm"] for r in rows if r["scan"].startswith("totalseg")]
    lines = ["targets (Default model v2):"]
    if ct:
        lines.append(f"- every CT Dice ≥ 0.90 → {verdict(min(ct) >= 0.90)} (min {min(ct):.3f})")
    if mr:
        mean = sum(mr) / len(mr)
        lines.append(f"- MR mean Dice ≥ 0.85 → {verdict(mean >= 0.85)} ({mean:.3f})")
        lines.append(f"- every MR Dice ≥ 0.75 → {verdict(min(mr) >= 0.75)} (min {min(mr):.3f})")
    if assd:
        worst = max(assd)
        lines.append(f"- ASSD ≤ 3 mm on the TotalSegmentator scans → {verdict(worst <= 3.0)} (max {worst:.2f} mm)")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", required=True, help="folder of scan folders (image + reference mask)")
    p.add_argument("-m", "--model", default="default", help="model folder, fold name, or 'default'")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="also write the table as Markdown here")
    args = p.parse_args(argv)
    import torch

    from liverwild.evaluation.metrics import all_metrics
    from liverwild.inference import predict
    from liverwild.io import read_label

    pairs = find_pairs(Path(args.real))
    if not pairs:
        print(f"no scan folders with image + reference in {args.real}", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, image, reference in pairs:
            start = time.perf_counter()
            report = predict(image, Path(tmp) / name, model=args.model, device=args.device, progress=False)
            seconds = time.perf_counter() - start
            scan = report["scans"][0]
            if scan["error"]:
                print(f"FAILED {name}: {scan['error']}", file=sys.stderr)
                continue
            pred, ref = read_label(scan["output"]), read_label(reference)
            metrics = all_metrics(pred.array > 0, ref.array > 0, tuple(reversed(ref.geometry.spacing)))
            rows.append({"scan": name, "modality": scan["modality"], **metrics, "seconds": seconds})
    model = report["model"]
    lines = [
        "| scan | modality | Dice | ASSD (mm) | MSSD (mm) | liver ml (pred / ref) | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scan']} | {r['modality']} | {r['dice']:.3f} | {r['assd_mm']:.2f} | {r['mssd_mm']:.1f} | "
            f"{r['volume_pred_ml']:.0f} / {r['volume_ref_ml']:.0f} | {r['seconds']:.1f} |"
        )
    lines += [
        "",
        f"Model: {model['folder']} ({model.get('teacher', '')}); {model.get('note') or ''}",
        f"Command: `python benchmarks/bench_in_the_wild.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {report['device']}; "
        f"torch {torch.__version__}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print("\n" + "\n".join(target_lines(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
