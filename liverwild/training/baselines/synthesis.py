"""SynthSeg-style image synthesis from label maps (Billot et al., MedIA 2023), on 2D slices.

Per item, from a label map ``(H, W)``:

1. **background split** — pixels without a label are split into ``background_classes`` classes by
   intensity quantiles of the real slice (SynthSeg likewise adds automatically found classes for
   structures without manual labels), so fat, muscle, bone and air get their own random contrasts;
2. **spatial** — a random affine (rotation ±15°, scale 0.85–1.15, shift ±8 % of the size), nearest
   neighbour, applied identically to the label map and the liver mask;
3. **contrast** — a Gaussian per class: mean U(0, 1), s.d. U(0, 0.1) (SynthSeg: U(0, 255), U(0, 35));
4. **resolution** — with probability ½ a thick-slice acquisition along a random in-plane axis:
   downsampled by a factor U(1.5, 4) and interpolated back linearly;
5. **blur** Gaussian σ U(0, 1) px; **bias field** exp of a smooth field (4×4 grid, s.d. U(0, 0.3));
   **gamma** exp(N(0, 0.25)); **noise** Gaussian s.d. U(0, 0.05);
6. **normalisation** — z-score over the slice, as the network's real inputs are z-scored scans.

Deviation: SynthSeg works on 3D volumes and samples every stage per volume; here every stage is 2D
and per slice, because the baselines train on the cached 224² slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def split_background(labels: np.ndarray, image: np.ndarray, n_classes: int) -> np.ndarray:
    """Label map with its zero pixels split into ``n_classes`` intensity-quantile classes (new values
    above the existing ones). Returns int32 ``(H, W)``."""
    out = labels.astype(np.int32)
    background = out == 0
    if n_classes <= 1 or not background.any():
        return out
    edges = np.quantile(image[background], np.linspace(0, 1, n_classes + 1)[1:-1])
    out[background] = int(out.max()) + 1 + np.searchsorted(edges, image[background])
    return out


def random_affine(shape, rng: np.random.Generator) -> tuple:
    """``(matrix (2, 2), offset (2,))`` mapping output to input coordinates (scipy's convention)."""
    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(0.85, 1.15, size=2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation / scale
    centre = (np.asarray(shape) - 1) / 2
    shift = rng.uniform(-0.08, 0.08, size=2) * np.asarray(shape)
    return matrix, centre - matrix @ centre + shift


def smooth_field(shape, rng: np.random.Generator, grid: int = 4, sd: float = 1.0) -> np.ndarray:
    coarse = rng.normal(0, sd, size=(grid, grid))
    return ndimage.zoom(coarse, (shape[0] / grid, shape[1] / grid), order=3)[: shape[0], : shape[1]]


def synthesize(
    labels: np.ndarray, liver: np.ndarray, image: np.ndarray, rng: np.random.Generator, background_classes: int = 4
) -> tuple:
    """One synthetic slice: ``(image (H, W) float32 z-scored, liver (H, W) uint8)`` from a label map,
    the liver mask and the real slice (used only to split the background)."""
    shape = labels.shape
    classes = split_background(labels, image, background_classes)
    matrix, offset = random_affine(shape, rng)
    classes = ndimage.affine_transform(classes, matrix, offset, order=0, mode="nearest")
    liver = ndimage.affine_transform(liver.astype(np.uint8), matrix, offset, order=0, mode="constant")
    values, ids = np.unique(classes, return_inverse=True)
    ids = ids.reshape(shape)
    means = rng.uniform(0, 1, size=len(values))
    sds = rng.uniform(0, 0.1, size=len(values))
    out = means[ids] + sds[ids] * rng.standard_normal(shape)
    if rng.random() < 0.5:
        axis = int(rng.integers(2))
        factor = rng.uniform(1.5, 4)
        zoom = [1.0, 1.0]
        zoom[axis] = 1 / factor
        low = ndimage.zoom(out, zoom, order=1)
        out = ndimage.zoom(low, (shape[0] / low.shape[0], shape[1] / low.shape[1]), order=1)[: shape[0], : shape[1]]
    out = ndimage.gaussian_filter(out, rng.uniform(0, 1))
    out = out * np.exp(smooth_field(shape, rng, sd=rng.uniform(0, 0.3)))
    low, high = out.min(), out.max()
    out = ((out - low) / max(high - low, 1e-6)) ** np.exp(rng.normal(0, 0.25))
    out = out + rng.normal(0, rng.uniform(0, 0.05), size=shape)
    out = (out - out.mean()) / max(float(out.std()), 1e-6)
    return out.astype(np.float32), (liver > 0).astype(np.uint8)
