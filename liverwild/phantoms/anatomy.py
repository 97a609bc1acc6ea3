"""A random abdomen: organ shapes painted as tissue codes on a canonical (LPS-aligned) grid.

Coordinates are millimetres in patient space: x towards the patient's left, y posterior, z superior.
The body axis is x = y = 0; z = 0 lies near the apex of the right diaphragm dome, so the liver
occupies roughly z ∈ [−190, 0] mm. Every case draws its own body size, organ sizes, positions and
smooth shape deformations from ``numpy.random.Generator``; the same seed gives the same anatomy.
Shapes are evaluated only inside each organ's bounding box, which keeps a 100-slice case fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tissues import Tissue


@dataclass
class Grid:
    """Voxel centres of a canonical grid: 1-D coordinate vectors in mm (array axes z, y, x)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @property
    def shape(self):
        return (len(self.z), len(self.y), len(self.x))

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
        z, y, x = grid.coords(box)
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
        return box, (qx * qx + qy * qy + qz * qz) < level


def random_waves(rng, n=3, amplitude=0.12, frequency=(1.5, 3.0)):
    waves = []
    for _ in range(n):
        omega = rng.normal(size=3)
        omega *= rng.uniform(*frequency) / np.linalg.norm(omega)
        waves.append((rng.uniform(0.4, 1.0) * amplitude, omega, rng.uniform(0, 2 * np.pi)))
    return tuple(waves)


def segment_distance(z, y, x, a, b):
    """Distance (mm) from points to the segment a→b (xyz, mm), broadcasting over the grids."""
    (ax, ay, az), (bx, by, bz) = (float(v) for v in a), (float(v) for v in b)
    ux, uy, uz = bx - ax, by - ay, bz - az
    dx, dy, dz = x - ax, y - ay, z - az
    t = np.clip((dx * ux + dy * uy + dz * uz) / (ux * ux + uy * uy + uz * uz), 0.0, 1.0)
    return np.sqrt((dx - t * ux) ** 2 + (dy - t * uy) ** 2 + (dz - t * uz) ** 2)


