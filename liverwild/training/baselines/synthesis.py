"""SynthSeg-style image synthesis from label maps (Billot et al., MedIA 2023), on 2D slices.

Per item, from the label map of a slice amid its neighbours ``(Z, H, W)`` (the cached volume's slices
around it, ``Z = 1`` when no through-plane step is possible):

1. **background split** — pixels without a label are split into ``background_classes`` classes by
   intensity quantiles of the real slice, the same intensity edges for its neighbours (SynthSeg likewise
   adds automatically found classes for structures without manual labels), so fat, muscle, bone and air
   get their own random contrasts;
2. **spatial** — a nonlinear deformation (a stationary velocity field: 9 × 9 Gaussian vectors of s.d.
   U(0, ``deformation_sd``) px, upsampled cubically, integrated by scaling and squaring at a quarter of
   the size, so it is diffeomorphic and keeps topology; SynthSeg: a 0.04 × size grid, s.d. up to 4
   voxels), then a random affine (rotation ±15°, scale 0.85–1.15, shift ±8 % of the size); nearest
   neighbour, the same map for every slice of the stack and for the liver mask;
3. **contrast** — a Gaussian per class: mean U(0, 1), s.d. U(0, 0.1) (SynthSeg: U(0, 255), U(0, 35));
4. **resolution** — with probability ½ a thick-slice acquisition whose slice axis is one of the three at
   random: *through-plane* (thick axial slices, the common case): slices of thickness
   U(1, ``max_thickness``) cached slices at a random phase, each the mean of the synthetic slices it
   covers (partial volume), interpolated linearly back to the slice (:func:`thick_slice_weights`); or
   an *in-plane* axis (a coronal or sagittal acquisition seen axially): downsampled by U(1.5, 4) and
   interpolated back linearly. Without neighbours the axis is one of the two in-plane ones;
5. **blur** Gaussian σ U(0, 1) px; **bias field** exp of a smooth field (4×4 grid, s.d. U(0, 0.3));
   **gamma** exp(N(0, 0.25)); **noise** Gaussian s.d. U(0, 0.05);
6. **normalisation** — z-score over the slice, as the network's real inputs are z-scored scans.

The target is the liver mask of the middle slice at the cache's resolution (SynthSeg's target is the
high-resolution label map too). Deviation: SynthSeg works on 3D volumes and samples every stage per
volume; here the output is one 2D slice per item, because the baselines train on the cached 224² slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

THICK_SLICE_P = 0.5  # probability of a thick-slice acquisition (any axis)
DEFORMATION_GRID = 9  # velocity-field control points per side: SynthSeg's 0.04 × size (224 · 0.04 ≈ 9)
SQUARINGS = 6  # scaling and squaring steps (the field is divided by 2⁶ and composed with itself 6 times)
INTEGRATION_SCALE = 4  # the field is integrated at a quarter of the slice size (it is smooth at that scale)


def split_background(labels: np.ndarray, image: np.ndarray, n_classes: int, edges=None) -> np.ndarray:
    """Label map (any shape, e.g. ``(H, W)`` or a stack ``(Z, H, W)``) with its zero pixels split into
    ``n_classes`` intensity classes of ``image`` (same shape) by ``edges`` (``n_classes − 1`` increasing
    intensities; default: the quantiles of ``image``'s unlabelled pixels), new values above the existing
    ones. Returns int32."""
    out = labels.astype(np.int32)
    background = out == 0
    if n_classes <= 1 or not background.any():
        return out
    if edges is None:
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


def velocity_displacement(shape, rng: np.random.Generator, sd: float) -> np.ndarray:
    """Displacement ``(2, H, W)`` in pixels of a diffeomorphism: a stationary velocity field of
    :data:`DEFORMATION_GRID`² Gaussian vectors (s.d. ``sd`` px), upsampled cubically to a quarter of the
    size, integrated there by :data:`SQUARINGS` steps of scaling and squaring, then upsampled linearly.
    Zero when ``sd`` ≤ 0."""
    if sd <= 0:
        return np.zeros((2, *shape))
    coarse = rng.normal(0, sd, size=(2, DEFORMATION_GRID, DEFORMATION_GRID))
    small = tuple(max(n // INTEGRATION_SCALE, DEFORMATION_GRID) for n in shape)
    scale = np.array([shape[0] / small[0], shape[1] / small[1]])  # pixels per integration-grid pixel
    zoom = (small[0] / DEFORMATION_GRID, small[1] / DEFORMATION_GRID)
    field = np.stack([ndimage.zoom(c, zoom, order=3)[: small[0], : small[1]] / s for c, s in zip(coarse, scale)])
    field /= 2**SQUARINGS
    grid = np.indices(small, dtype=np.float64)
    for _ in range(SQUARINGS):  # φ ← φ ∘ φ: d(x) + d(x + d(x))
        field = field + np.stack([ndimage.map_coordinates(c, grid + field, order=1, mode="nearest") for c in field])
    up = (shape[0] / small[0], shape[1] / small[1])
    return np.stack([ndimage.zoom(c, up, order=1)[: shape[0], : shape[1]] * s for c, s in zip(field, scale)])


def spatial_map(shape, rng: np.random.Generator, deformation_sd: float) -> np.ndarray:
    """Input coordinates ``(2, H, W)`` of every output pixel: the nonlinear deformation (s.d. drawn from
    U(0, ``deformation_sd``) px), then the random affine."""
    matrix, offset = random_affine(shape, rng)
    sd = rng.uniform(0, deformation_sd) if deformation_sd > 0 else 0.0
    points = np.indices(shape, dtype=np.float64) + velocity_displacement(shape, rng, sd)
    return np.einsum("ij,jhw->ihw", matrix, points) + offset[:, None, None]


def warp_nearest(stack: np.ndarray, coords: np.ndarray, fill: int | None = None) -> np.ndarray:
    """``stack`` ``(..., H, W)`` sampled at the nearest pixel of ``coords`` ``(2, H, W)``; outside the
    image the nearest edge pixel (``fill=None``) or ``fill``."""
    h, w = stack.shape[-2:]
    y, x = np.rint(coords).astype(np.intp)
    out = stack[..., np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]
    if fill is not None:
        out[..., (y < 0) | (y >= h) | (x < 0) | (x >= w)] = fill
    return out


def through_plane_half_width(max_thickness: float) -> int:
    """Neighbours needed on each side for thick slices up to ``max_thickness`` cached slices (0 if ≤ 1)."""
    return int(np.ceil(1.5 * max_thickness + 0.5)) if max_thickness > 1 else 0


def thick_slice_weights(thickness: float, phase: float, half: int) -> np.ndarray:
    """Weights ``(2 · half + 1,)`` of the slices at offsets −half … half (in cached slices) that make the
    middle slice of a thick-slice acquisition: slices of width ``thickness`` centred at ``phase`` + j ·
    ``thickness`` (``phase`` in [0, thickness)), each the mean over its width (box profile: partial
    volume), interpolated linearly back to offset 0. Sum 1 when ``half`` ≥ 1.5 · thickness + 0.5."""
    k = np.arange(-half, half + 1, dtype=np.float64)
    below = phase - thickness * np.ceil(phase / thickness)  # the acquired centre at or below offset 0
    f = -below / thickness  # linear interpolation weight of the centre above

    def box(c: float) -> np.ndarray:
        overlap = np.minimum(k + 0.5, c + thickness / 2) - np.maximum(k - 0.5, c - thickness / 2)
        return np.clip(overlap, 0, None) / thickness

    return (1 - f) * box(below) + f * box(below + thickness)


def synthesize(
    labels: np.ndarray,
    liver: np.ndarray,
    image: np.ndarray,
    rng: np.random.Generator,
    background_classes: int = 4,
    max_thickness: float = 1.0,
    deformation_sd: float = 3.5,
) -> tuple:
    """One synthetic slice: ``(image (H, W) float32 z-scored, liver (H, W) uint8)``.

    ``labels``: the label map ``(H, W)``, or a stack ``(Z, H, W)`` (Z odd) of the slice (middle) amid its
    neighbours; ``image``: the real slice(s), same shape, used only to split the background; ``liver``:
    the middle slice's liver mask; ``max_thickness``: thickest through-plane slice in cached slices (the
    stack must hold :func:`through_plane_half_width` neighbours a side; ≤ 1: none); ``deformation_sd``:
    largest s.d. of the velocity field in pixels (0: affine only)."""
    stack = labels[None] if labels.ndim == 2 else labels
    images = image[None] if image.ndim == 2 else image
    depth, shape = stack.shape[0], stack.shape[1:]
    centre = depth // 2
    coords = spatial_map(shape, rng, deformation_sd)
    liver = warp_nearest(liver.astype(np.uint8), coords, fill=0)
    weights, in_plane = np.eye(depth)[centre], None
    if rng.random() < THICK_SLICE_P:
        axes = [0, 1] + ([2] if max_thickness > 1 and centre > 0 else [])
        axis = axes[int(rng.integers(len(axes)))]
        if axis == 2:
            thickness = rng.uniform(1, max_thickness)
            weights = thick_slice_weights(thickness, rng.uniform(0, thickness), centre)
            weights /= weights.sum()
        else:
            in_plane = (axis, rng.uniform(1.5, 4))
    used = np.flatnonzero(weights > 0)
    edges = None  # the middle slice's background quantiles split every slice alike
    if background_classes > 1 and (stack[centre] == 0).any():
        reference = images[centre][stack[centre] == 0]
        edges = np.quantile(reference, np.linspace(0, 1, background_classes + 1)[1:-1])
    classes = warp_nearest(split_background(stack[used], images[used], background_classes, edges), coords)
    values, ids = np.unique(classes, return_inverse=True)
    ids = ids.reshape(classes.shape)
    means = rng.uniform(0, 1, size=len(values))
    sds = rng.uniform(0, 0.1, size=len(values))
    out = np.tensordot(weights[used], means[ids] + sds[ids] * rng.standard_normal(classes.shape), axes=1)
    if in_plane is not None:
        zoom = [1.0, 1.0]
        zoom[in_plane[0]] = 1 / in_plane[1]
        low = ndimage.zoom(out, zoom, order=1)
        out = ndimage.zoom(low, (shape[0] / low.shape[0], shape[1] / low.shape[1]), order=1)[: shape[0], : shape[1]]
    out = ndimage.gaussian_filter(out, rng.uniform(0, 1))
    out = out * np.exp(smooth_field(shape, rng, sd=rng.uniform(0, 0.3)))
    low, high = out.min(), out.max()
    out = ((out - low) / max(high - low, 1e-6)) ** np.exp(rng.normal(0, 0.25))
    out = out + rng.normal(0, rng.uniform(0, 0.05), size=shape)
    out = (out - out.mean()) / max(float(out.std()), 1e-6)
    return out.astype(np.float32), (liver > 0).astype(np.uint8)
