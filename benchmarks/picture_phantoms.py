"""Pictures for documentation/phantoms.md: phantoms beside a real scan (axial and coronal through the
liver, liver outlined in red). Run it from a checkout of the generator to picture (no assertions)::

    python benchmarks/picture_phantoms.py --real ../shared/data/real -o documentation/images/phantoms_v2.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from liverwild.io import Reorientation, read_image  # noqa: E402
from liverwild.phantoms import DOMAINS, generate_case  # noqa: E402


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
    args = p.parse_args()
    rows = []
    real = Path(args.real)
    for scan, modality in (("totalseg_ct", "CT"), ("totalseg_mr", "MR")):
        if (real / scan / "image.nii.gz").exists():
            image, label = read_image(real / scan / "image.nii.gz"), read_image(real / scan / "liver.nii.gz")
            rows.append((f"real {scan}", modality, views(image, label)))
    for name in ("PhantomPortalCT", "PhantomNativeCT", "PhantomT2MR"):
        for case in (0, 1):
            image, label, _ = generate_case(DOMAINS[name], args.seed, case)
            rows.append((f"{name} case {case}", DOMAINS[name].modality, views(image, label)))
    fig, axes = plt.subplots(2, len(rows), figsize=(2.6 * len(rows), 5.6))
    for column, (title, modality, panels) in zip(axes.T, rows):
        for ax, (image, mask, aspect) in zip(column, panels):
            lo, hi = (-160, 240) if modality == "CT" else np.percentile(image, [1, 99.5])
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
            ax.contour(mask, [0.5], colors="red", linewidths=0.6)
            ax.axis("off")
        column[0].set_title(title, fontsize=8)
    fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
