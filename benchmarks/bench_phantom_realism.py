"""How realistic are the phantom abdomens? The liver's neighbourhood, phantoms vs real label maps.

Prints a Markdown table: for the real TotalSegmentator CT and MR maps (``--real DIR``, default
``$LW_REAL_DATA`` or ``../shared/data/real``) and for ``-n`` generated phantom anatomies (mean ± s.d.),
the share (%) of each structure group in the 0–4, 4–15 and 15–30 mm shells around the liver
(:func:`liverwild.phantoms.realism.shell_composition`), the liver volume and cranio-caudal extent, and a
*target* column: for bowel, stomach, right kidney, gallbladder and lung in the 4–15 and 15–30 mm
shells, whether the phantom mean is within a factor 2 of the real CT map's share.

The real maps label organs only: their unlabelled body voxels (fat, body wall muscles, diaphragm, …)
are shown with the phantoms' ``fat`` as "fat/unlabelled", and their ``muscle`` is only the labelled
back and psoas muscles. The real body is taken from the image (CT > −500 HU, MR > 10 % of the 99th
percentile), the phantom body from its tissues. Shells are truncated where a scan ends.

    PYTHONPATH=$PWD python benchmarks/bench_phantom_realism.py -n 20 [--domain NAME | --randomized CT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liverwild.io import Reorientation  # noqa: E402
from liverwild.phantoms.realism import (  # noqa: E402
    DEFAULT_SHELLS,
    liver_summary,
    read_canonical,
    read_label_map,
    shell_composition,
    shell_label,
)

ROWS: dict[str, tuple[str, ...]] = {  # table row → the groups whose shares it adds
    "bowel": ("bowel",),
    "stomach": ("stomach",),
    "right kidney": ("right_kidney",),
    "gallbladder": ("gallbladder",),
    "lung": ("lung",),
    "spleen": ("spleen",),
    "fat/unlabelled": ("fat", "unlabelled"),
    "muscle": ("muscle",),
    "bone": ("bone",),
    "vessels": ("vessels",),
}
TARGET_ROWS = ("bowel", "stomach", "right kidney", "gallbladder", "lung")
TARGET_SHELLS = ("4-15 mm", "15-30 mm")
SHELLS = [shell_label(lo, hi) for lo, hi in DEFAULT_SHELLS]


def measure(labels: np.ndarray, spacing, names: dict, image: np.ndarray | None = None) -> dict:
    """``{(row, shell): share}`` plus the liver summary's keys, for one ``(z, y, x)`` map."""
    composition = shell_composition(labels, spacing, names, image=image)
    out: dict = {
        (row, shell): sum(composition[shell].get(g, 0.0) for g in groups)
        for row, groups in ROWS.items()
        for shell in SHELLS
    }
    out.update(liver_summary(labels, spacing, names))
    return out


def real_maps(folder: Path) -> dict[str, dict]:
    results = {}
    for key, sub in (("real CT", "totalseg_ct"), ("real MR", "totalseg_mr")):
        path = folder / sub / "organs.nii.gz"
        if not path.is_file():
            continue
        labels, spacing, names = read_label_map(path, folder / sub / "organs.json")
        image, image_spacing = read_canonical(folder / sub / "image.nii.gz")
        if image.shape != labels.shape or not np.allclose(image_spacing, spacing):
            raise ValueError(f"{sub}: image and organ map grids differ")
        results[key] = measure(labels, spacing, names, image)
    return results


def phantoms(n: int, domain_name: str, randomized: str | None, seed: int, max_slices: int):
    from liverwild.phantoms import DOMAINS
    from liverwild.phantoms.generate import generate_case, organ_labels
    from liverwild.phantoms.randomized import case_domain

    names = {v: k for k, v in organ_labels().items()}
    results, seconds = [], []
    for case in range(n):
        domain = case_domain(seed, randomized, case, max_slices) if randomized else DOMAINS[domain_name]
        start = time.perf_counter()
        image, _, tissues = generate_case(domain, seed, case)
        seconds.append(time.perf_counter() - start)
        geometry = image.geometry
        spacing = Reorientation.from_geometry(geometry).canonical_geometry(geometry).spacing
        results.append(measure(tissues, spacing, names))
    return results, seconds


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def table(real: dict[str, dict], cases: list[dict], source: str) -> str:
    def stats(key) -> tuple[float, float]:
        values = np.array([float(c[key]) for c in cases])
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

    ct, mr = real.get("real CT"), real.get("real MR")
    lines = [
        f"| structure | shell | real CT | real MR | {source} (mean ± s.d., n={len(cases)}) "
        "| target: phantom / real CT |",
        "|---|---|---:|---:|---:|---|",
    ]
    for shell in SHELLS:
        for row in ROWS:
            mean, sd = stats((row, shell))
            target = ""
            if row in TARGET_ROWS and shell in TARGET_SHELLS and ct is not None:
                reference = ct[(row, shell)]
                if reference > 0:
                    ratio = mean / reference
                    target = f"{'ok' if 0.5 <= ratio <= 2 else 'MISS'} (×{ratio:.2f})"
                else:
                    target = "n/a (0 in real CT)"
            real_ct = _pct(ct[(row, shell)] if ct else None)
            real_mr = _pct(mr[(row, shell)] if mr else None)
            lines.append(f"| {row} | {shell} | {real_ct} | {real_mr} | {100 * mean:.1f} ± {100 * sd:.1f} | {target} |")
    for key, label in (("volume_ml", "liver volume (ml)"), ("z_extent_mm", "liver z-extent (mm)")):
        mean, sd = stats(key)
        cells = [f"{r[key]:.0f}" if r else "–" for r in (ct, mr)]
        lines.append(f"| {label} | | {cells[0]} | {cells[1]} | {mean:.0f} ± {sd:.0f} | |")
    for key, label in (("touches_top", "liver cut at top slice"), ("touches_bottom", "liver cut at bottom slice")):
        share = np.mean([bool(c[key]) for c in cases])
        cells = [("yes" if r[key] else "no") if r else "–" for r in (ct, mr)]
        lines.append(f"| {label} | | {cells[0]} | {cells[1]} | {100 * share:.0f} % of cases | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_real = os.environ.get("LW_REAL_DATA", str(ROOT.parent / "shared" / "data" / "real"))
    parser.add_argument("--real", type=Path, default=Path(default_real), help="folder of totalseg_ct/, totalseg_mr/")
    parser.add_argument("-n", type=int, default=20, help="phantom cases")
    parser.add_argument("--domain", default="PhantomPortalCT", help="named phantom domain")
    parser.add_argument("--randomized", choices=("CT", "MR"), help="randomized domains instead of --domain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-slices", type=int, default=64, help="randomized domains' slice limit")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) to this file, atomically")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    real = real_maps(args.real)
    if not real:
        print(f"(no real maps in {args.real}: set --real or LW_REAL_DATA)", file=sys.stderr)
    cases, seconds = phantoms(args.n, args.domain, args.randomized, args.seed, args.max_slices)
    source = f"randomized {args.randomized}" if args.randomized else args.domain
    text = table(real, cases, source)
    text += (
        f"\nGeneration: {np.mean(seconds):.2f} s/case (mean of {len(seconds)}, incl. rendering); "
        f"total run {time.perf_counter() - start:.1f} s.\n"
    )
    print(text, end="")
    if args.out:
        from liverwild.atomic import write_text_atomic

        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