class Abdomen:
    """One random patient. ``paint(grid)`` returns the uint8 tissue map on that grid."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        u = rng.uniform
        self.a, self.b = u(140, 175), u(100, 130)  # body half-width (LR) and half-depth (AP)
        self.harmonics = [(m, u(0, 0.035), u(0, 2 * np.pi)) for m in (2, 3, 4)]
        self.fat = u(8, 32)  # subcutaneous fat (mm)
        self.wall = u(8, 13)  # abdominal wall muscle (mm)
        self.back = 0.85 * self.b  # flat back on the table
        # spine and great vessels
        self.vert_y, self.vert_r = 0.45 * self.b, u(15, 20)
        self.aorta = np.array([u(10, 20), self.vert_y - self.vert_r - u(8, 14)])
        self.aorta_r = u(9, 12.5)
        self.ivc = np.array([-u(18, 26), self.vert_y - self.vert_r - u(6, 12)])
        self.ivc_r = u(9, 13)
        # liver: right lobe + left lobe, dome near z = 0
        rz = u(75, 95)
        self.liver_right = Blob(
            np.array([-0.42 * self.a + u(-8, 8), -0.05 * self.b + u(-8, 8), -0.92 * rz]),
            np.array([u(65, 85), u(70, 92), rz]),
            u(-0.25, 0.15),
            random_waves(rng),
            taper=u(0.35, 0.55),
            drift=u(5, 25),
        )
        self.liver_left = Blob(
            np.array([u(5, 30), -0.42 * self.b + u(-6, 6), -0.92 * rz + u(15, 35)]),
            np.array([u(50, 70), u(28, 40), u(35, 50)]),
            u(-0.35, 0.1),
            random_waves(rng),
        )
        c = self.liver_right.center
        self.dome_right = np.array([c[0], c[1] + 10, u(2, 10)])  # apex (x, y, z) of the right dome
        self.dome_left = np.array([0.45 * self.a, 0.1 * self.b, u(-22, -8)])
        self.gallbladder = Blob(
            np.array([c[0] + u(20, 40), -0.3 * self.b, c[2] - 0.45 * rz]),
            np.array([u(12, 18), u(14, 20), u(28, 40)]),
            u(-0.5, 0.5),
            random_waves(rng, 2, 0.1),
        )
        hilum = np.array([c[0] + 0.45 * self.liver_right.radii[0], c[1] + 5, c[2] - 0.15 * rz])
        self.hilum = hilum
        self.portal_branches = [
            (hilum, hilum + np.array([u(-90, -40), u(-40, 40), u(-30, 50)]), u(4, 6.5)) for _ in range(3)
        ]
        self.portal_branches.append((hilum, hilum + np.array([u(40, 80), u(-60, -30), u(5, 35)]), u(3.5, 5.5)))
        top = np.array([self.ivc[0], self.ivc[1], u(-25, -12)])
        self.hepatic_veins = [
            (top, top + np.array([dx, u(-50, -20), u(-10, 25)]), u(3, 5))
            for dx in (u(-90, -60), u(-30, -10), u(25, 55))
        ]
        self.portal_trunk = (hilum, hilum + np.array([u(15, 35), u(-5, 10), -u(50, 70)]), u(6, 8))
        self.n_lesions = int(min(3, rng.poisson(1.0)))
        self.lesion_radii = [u(5, 20) for _ in range(self.n_lesions)]
        # other organs
        zc = c[2]
        self.spleen = Blob(
            np.array([0.55 * self.a + u(-10, 5), 0.3 * self.b, zc + u(10, 40)]),
            np.array([u(25, 35), u(45, 65), u(40, 60)]),
            u(0.3, 0.8),
            random_waves(rng),
        )
        self.kidneys = [
            Blob(
                np.array([s * u(55, 70), self.vert_y - u(0, 12), zc + dz]),
                np.array([u(24, 32), u(22, 28), u(48, 60)]),
                s * u(0.2, 0.5),
                random_waves(rng, 2, 0.08),
            )
            for s, dz in ((-1, -u(60, 90)), (1, -u(40, 70)))
        ]
        self.stomach = Blob(
            np.array([0.32 * self.a, -0.32 * self.b, zc + u(10, 40)]),
            np.array([u(35, 50), u(30, 45), u(45, 65)]),
            u(-0.5, 0.5),
            random_waves(rng),
        )
        self.stomach_air = u(0.2, 0.5)
        self.bowel = []
        for _ in range(rng.integers(14, 22)):
            center = np.array([u(-0.6, 0.6) * self.a, u(-0.6, 0.1) * self.b, zc - u(60, 200)])
            r = u(12, 28)
            self.bowel.append(
                (
                    Blob(
                        center, np.array([r, r * u(0.7, 1.1), r * u(0.8, 1.6)]), u(0, np.pi), random_waves(rng, 2, 0.1)
                    ),
                    rng.random() < 0.35,
                )
            )
        self.heart = Blob(
            np.array([u(10, 30), -0.3 * self.b, u(35, 55)]), np.array([u(55, 70), u(45, 55), u(45, 55)]), u(-0.6, -0.2)
        )
        self.rib_phase, self.rib_slope = u(0, 28), u(0.25, 0.45)
        self.disc_phase = u(0, 32)

    # -- 2D body outline -------------------------------------------------------------------------
    def body_radius(self, y, x):
        """Normalised elliptic radius with a wobbly outline (< 1 inside the skin), shape (ny, nx)."""
        theta = np.arctan2(y / self.b, x / self.a)
        wobble = 1.0 + sum(amp * np.cos(m * theta + ph) for m, amp, ph in self.harmonics)
        return np.sqrt((x / self.a) ** 2 + (y / self.b) ** 2) / wobble

    def liver_mask_fn(self, grid, box, z, y, x):
        """Union of the two lobes below the right diaphragm, inside the box."""
        inside = np.zeros(tuple(s.stop - s.start for s in box), bool)
        for lobe in (self.liver_right, self.liver_left):
            b, m = lobe.mask(grid)
            if b is None:
                continue
            sub = tuple(slice(bb.start - aa.start, bb.stop - aa.start) for aa, bb in zip(box, b))
            inside[sub] |= m
        return inside & (z < self.diaphragm(y, x) - 3.0)

    def diaphragm(self, y, x):
        """Height (mm) of the diaphragm surface above (x, y): two paraboloid domes."""
        right = (
            self.dome_right[2] - ((x - self.dome_right[0]) ** 2 / 3500.0 + (y - self.dome_right[1]) ** 2 / 4000.0) * 20
        )
        left = self.dome_left[2] - ((x - self.dome_left[0]) ** 2 / 3500.0 + (y - self.dome_left[1]) ** 2 / 4000.0) * 20
        return np.maximum(right, left)

    # -- painting ---------------------------------------------------------------------------------
    def paint(self, grid: Grid) -> np.ndarray:
        nz, ny, nx = grid.shape
        t = np.zeros(grid.shape, np.uint8)
        Y, X = grid.y[:, None].astype(np.float32), grid.x[None, :].astype(np.float32)
        rho = self.body_radius(Y, X)
        scale = (self.a + self.b) / 2
        body2d = (rho < 1.0) & (Y < self.back)
        wall_outer = rho < 1.0 - self.fat / scale
        wall_inner = rho < 1.0 - (self.fat + self.wall) / scale
        table2d = (Y > self.back + 6) & (Y < self.back + 22) & (np.abs(X) < 0.95 * max(abs(grid.x[0]), abs(grid.x[-1])))
        t[:] = np.where(
            body2d & wall_inner,
            Tissue.FAT,
            np.where(body2d & wall_outer, Tissue.MUSCLE, np.where(body2d, Tissue.FAT, Tissue.AIR)),
        )
        t[:, table2d] = Tissue.TABLE
        cavity = body2d & wall_inner  # (ny, nx)
        Z = grid.z[:, None, None].astype(np.float32)

        # muscles along the spine
        para = (
            sum(((X - s * 30) / 24) ** 2 + ((Y - (self.vert_y + self.vert_r + 20)) / 20) ** 2 < 1 for s in (-1, 1)) > 0
        )
        t[:, para & body2d] = Tissue.MUSCLE
        psoas_r = np.clip((self.kidneys[0].center[2] - Z) / 6.0, 0, 22) + 1e-3
        for s in (-1, 1):
            psoas = ((X - s * 38) ** 2 + (Y - self.vert_y + 4) ** 2) < psoas_r**2
            t[psoas] = Tissue.MUSCLE

        # thorax: lungs and heart above the diaphragm
        dia = self.diaphragm(Y, X)[None]
        above = Z > dia
        lungs = (
            above
            & (cavity & (rho < 1.0 - (self.fat + self.wall + 4) / scale))[None]
            & ~((np.abs(X) < 28) & (Y < self.vert_y))[None]
        )
        t[lungs] = Tissue.LUNG
        self._paint_blob(t, grid, self.heart, Tissue.HEART, lambda box, z, y, x: z > self.diaphragm(y, x))

        # abdominal organs (later ones win)
        for blob, has_gas in self.bowel:
            self._paint_blob(t, grid, blob, Tissue.BOWEL, self._inside_cavity(cavity))
            if has_gas:
                gas = Blob(blob.center - np.array([0, 0.4 * blob.radii[1], 0]), blob.radii * 0.45)
                self._paint_blob(t, grid, gas, Tissue.GAS, lambda *args: True, within=Tissue.BOWEL)
        kidney_codes = (  # right (x < 0) then left (x > 0: towards the patient's left)
            (Tissue.KIDNEY_CORTEX, Tissue.KIDNEY_MEDULLA),
            (Tissue.LEFT_KIDNEY_CORTEX, Tissue.LEFT_KIDNEY_MEDULLA),
        )
        for kidney, (cortex, medulla) in zip(self.kidneys, kidney_codes):
            box, m = kidney.mask(grid)
            if box is not None:
                t[box][m] = cortex
                inner = Blob(
                    kidney.center + np.array([-np.sign(kidney.center[0]) * 5, 0, 0]), kidney.radii * 0.6, kidney.angle
                )
                self._paint_blob(t, grid, inner, medulla, lambda *args: True, within=cortex)

        def below_dia(box, z, y, x):
            return z < self.diaphragm(y, x) - 2

        self._paint_blob(t, grid, self.spleen, Tissue.SPLEEN, below_dia)
        self._paint_blob(t, grid, self.stomach, Tissue.STOMACH, below_dia)
        sb = self.stomach
        air_y = sb.center[1] - (1 - 2 * self.stomach_air) * sb.radii[1]
        box = grid.box(sb.center - sb.radii * 1.4, sb.center + sb.radii * 1.4)
        if box is not None:
            z, y, x = grid.coords(box)
            region = t[box]
            region[(region == Tissue.STOMACH) & np.broadcast_to(y < air_y, region.shape)] = Tissue.GAS

        # liver with vessels, lesions and the gallbladder
        self._paint_liver(t, grid, cavity)

        # vessels and spine (run through every slice)
        for (cx, cy), r, code in ((self.aorta, self.aorta_r, Tissue.AORTA), (self.ivc, self.ivc_r, Tissue.VEIN)):
            disk = ((X - cx) / r) ** 2 + ((Y - cy) / (0.9 * r)) ** 2 < 1
            t[:, disk] = code
        vb = (X / (1.15 * self.vert_r)) ** 2 + ((Y - self.vert_y) / self.vert_r) ** 2
        canal_y = self.vert_y + self.vert_r + 9
        canal = (X**2 + (Y - canal_y) ** 2) < 7.5**2
        spinous = (np.abs(X) < 5) & (Y > canal_y + 6) & (Y < canal_y + 38)
        lamina = ((X**2 + (Y - canal_y) ** 2) < 13**2) & ~canal
        disc = ((Z - self.disc_phase) % 32.0) < 7.0
        t[:, (vb < 1) | lamina | spinous] = Tissue.BONE
        t[:, vb < 0.8] = Tissue.MARROW
        t[np.broadcast_to(disc, t.shape) & np.broadcast_to((vb < 1)[None], t.shape)] = Tissue.DISC
        t[:, canal] = Tissue.CSF

        # ribs: sloped bands just inside the muscle wall, open anteriorly
        theta = np.arctan2(Y, X)  # −π/2 is anterior (y < 0)
        ring = (rho < 1.0 - (self.fat + 1) / scale) & (rho > 1.0 - (self.fat + self.wall + 1) / scale)
        lateral = np.abs(np.sin(theta)) < 0.93
        band = ((Z - self.rib_slope * np.abs(theta) * 60 - self.rib_phase) % 28.0) < 9.0
        ribs = (
            band & (ring & lateral & body2d)[None] & (Z > self.liver_right.center[2] - 0.7 * self.liver_right.radii[2])
        )
        t[ribs] = Tissue.BONE
        return t

    @staticmethod
    def _inside_cavity(cavity):
        return lambda box, z, y, x: cavity[box[1], box[2]][None]

    def _paint_blob(self, t, grid, blob, code, condition, within=None):
        box, m = blob.mask(grid)
        if box is None:
            return None, None
        z, y, x = grid.coords(box)
        keep = m & condition(box, z, y, x)
        region = t[box]
        if within is not None:
            keep &= region == within
        region[keep] = code
        return box, keep

    def _paint_liver(self, t, grid, cavity):
        lo = np.minimum(*(b.bounds()[0] for b in (self.liver_right, self.liver_left)))
        hi = np.maximum(*(b.bounds()[1] for b in (self.liver_right, self.liver_left)))
        box = grid.box(lo, hi)
        if box is None:
            return
        z, y, x = grid.coords(box)
        liver = self.liver_mask_fn(grid, box, z, y, x) & cavity[box[1], box[2]][None]
        region = t[box]
        region[liver] = Tissue.LIVER
        k, j, i = np.nonzero(liver)  # vessels only need the liver's voxels
        pz, py, px = z[k, 0, 0], y[0, j, 0], x[0, 0, i]
        vessels = np.zeros(len(k), bool)
        for a, b, r in self.portal_branches + self.hepatic_veins:
            vessels |= segment_distance(pz, py, px, a, b) < r
        region[k[vessels], j[vessels], i[vessels]] = Tissue.LIVER_VESSEL
        # lesions at random liver voxels
        idx = np.argwhere(liver)
        for radius in self.lesion_radii:
            if len(idx) == 0:
                break
            k, j, i = idx[self.rng.integers(len(idx))]
            c = np.array([x[0, 0, i], y[0, j, 0], z[k, 0, 0]])
            lesion = ((x - c[0]) ** 2 + (y - c[1]) ** 2 + ((z - c[2]) * 0.9) ** 2) < radius**2
            region[liver & lesion] = Tissue.LESION
        # gallbladder and the portal trunk are not liver
        gbox, gm = self.gallbladder.mask(grid)
        if gbox is not None:
            t[gbox][gm & (t[gbox] != Tissue.AIR)] = Tissue.GALLBLADDER
        a, b, r = self.portal_trunk
        tbox = grid.box(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if tbox is not None:
            tz, ty, tx = grid.coords(tbox)
            t[tbox][segment_distance(tz, ty, tx, a, b) < r] = Tissue.VEIN
