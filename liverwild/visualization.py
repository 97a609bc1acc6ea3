"""Pictures for people: slices with mask outlines (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .io import Reorientation, Volume


def display_window(image: np.ndarray, modality: str = "CT"):
    """Grey-value window (lo, hi): abdomen window for CT, 1st–99th percentile otherwise."""
    if modality == "CT":
        return -160.0, 240.0
    lo, hi = np.percentile(image[image > np.percentile(image, 5)], [1, 99]) if image.size else (0, 1)
    return float(lo), float(hi)


def canonical_views(volume: Volume, mask: np.ndarray | None = None, index=None):
    """Axial, coronal and sagittal 2D slices (radiological layout) and matching mask slices.

    ``index`` = canonical (z, y, x) voxel to cut through; default: the mask's centroid or the centre.
    Returns ``[(name, image2d, mask2d | None, aspect), ...]`` where ``aspect`` is row/column spacing.
    """
    reorient = Reorientation.from_geometry(volume.geometry)
    image = reorient.to_canonical(volume.array)
    m = reorient.to_canonical(mask) if mask is not None else None
    sx, sy, sz = reorient.canonical_geometry(volume.geometry).spacing
    if index is None:
        index = np.argwhere(m).mean(0).astype(int) if m is not None and m.any() else np.array(image.shape) // 2
    k, j, i = (int(v) for v in index)
    views = [
        ("axial", image[k], m[k] if m is not None else None, sy / sx),
        ("coronal", image[::-1, j, :], m[::-1, j, :] if m is not None else None, sz / sx),
        ("sagittal", image[::-1, :, i], m[::-1, :, i] if m is not None else None, sz / sy),
    ]
    return views


def save_figure_atomic(fig, path) -> Path:
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=fig.dpi, bbox_inches="tight")
    return Path(path)


LABEL_COLOURS = ("red", "tab:blue", "tab:green", "gold", "tab:purple", "tab:orange", "cyan", "magenta", "lime")
"""Outline colour of label value k: ``LABEL_COLOURS[(k − 1) % 9]`` (a binary mask is red)."""


def overlay_grid(
    rows, path, title: str | None = None, panel_size: float = 2.6, label_names: dict | None = None
) -> Path:
    """Save a grid of panels. ``rows``: list of (row label, modality, [(name, image, mask, aspect), ...]).

    Masks are drawn as outlines on the grey-value image: red for a binary mask, one colour per label value
    of a label map (:data:`LABEL_COLOURS`; ``label_names``: value → name, shown as a legend).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(len(views) for _, _, views in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(panel_size * n_cols, panel_size * len(rows)), squeeze=False, dpi=100
    )
    for r, (label, modality, views) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(views):
                continue
            name, image, mask, aspect = views[c]
            lo, hi = display_window(image, modality)
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
            if mask is not None and mask.any():
                for value in np.unique(mask[mask > 0]):
                    colour = LABEL_COLOURS[(int(value) - 1) % len(LABEL_COLOURS)]
                    ax.contour((mask == value).astype(float), levels=[0.5], colors=colour, linewidths=0.8)
            ax.set_title(f"{label}\n{name}" if c == 0 else name, fontsize=8)
    if label_names:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([0], [0], color=LABEL_COLOURS[(int(v) - 1) % len(LABEL_COLOURS)], label=name)
            for v, name in sorted(label_names.items())
            if int(v) > 0
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)
