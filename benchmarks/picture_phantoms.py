"""Pictures for documentation/phantoms.md: phantoms beside a real scan (axial and coronal through the
liver, liver outlined in red). Run it from a checkout of the generator to picture (no assertions)::

    python benchmarks/picture_phantoms.py --real ../shared/data/real -o documentation/images/phantoms_v2.png
    python benchmarks/picture_phantoms.py --real ../shared/data/real --label-maps \
        -o documentation/images/phantoms_from_label_maps.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from liverwild.io import Reorientation, read_image
from liverwild.phantoms import DOMAINS, generate_case


def views(image, label):
    """Canonical axial (at the liver's centroid) and coronal slices, with their aspect ratios."""
    r = Reorientation.from_geometry(image.geometry)
    im, lb = r.to_canonical(image.array).astype(np.float32), r.to_canonical(label.array) > 0
    sx, sy, sz = r.canonical_geometry(image.geometry).spacing
    k, j, _ = np.argwhere(lb).mean(0).astype(int)
    return [(im[k], lb[k], sy / sx), (im[::-1, j], lb[::-1, j], sz / sx)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", default=os.environ.get("LW_REAL_DATA", "../shared/data/real"))
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-maps", action="store_true", help="real scans beside scans rendered from their maps")
    args = p.parse_args()
    rows = label_map_rows(Path(args.real), args.seed) if args.label_maps else phantom_rows(Path(args.real), args.seed)
    draw(rows, args.out, args.title)


def label_map_rows(real: Path, seed: int) -> list:
    """Each real scan, then synthetic CT and MR rendered from its organ map."""
    from liverwild.io import read_label
    from liverwild.phantoms.labelmaps import find_label_maps, synthesize

    rows = []
    for item in find_label_maps(real):
        scan = item.path.parent.name
        modality = "MR" if "mr" in scan else "CT"
        image, label = read_image(real / scan / "image.nii.gz"), read_image(real / scan / "liver.nii.gz")
        rows.append((f"real {scan}", modality, views(image, label)))
        for synthetic in ("CT", "MR"):
            image, label, _ = synthesize(read_label(item.path), item.names, synthetic, np.random.default_rng(seed))
            rows.append((f"{synthetic} from its map", synthetic, views(image, label)))
    return rows


def phantom_rows(real: Path, seed: int) -> list:
    """The real development scans, then two cases of three named domains."""
    rows = []
    for scan, modality in (("totalseg_ct", "CT"), ("totalseg_mr", "MR")):
        if (real / scan / "image.nii.gz").exists():
            image, label = read_image(real / scan / "image.nii.gz"), read_image(real / scan / "liver.nii.gz")
            rows.append((f"real {scan}", modality, views(image, label)))
    for name in ("PhantomPortalCT", "PhantomNativeCT", "PhantomT2MR"):
        for case in (0, 1):
            image, label, _ = generate_case(DOMAINS[name], seed, case)
            rows.append((f"{name} case {case}", DOMAINS[name].modality, views(image, label)))
    return rows


def draw(rows: list, out: str, title: str) -> None:
    """One column per row entry: axial above coronal, liver outlined in red."""
    fig, axes = plt.subplots(2, len(rows), figsize=(2.6 * len(rows), 5.6))
    for column, (name, modality, panels) in zip(axes.T, rows):
        for ax, (image, mask, aspect) in zip(column, panels):
            lo, hi = (-160, 240) if modality == "CT" else np.percentile(image, [1, 99.5])
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
            ax.contour(mask, [0.5], colors="red", linewidths=0.6)
            ax.axis("off")
        column[0].set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
