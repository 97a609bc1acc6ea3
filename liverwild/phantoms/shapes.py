"""Shape primitives of the phantom anatomy: the canonical grid, deformed ellipsoids, tubes, and the
two-layer canvas they are painted on.

Coordinates are millimetres in patient space (x towards the patient's left, y posterior, z superior);
arrays are ``(z, y, x)``. Every shape is evaluated inside its own bounding box only, which keeps a
whole abdomen fast to paint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Grid:
    """Voxel centres of a canonical grid: 1-D coordinate vectors in mm (array axes z, y, x)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self):
        return (len(self.z), len(self.y), len(self.x))

    @property
    def spacing_zyx(self) -> tuple:
        """Voxel size (mm) along z, y, x (1 where an axis has a single voxel)."""
        return tuple(float(abs(c[1] - c[0])) if len(c) > 1 else 1.0 for c in (self.z, self.y, self.x))

    def box(self, lo, hi):
        """Index slices ``(sz, sy, sx)`` covering the physical box [lo, hi] (xyz, mm), or None if empty."""
        out = []
        for axis, coords in zip((2, 1, 0), (self.z, self.y, self.x)):
            a, b = np.searchsorted(coords, lo[axis]), np.searchsorted(coords, hi[axis], side="right")
            if b <= a:
                return None
            out.append(slice(int(a), int(b)))
        return tuple(out)

    def coords(self, box):
        """Broadcastable (Z, Y, X) coordinate arrays for an index box."""
        sz, sy, sx = box
        return (
            self.z[sz][:, None, None].astype(np.float32),
            self.y[sy][None, :, None].astype(np.float32),
            self.x[sx][None, None, :].astype(np.float32),
        )


Condition = Callable[[tuple, np.ndarray, np.ndarray, np.ndarray], "np.ndarray | bool"]
"""``condition(box, z, y, x)`` → where inside ``box`` a shape may be painted (broadcastable bool)."""


class Canvas:
    """The two layers a phantom is painted in, on one grid (uint8, ``(z, y, x)``).

    ``organs`` names the structure every voxel belongs to (the organ map, ``labelsTr_organs``);
    ``content`` is non-zero where a lumen holds something that looks different from its wall (fluid,
    gas, stool, oral contrast): the image renders ``content`` where it is set, ``organs`` elsewhere.
    Painting a structure clears the content below it, so the two layers never disagree.
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        self.organs = np.zeros(grid.shape, np.uint8)
        self.content = np.zeros(grid.shape, np.uint8)

    def put(self, box, keep: np.ndarray, code: int, content: int = 0) -> None:
        """Paint ``code`` (and ``content``, 0 = none) where ``keep`` inside ``box``."""
        self.organs[box][keep] = code
        self.content[box][keep] = content

    def extend(self, box, keep: np.ndarray, code: int) -> None:
        """Paint ``code`` where ``keep``, clearing the content only of voxels that were not ``code``
        already (a tube's overlapping segments keep each other's lumen)."""
        organs, content = self.organs[box], self.content[box]
        content[keep & (organs != code)] = 0
        organs[keep] = code

    def fill_content(self, box, keep: np.ndarray, content: int) -> None:
        """Set only the content layer where ``keep`` inside ``box`` (a lumen's fluid, gas, ...)."""
        self.content[box][keep] = content

    def appearance(self) -> np.ndarray:
        """The tissue that renders at every voxel: content where set, the structure elsewhere."""
        return np.where(self.content > 0, self.content, self.organs)


def random_waves(rng, n=3, amplitude=0.12, frequency=(1.5, 3.0)):
    """``n`` random surface waves (amplitude, ω (3,), phase) of a :class:`Blob`."""
    waves = []
    for _ in range(n):
        omega = rng.normal(size=3)
        omega *= rng.uniform(*frequency) / np.linalg.norm(omega)
        waves.append((rng.uniform(0.4, 1.0) * amplitude, omega, rng.uniform(0, 2 * np.pi)))
    return tuple(waves)


@dataclass
class Blob:
    """A deformed, rotated ellipsoid: inside where |q|² < 1 + Σ a·sin(ω·q + φ), q = R(p − c)/r."""

    center: np.ndarray  # (3,) mm
    radii: np.ndarray  # (3,) mm
    angle: float = 0.0  # rotation about z, radians
    waves: tuple = ()  # ((amplitude, ω (3,), phase), ...)
    taper: float = 0.0  # in-plane shrink towards the inferior end (0 = none)
    drift: float = 0.0  # x shift (mm) of the cross-section at the inferior end

    def bounds(self, margin=1.35):
        r = np.max(self.radii) * margin
        extent = np.array([r + abs(self.drift), r + abs(self.drift), self.radii[2] * margin])
        return self.center - extent, self.center + extent

    def mask(self, grid: Grid):
        """(box, boolean mask inside the box) or (None, None) if the blob misses the grid."""
        box = grid.box(*self.bounds())
        if box is None:
            return None, None
        return box, self.inside(*grid.coords(box))

    def inside(self, z, y, x) -> np.ndarray:
        """Boolean: which of the broadcast points (mm) lie inside the blob."""
        (cx, cy, cz), (rx, ry, rz) = (float(v) for v in self.center), (float(v) for v in self.radii)
        qz = (z - cz) / rz
        c, s = float(np.cos(self.angle)), float(np.sin(self.angle))
        if self.taper or self.drift:
            below = np.clip(-qz, 0.0, 1.0)  # 0 at the centre, 1 at the inferior end
            shrink = 1.0 - self.taper * below
            dx = x - cx + self.drift * below
            qx = (c * dx + s * (y - cy)) / (rx * shrink)
            qy = (-s * dx + c * (y - cy)) / (ry * shrink)
        else:
            qx = (c * (x - cx) + s * (y - cy)) / rx
            qy = (-s * (x - cx) + c * (y - cy)) / ry
        level = 1.0
        for amplitude, omega, phase in self.waves:
            level = level + float(amplitude) * np.sin(
                float(omega[0]) * qx + float(omega[1]) * qy + float(omega[2]) * qz + float(phase)
            )
        return (qx * qx + qy * qy + qz * qz) < level


def segment_distance(z, y, x, a, b, with_t: bool = False):
    """Distance (mm) from points to the segment a→b (xyz, mm), broadcasting over the grids; with
    ``with_t`` also the position along the segment (0 at a, 1 at b) of the nearest point."""
    (ax, ay, az), (bx, by, bz) = (float(v) for v in a), (float(v) for v in b)
    ux, uy, uz = bx - ax, by - ay, bz - az
    dx, dy, dz = x - ax, y - ay, z - az
    t = np.clip((dx * ux + dy * uy + dz * uz) / max(ux * ux + uy * uy + uz * uz, 1e-6), 0.0, 1.0)
    d = np.sqrt((dx - t * ux) ** 2 + (dy - t * uy) ** 2 + (dz - t * uz) ** 2)
    return (d, t) if with_t else d


def smooth_path(points: np.ndarray, step: float) -> np.ndarray:
    """Catmull-Rom spline through control points ``(n, 3)`` (mm), resampled about every ``step`` mm."""
    points = np.asarray(points, np.float64)
    if len(points) < 3:
        return points
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out = [points[0]]
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1 : i + 3]
        n = max(1, int(np.ceil(np.linalg.norm(p2 - p1) / step)))
        for t in np.arange(1, n + 1) / n:
            t2, t3 = t * t, t * t * t
            out.append(
                0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (3 * p1 - p0 - 3 * p2 + p3) * t3)
            )
    return np.array(out)


