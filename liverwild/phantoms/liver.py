"""The phantom liver: lobes, shape family, vessels, lesions, with its gallbladder and portal trunk.

Coordinates in mm (x to the patient's left, y posterior, z superior; z = 0 near the right dome's apex).
A :class:`Liver` is drawn once per patient from the generator (the draws keep their order, so a seed
gives the same liver) and painted onto a :class:`~liverwild.phantoms.shapes.Canvas` where the caller's
condition allows it (inside the abdominal cavity, below the diaphragm).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .shapes import Blob, Canvas, Condition, Grid, random_waves, segment_distance
from .tissues import Tissue

LIVER_FAMILIES = {
    "typical": 0.55,
    "large_left_lobe": 0.1,  # the left lobe reaches across to the spleen
    "riedel_lobe": 0.08,  # a tongue of the right lobe down towards the iliac crest
    "cirrhotic": 0.1,  # small nodular right lobe, hypertrophic caudate
    "hepatomegaly": 0.12,
    "post_resection": 0.05,  # a right or left hepatectomy's remnant
}
"""Liver shape families and how often a patient draws each."""


class Liver:
    """One patient's liver; ``a``, ``b``: the body's half-width and half-depth (mm), ``ivc``: (x, y) of
    the inferior vena cava. Also draws the apexes of the two diaphragm domes (the right one sits on the
    liver) — in this order, so that a seed gives the same patient as before the liver had a module."""

    def __init__(self, rng: np.random.Generator, a: float, b: float, ivc: np.ndarray):
        self.rng, self.ivc = rng, ivc
        u = rng.uniform
        self.family = str(rng.choice(list(LIVER_FAMILIES), p=np.array(list(LIVER_FAMILIES.values()))))
        grow = {"hepatomegaly": u(1.15, 1.3), "cirrhotic": u(0.75, 0.88)}.get(self.family, 1.0)
        rz = u(72, 90) * (grow if self.family == "hepatomegaly" else 1.0)
        self.liver_right = Blob(
            np.array([-0.42 * a + u(-8, 8), -0.05 * b + u(-8, 8), -0.92 * rz]),
            np.array([u(62, 82) * grow, u(66, 88) * grow, rz]),
            u(-0.25, 0.15),
            random_waves(rng),
            taper=u(0.35, 0.55),
            drift=u(5, 25),
        )
        left_x, left_rx = (u(35, 60), u(75, 95)) if self.family == "large_left_lobe" else (u(5, 30), u(50, 70))
        self.liver_left = Blob(
            np.array([left_x, -0.42 * b + u(-6, 6), -0.92 * rz + u(15, 35)]),
            np.array([left_rx * (grow if self.family != "cirrhotic" else 1.0), u(28, 40), u(35, 50)]),
            u(-0.35, 0.1),
            random_waves(rng),
        )
        caudate = u(1.3, 1.6) if self.family == "cirrhotic" else 1.0
        self.caudate = Blob(  # wraps the intrahepatic IVC from the left and the front
            np.array([ivc[0] + u(10, 18), ivc[1] - u(8, 16), u(-90, -55)]),
            np.array([u(20, 28) * caudate, u(18, 24) * caudate, u(30, 42)]),
            u(-0.3, 0.3),
            random_waves(rng, 2, 0.08),
        )
        c, r = self.liver_right.center, self.liver_right.radii
        self.extra_lobes = []
        if self.family == "riedel_lobe":
            self.extra_lobes.append(
                Blob(
                    np.array([c[0] - 0.35 * r[0], c[1] + u(-10, 10), c[2] - r[2] * u(0.9, 1.1)]),
                    np.array([u(22, 32), u(28, 40), u(50, 75)]),
                    u(-0.3, 0.3),
                    random_waves(rng, 2, 0.08),
                )
            )
        self.nodules = random_waves(rng, 8, 0.05, (10, 18)) if self.family == "cirrhotic" else ()
        self.resection = None
        if self.family == "post_resection":  # remove the liver beyond a cut plane x = cut
            right_side = rng.random() < 0.5
            self.resection = (1.0 if right_side else -1.0, c[0] + u(0.3, 0.7) * r[0] if right_side else u(-15, 10))
        self.dome_right = np.array([c[0], c[1] + 10, u(2, 10)])  # apex (x, y, z) of the right dome
        self.dome_left = np.array([0.45 * a, 0.1 * b, u(-22, -8)])
        self.gallbladder = Blob(
            np.array([c[0] + u(20, 40), -0.3 * b, c[2] - u(0.5, 0.75) * rz]),  # the fundus may pass the edge
            np.array([u(12, 18), u(14, 20), u(30, 45)]),
            u(-0.5, 0.5),
            random_waves(rng, 2, 0.1),
        )
        self.hilum = np.array([c[0] + 0.45 * r[0], c[1] + 5, c[2] - 0.15 * rz])
        self.vessels = self._vessel_tree()
        self.portal_trunk = (self.hilum, self.hilum + np.array([u(15, 35), u(-5, 10), -u(50, 70)]), u(6, 8))
        self.n_lesions = int(min(3, rng.poisson(1.0)))
        self.lesion_radii = [u(5, 20) for _ in range(self.n_lesions)]

    @property
    def lobes(self) -> tuple:
        """Right, left and caudate lobes and any extra lobe of the family (Riedel's)."""
        return (self.liver_right, self.liver_left, self.caudate, *self.extra_lobes)

    def _vessel_tree(self) -> list:
        """Segments (a, b, radius) of the portal tree (two generations from the hilum) and of the three
        hepatic veins converging on the IVC below the dome, each with a side branch."""
        u = self.rng.uniform
        hilum = self.hilum
        trunks = [(hilum, hilum + np.array([u(-90, -40), u(-40, 40), u(-30, 50)]), u(4, 6.5)) for _ in range(3)]
        trunks.append((hilum, hilum + np.array([u(40, 80), u(-60, -30), u(5, 35)]), u(3.5, 5.5)))
        top = np.array([self.ivc[0], self.ivc[1], u(-25, -12)])
        trunks += [
            (top, top + np.array([dx, u(-50, -20), u(-10, 25)]), u(3, 5))
            for dx in (u(-90, -60), u(-30, -10), u(25, 55))
        ]
        segments = list(trunks)
        for a, b, r in trunks:
            for _ in range(2):
                start = a + (b - a) * u(0.5, 1.0)
                direction = self.rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                segments.append((start, start + direction * u(20, 45), r * u(0.5, 0.7)))
        return segments

    def floor(self, x: float, y: float) -> float:
        """z (mm) of the lowest point of the lobes above (x, y); the lobe centre's level − its
        z radius where no lobe lies above (x, y)."""
        c, r = self.liver_right.center, self.liver_right.radii
        z = np.arange(c[2] + r[2], c[2] - 1.6 * r[2], -2.0, dtype=np.float32)
        inside = np.zeros(len(z), bool)
        for lobe in self.lobes:
            inside |= lobe.inside(z, np.float32(y), np.float32(x))
        return float(z[np.flatnonzero(inside)[-1]]) if inside.any() else float(c[2] - r[2])

    def inside(self, grid: Grid, box, z, y, x) -> np.ndarray:
        """The lobes (with the family's changes) inside ``box``: bool ``(z, y, x)`` of the box."""
        inside = np.zeros(tuple(s.stop - s.start for s in box), bool)
        for lobe in self.lobes:
            b, m = lobe.mask(grid)  # every lobe's box lies inside the union box
            if b is not None:
                inside[tuple(slice(bb.start - aa.start, bb.stop - aa.start) for aa, bb in zip(box, b))] |= m
        if self.nodules:  # a nodular surface: high-frequency waves eat into the outer few millimetres
            c = self.liver_right.center
            level = sum(
                a * np.sin(w[0] * (x - c[0]) / 30 + w[1] * (y - c[1]) / 30 + w[2] * (z - c[2]) / 30 + p)
                for a, w, p in self.nodules
            )
            edge = ndimage.binary_erosion(inside, iterations=2)
            inside &= edge | (level < 0.04)
        if self.resection is not None:
            side, cut = self.resection  # +1: the right part is gone (x < cut), −1: the left part (x > cut)
            inside &= (x > cut) if side > 0 else (x < cut)
        return inside

    def paint(self, canvas: Canvas, room: Condition):
        """Liver (parenchyma, vessels, lesions), gallbladder and portal trunk where ``room`` allows the
        liver; returns the liver's box on the grid or ``None``."""
        grid = canvas.grid
        lobes = self.lobes
        lo = np.min([b.bounds()[0] for b in lobes], axis=0)
        hi = np.max([b.bounds()[1] for b in lobes], axis=0)
        box = grid.box(lo, hi)
        if box is None:
            return None
        z, y, x = grid.coords(box)
        liver = self.inside(grid, box, z, y, x) & room(box, z, y, x)
        canvas.put(box, liver, Tissue.LIVER)
        region = canvas.organs[box]
        k, j, i = np.nonzero(liver)  # vessels only need the liver's voxels
        pz, py, px = z[k, 0, 0], y[0, j, 0], x[0, 0, i]
        vessels = np.zeros(len(k), bool)
        for a, b, r in self.vessels:
            vessels |= segment_distance(pz, py, px, a, b) < r
        region[k[vessels], j[vessels], i[vessels]] = Tissue.LIVER_VESSEL
        idx = np.argwhere(liver)  # lesions at random liver voxels
        for radius in self.lesion_radii:
            if len(idx) == 0:
                break
            k, j, i = idx[self.rng.integers(len(idx))]
            c = np.array([x[0, 0, i], y[0, j, 0], z[k, 0, 0]])
            lesion = ((x - c[0]) ** 2 + (y - c[1]) ** 2 + ((z - c[2]) * 0.9) ** 2) < radius**2
            region[liver & lesion] = Tissue.LESION
        gbox, gm = self.gallbladder.mask(grid)  # the gallbladder and the portal trunk are not liver
        if gbox is not None:
            canvas.put(gbox, gm & (canvas.organs[gbox] != Tissue.AIR), Tissue.GALLBLADDER)
        a, b, r = self.portal_trunk
        tbox = grid.box(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if tbox is not None:
            tz, ty, tx = grid.coords(tbox)
            canvas.put(tbox, segment_distance(tz, ty, tx, a, b) < r, Tissue.VEIN)
        return box
