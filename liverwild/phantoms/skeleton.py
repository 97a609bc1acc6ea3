"""The phantom's skeleton and the muscles that ride on it: spine, ribs and costal cartilage, pelvis.

Painted after the soft organs (bone wins). Coordinates in mm: x to the patient's left, y posterior,
z superior; ``theta = atan2(y, x)`` is −π/2 straight anterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import Canvas
from .tissues import Tissue


@dataclass
class Skeleton:
    """Spine with discs and canal, ribs open anteriorly and joined by costal cartilage, iliac wings,
    sacrum; drawn once per patient."""

    vert_y: float  # centre of the vertebral bodies (y)
    vert_r: float
    disc_phase: float  # z offset of the 32 mm disc pattern
    rib_phase: float
    rib_slope: float
    rib_top: float  # z above which ribs exist (the lowest ribs' level)
    costal_z: float  # z of the costal margin in the midline (xiphoid)
    crest_z: float  # z of the iliac crests
    pelvis_a: float  # half-width of the iliac wings' arc

    @classmethod
    def draw(cls, rng, b: float, a: float, rib_top: float, liver_bottom: float) -> Skeleton:
        u = rng.uniform
        return cls(
            vert_y=0.45 * b,
            vert_r=u(15, 20),
            disc_phase=u(0, 32),
            rib_phase=u(0, 28),
            rib_slope=u(0.25, 0.45),
            rib_top=rib_top,
            costal_z=u(-90, -50),
            crest_z=min(liver_bottom - u(60, 110), -u(240, 290)),
            pelvis_a=u(0.62, 0.78) * a,
        )

    def paint(self, canvas: Canvas, body2d, rho, ring_inner, ring_outer) -> None:
        """Spine and pelvis through every slice they reach; ribs and cartilage in the wall ring.

        ``body2d`` (ny, nx) is the body's cross-section, ``rho`` the normalised body radius,
        ``ring_inner``/``ring_outer`` the normalised radii between which ribs run.
        """
        grid = canvas.grid
        t = canvas.organs
        Y, X = grid.y[:, None].astype(np.float32), grid.x[None, :].astype(np.float32)
        Z = grid.z[:, None, None].astype(np.float32)
        vb = (X / (1.15 * self.vert_r)) ** 2 + ((Y - self.vert_y) / self.vert_r) ** 2
        canal_y = self.vert_y + self.vert_r + 9
        canal = (X**2 + (Y - canal_y) ** 2) < 7.5**2
        spinous = (np.abs(X) < 5) & (Y > canal_y + 6) & (Y < canal_y + 38)
        lamina = ((X**2 + (Y - canal_y) ** 2) < 13**2) & ~canal
        disc = ((Z - self.disc_phase) % 32.0) < 7.0
        bone2d = (vb < 1) | lamina | spinous
        t[:, bone2d] = Tissue.BONE
        t[:, vb < 0.8] = Tissue.MARROW
        t[np.broadcast_to(disc, t.shape) & np.broadcast_to((vb < 1)[None], t.shape)] = Tissue.DISC
        t[:, canal] = Tissue.CSF
        canvas.content[:, bone2d | canal] = 0

        theta = np.arctan2(Y, X)
        ring = (rho < ring_outer) & (rho > ring_inner) & body2d
        band = ((Z - self.rib_slope * np.abs(theta) * 60 - self.rib_phase) % 28.0) < 9.0
        lateral = np.abs(np.sin(theta)) < 0.93
        ribs = band & (ring & lateral)[None] & (self.rib_top < Z)
        # costal cartilage: the ribs' anterior ends, rising to the xiphoid along the costal margin
        margin = self.costal_z - 0.45 * np.abs(X)[None]
        cartilage = band & (ring & ~lateral & (Y < 0))[None] & (margin < Z) & (self.rib_top < Z)
        t[ribs] = Tissue.BONE
        t[cartilage] = Tissue.CARTILAGE
        canvas.content[ribs | cartilage] = 0
        self._paint_pelvis(canvas, Y, X, Z, body2d)

    def _paint_pelvis(self, canvas: Canvas, Y, X, Z, body2d) -> None:
        """Iliac wings (an arc of cortex with marrow inside, lateral and posterior) below the crests,
        and the sacrum replacing the vertebral body below L5."""
        below = Z[:, 0, 0] < self.crest_z
        if not below.any():
            return
        k = np.flatnonzero(below)
        depth = (self.crest_z - Z[k]) / 120.0  # 0 at the crest, 1 at the acetabulum
        centre_y = self.vert_y - 10
        radius_x = self.pelvis_a * (1 - 0.25 * np.clip(depth, 0, 1))
        radius_y = 0.9 * self.vert_r + 40
        rho = np.sqrt((X / radius_x) ** 2 + ((Y - centre_y) / radius_y) ** 2)
        lateral = (np.abs(X) > 0.35 * self.pelvis_a) & (depth < 1.3)
        wing = (np.abs(rho - 1) * radius_x < 7) & lateral & body2d
        marrow = (np.abs(rho - 1) * radius_x < 3.5) & wing
        sacrum = (
            (np.abs(X) < 45 - 15 * np.clip(depth, 0, 1))
            & (Y > self.vert_y - 12)
            & (Y < self.vert_y + 22)
            & (self.crest_z - 30 > Z[k])
        )
        region = canvas.organs[k]
        region[wing | sacrum] = Tissue.ILIAC_BONE
        region[marrow | (sacrum & (np.abs(Y - self.vert_y - 5) < 10))] = Tissue.MARROW
        canvas.organs[k] = region
        content = canvas.content[k]
        content[wing | sacrum] = 0
        canvas.content[k] = content
