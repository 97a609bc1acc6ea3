"""Exact, invertible reorientation between stored arrays and one canonical axial layout.

The canonical layout is LPS-aligned: array axes ``(z, y, x)`` run towards superior, posterior and
patient-left. An axial slice ``canonical[k]`` therefore shows the patient in the radiological
convention (anterior at the top row, patient's right on the left of the image), whatever order and
sign the scanner stored the axes in. Only axis permutations and flips are applied, so the mapping is
lossless and :meth:`Reorientation.from_canonical` undoes :meth:`Reorientation.to_canonical` exactly.
For oblique scans each index axis is assigned to the physical axis it is closest to, one each (the assignment
with the largest cosines, also for doubly oblique grids where two axes are nearest the same one).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from .geometry import Geometry


@dataclass(frozen=True)
class Reorientation:
    """Permutation and flips from a stored array to the canonical layout.

    ``order[c]`` is the stored NumPy axis that becomes canonical NumPy axis ``c``; ``flip[c]`` says
    whether canonical axis ``c`` is reversed after the transpose.
    """

    order: tuple
    flip: tuple

    @classmethod
    def from_geometry(cls, geometry: Geometry) -> Reorientation:
        d = geometry.direction_matrix
        # each index axis to the patient axis nearest it, one each: the assignment with the largest cosines
        # (for a grid near the axes, each column's largest; also at 45°, where two columns tie on one axis)
        physical_of_index = max(permutations(range(3)), key=lambda p: sum(abs(d[p[a], a]) for a in range(3)))
        order = [0, 0, 0]
        flip = [False, False, False]
        for a, p in enumerate(physical_of_index):
            order[2 - p] = 2 - a  # numpy axis of index axis a is 2 - a
            flip[2 - p] = bool(d[p, a] < 0)
        return cls(tuple(order), tuple(flip))

    @property
    def is_identity(self) -> bool:
        return self.order == (0, 1, 2) and not any(self.flip)

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """Stored ``(…, nz, ny, nx)`` array → canonical view (a view, not a copy, when possible)."""
        lead = array.ndim - 3
        out = np.transpose(array, tuple(range(lead)) + tuple(lead + o for o in self.order))
        for c, f in enumerate(self.flip):
            if f:
                out = np.flip(out, axis=lead + c)
        return out

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_canonical`: canonical array → the stored layout."""
        lead = array.ndim - 3
        out = array
        for c, f in enumerate(self.flip):
            if f:
                out = np.flip(out, axis=lead + c)
        inverse = np.argsort(self.order)
        return np.transpose(out, tuple(range(lead)) + tuple(lead + int(o) for o in inverse))

    def canonical_geometry(self, geometry: Geometry) -> Geometry:
        """Geometry of the canonical array: same voxels in space, axes along +x, +y, +z."""
        d = geometry.direction_matrix
        size = np.asarray(geometry.size)
        spacing = np.asarray(geometry.spacing)
        new_size, new_spacing, new_dir = [0] * 3, [0.0] * 3, np.zeros((3, 3))
        corner = np.zeros(3)  # stored index of the canonical (0, 0, 0) voxel
        for c in range(3):  # canonical numpy axis c ↔ canonical index axis 2 - c
            a = 2 - self.order[c]  # stored index axis
            new_size[2 - c] = int(size[a])
            new_spacing[2 - c] = float(spacing[a])
            sign = -1.0 if self.flip[c] else 1.0
            new_dir[:, 2 - c] = sign * d[:, a]
            corner[a] = size[a] - 1 if self.flip[c] else 0
        origin = geometry.index_to_physical(corner)
        return Geometry(
            tuple(new_size),
            tuple(new_spacing),
            tuple(float(v) for v in origin),
            tuple(float(v) + 0.0 for v in new_dir.reshape(-1)),
        )


def stored_geometry(canonical: Geometry, direction) -> Geometry:
    """Geometry of the same voxel grid stored with another axis-aligned ``direction``.

    ``canonical`` must have a (near) identity direction; ``direction`` is a signed permutation
    (9 values, row-major). Used to write phantoms in LPS, RAS or any flipped/permuted layout:
    the stored array is ``Reorientation.from_geometry(result).from_canonical(canonical_array)``.
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    size, spacing, new_size, new_spacing = canonical.size, canonical.spacing, [0] * 3, [0.0] * 3
    corner = np.zeros(3)  # canonical index of stored voxel (0, 0, 0)
    for a in range(3):
        p = int(np.argmax(np.abs(d[:, a])))
        new_size[a], new_spacing[a] = size[p], spacing[p]
        if d[p, a] < 0:
            corner[p] = size[p] - 1
    origin = canonical.index_to_physical(corner)
    return Geometry(
        tuple(new_size),
        tuple(new_spacing),
        tuple(float(v) for v in origin),
        tuple(float(v) + 0.0 for v in d.reshape(-1)),
    )
