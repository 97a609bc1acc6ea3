"""Image geometry: the four things that place voxels in patient space.

Conventions (those of SimpleITK/ITK and DICOM):

- ``size``, ``spacing`` and ``origin`` are in (x, y, z) index order; spacing and origin in millimetres.
- ``direction`` is the 3×3 matrix, row-major, whose *columns* are the unit vectors of the index
  axes i, j, k in physical LPS space (x → patient left, y → posterior, z → superior).
- Arrays are NumPy ``(z, y, x)``, as ``SimpleITK.GetArrayFromImage`` returns them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Geometry:
    size: tuple  # (nx, ny, nz) voxels
    spacing: tuple  # (sx, sy, sz) mm
    origin: tuple  # (ox, oy, oz) mm, LPS position of voxel (0, 0, 0)
    direction: tuple  # 9 floats, row-major; columns are index-axis directions

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Geometry:
        return cls(
            tuple(int(v) for v in image.GetSize()),
            tuple(float(v) for v in image.GetSpacing()),
            tuple(float(v) for v in image.GetOrigin()),
            tuple(float(v) for v in image.GetDirection()),
        )

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(
            tuple(int(v) for v in d["size"]),
            tuple(float(v) for v in d["spacing"]),
            tuple(float(v) for v in d["origin"]),
            tuple(float(v) for v in d["direction"]),
        )

    def to_dict(self) -> dict:
        return {
            "size": list(self.size),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @property
    def shape(self) -> tuple:
        """NumPy array shape ``(nz, ny, nx)``."""
        return tuple(reversed(self.size))

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Stamp this geometry's spacing, origin and direction on ``image`` (sizes must agree)."""
        if tuple(image.GetSize()) != self.size:
            raise ValueError(f"image size {image.GetSize()} does not match geometry size {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def index_to_physical(self, index_xyz) -> np.ndarray:
        """Physical LPS position (mm) of continuous index ``(i, j, k)``; accepts (..., 3) arrays."""
        index = np.asarray(index_xyz, dtype=float)
        return np.asarray(self.origin) + (index * np.asarray(self.spacing)) @ self.direction_matrix.T

    def differences(
        self, other: Geometry, spacing_tol: float = 1e-4, origin_tol: float = 1e-3, direction_tol: float = 1e-4
    ) -> list:
        """Human-readable list of what differs from ``other`` (empty when the grids agree).

        Tolerances are relative for spacing, in mm for origin and absolute for direction cosines,
        loose enough to absorb the float32 rounding of NIfTI headers.
        """
        problems = []
        if self.size != other.size:
            problems.append(f"size {self.size} vs {other.size}")
        if not np.allclose(self.spacing, other.spacing, rtol=spacing_tol, atol=0):
            problems.append(f"spacing {_fmt(self.spacing)} vs {_fmt(other.spacing)}")
        if not np.allclose(self.origin, other.origin, rtol=0, atol=origin_tol):
            problems.append(f"origin {_fmt(self.origin)} vs {_fmt(other.origin)}")
        if not np.allclose(self.direction, other.direction, rtol=0, atol=direction_tol):
            problems.append(f"direction {_fmt(self.direction)} vs {_fmt(other.direction)}")
        return problems

    def orientation_code(self) -> str:
        """Three letters naming where each index axis points, e.g. 'LPS' or 'RAS' (closest axis)."""
        letters = (("R", "L"), ("A", "P"), ("I", "S"))
        d = self.direction_matrix
        code = ""
        for axis in range(3):
            column = d[:, axis]
            p = int(np.argmax(np.abs(column)))
            code += letters[p][1 if column[p] > 0 else 0]
        return code


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