@dataclass
class Tube:
    """A hollow tube along a polyline: wall of ``code``, lumen filled per point with a content code.

    ``points`` (n, 3) mm; ``radii`` (n,) outer radius in mm; ``contents`` (n,) tissue code of the lumen
    near each point (0: the lumen looks like the wall, as for a collapsed loop); ``wall`` mm.
    """

    points: np.ndarray
    radii: np.ndarray
    code: int
    contents: np.ndarray
    wall: float = 2.5
    bubbles: list = field(default_factory=list)  # [(centre (3,), radius mm, content code)] in the lumen

    @classmethod
    def along(cls, control, radii, code, contents, wall=2.5, step=10.0):
        """A tube through ``control`` points (Catmull-Rom), radii and contents interpolated per point."""
        control = np.asarray(control, float)
        path = smooth_path(control, step)
        s_control = np.r_[0, np.cumsum(np.linalg.norm(np.diff(control, axis=0), axis=1))]
        s_path = np.r_[0, np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))]
        s_path *= s_control[-1] / max(s_path[-1], 1e-6)
        r = np.interp(s_path, s_control, np.asarray(radii, float))
        nearest = np.clip(np.searchsorted(s_control, s_path, side="right") - 1, 0, len(control) - 1)
        return cls(path, r, code, np.asarray(contents)[nearest], wall)

    def paint(self, canvas: Canvas, condition: Condition | None = None) -> None:
        """Paint wall and lumen segment by segment (capsules), each inside its own box."""
        grid = canvas.grid
        for i in range(len(self.points) - 1):
            a, b = self.points[i], self.points[i + 1]
            r = float(max(self.radii[i], self.radii[i + 1]))
            box = grid.box(np.minimum(a, b) - r, np.maximum(a, b) + r)
            if box is None:
                continue
            z, y, x = grid.coords(box)
            d, t = segment_distance(z, y, x, a, b, with_t=True)
            radius = self.radii[i] + (self.radii[i + 1] - self.radii[i]) * t
            keep = d < radius
            if condition is not None:
                keep &= condition(box, z, y, x)
            if not keep.any():
                continue
            content = int(self.contents[i])
            canvas.extend(box, keep, self.code)
            if content:
                canvas.fill_content(box, keep & (d < radius - self.wall), content)
        for centre, radius, code in self.bubbles:
            bubble = Blob(np.asarray(centre), np.full(3, radius))
            box, inside = bubble.mask(grid)
            if box is not None:
                lumen = canvas.content[box] > 0
                canvas.fill_content(box, inside & lumen & (canvas.organs[box] == self.code), code)
