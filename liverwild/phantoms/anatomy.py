"""A random abdomen from the lung bases to the pelvis, painted as tissue codes on a canonical grid.

Coordinates are millimetres in patient space: x towards the patient's left, y posterior, z superior.
The body axis is x = y = 0; z = 0 lies near the apex of the right diaphragm dome, so the liver
occupies roughly z ∈ [−200, 0] mm and the pelvis z ≈ −250 … −480 mm. Every case draws its own body,
organ sizes, positions, liver shape family and smooth shape deformations from
``numpy.random.Generator``; the same seed gives the same anatomy.

What is painted (later structures win where they meet): body wall (subcutaneous fat, muscle),
paraspinal and psoas muscles, lungs and heart above a diaphragm muscle sheet, the bladder, the gut
(small-bowel loops, colon, duodenum, stomach: :mod:`.bowel`), kidneys, adrenals, spleen, pancreas,
the liver (right and left lobes, caudate lobe wrapping the IVC, a shape family: :data:`LIVER_FAMILIES`)
with a branching portal tree, hepatic veins converging on the IVC and lesions, the gallbladder,
ascites, the great vessels, then the skeleton (:mod:`.skeleton`). The organ map is the structure
every voxel belongs to; lumen contents (fluid, gas, stool, oral contrast) live in a second layer.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .bowel import Frame, Gut
from .deformation import displacement_field, warp_labels
from .liver import LIVER_FAMILIES, Liver
from .shapes import Blob, Canvas, Grid, random_waves, segment_distance
from .skeleton import Skeleton
from .tissues import Tissue

__all__ = ["LIVER_FAMILIES", "Abdomen", "Blob", "Grid", "random_waves", "segment_distance"]


class Abdomen:
    """One random patient. ``paint(grid)`` returns the uint8 organ map on that grid;
    ``paint_canvas(grid)`` the organ map and the lumen-content layer."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        u = rng.uniform
        self.a, self.b = u(140, 175), u(100, 130)  # body half-width (LR) and half-depth (AP)
        self.harmonics = [(m, u(0, 0.035), u(0, 2 * np.pi)) for m in (2, 3, 4)]
        self.fat = u(8, 32)  # subcutaneous fat (mm)
        self.wall = u(8, 13)  # abdominal wall muscle (mm)
        self.back = 0.85 * self.b  # flat back on the table
        self.diaphragm_mm = u(3, 6)
        vert_y, vert_r = 0.45 * self.b, u(15, 20)
        self.aorta = np.array([u(10, 20), vert_y - vert_r - u(8, 14)])
        self.aorta_r = u(9, 12.5)
        self.ivc = np.array([-u(18, 26), vert_y - vert_r - u(6, 12)])
        self.ivc_r = u(9, 13)
        self.liver = Liver(rng, self.a, self.b, self.ivc)
        self._draw_organs()
        liver_bottom = self.liver.liver_right.center[2] - self.liver.liver_right.radii[2]
        self.skeleton = Skeleton.draw(
            rng, self.b, self.a, self.liver.liver_right.center[2] - 0.7 * self.liver.liver_right.radii[2], liver_bottom
        )
        self.skeleton.vert_y, self.skeleton.vert_r = vert_y, vert_r
        self.bladder = Blob(
            np.array([u(-10, 10), -0.3 * self.b + u(-10, 10), self.skeleton.crest_z - u(130, 170)]),
            np.array([u(35, 60), u(28, 45), u(28, 45)]),
            u(-0.3, 0.3),
            random_waves(rng, 2, 0.06),
        )
        self.ascites_mm = u(3, 15) if rng.random() < 0.12 else 0.0
        inner_a = self.a - self.fat - self.wall
        inner_b = self.b - self.fat - self.wall
        frame = Frame(
            inner_a=inner_a,
            inner_b=inner_b,
            liver_center=self.liver.liver_right.center,
            liver_radii=self.liver.liver_right.radii,
            gallbladder=self.liver.gallbladder.center,
            hilum=self.liver.hilum,
            ivc=self.ivc,
            aorta=self.aorta,
            aorta_r=self.aorta_r,
            spine_front=vert_y - vert_r,
            spleen=self.spleen.center,
            dome_left=self.liver.dome_left,
            liver_floor=self.liver.floor,
            crest_z=self.skeleton.crest_z,
            bladder_top=self.bladder.center[2] + self.bladder.radii[2],
        )
        self.gut = Gut.draw(rng, frame)
        # a smooth nonlinear deformation of the whole map, so that no two livers share a shape
        self.deformation_mm, self.deformation_control_mm = u(2, 7), u(60, 110)
        self.deformation_seed = int(rng.integers(2**31))

    def _draw_organs(self) -> None:
        rng, u = self.rng, self.rng.uniform
        zc = self.liver.liver_right.center[2]
        vert_y = 0.45 * self.b
        self.spleen = Blob(
            np.array([0.55 * self.a + u(-10, 5), 0.3 * self.b, zc + u(10, 40)]),
            np.array([u(25, 35), u(45, 65), u(40, 60)]),
            u(0.3, 0.8),
            random_waves(rng),
        )
        self.kidneys = [
            Blob(
                np.array([s * u(55, 70), vert_y - u(0, 12), zc + dz]),
                np.array([u(25, 33), u(23, 29), u(50, 62)]),
                s * u(0.2, 0.5),
                random_waves(rng, 2, 0.08),
            )
            for s, dz in ((-1, -u(42, 66)), (1, -u(35, 65)))
        ]
        right, left = self.kidneys
        self.adrenals = [  # two limbs each, above and medial to the upper poles
            (
                Tissue.ADRENAL_RIGHT,
                np.array([self.ivc[0] - u(5, 15), self.ivc[1] + u(8, 18), right.center[2] + right.radii[2] * 0.9]),
            ),
            (
                Tissue.ADRENAL_LEFT,
                np.array([self.aorta[0] + u(15, 30), self.aorta[1] + u(0, 12), left.center[2] + left.radii[2] * 0.8]),
            ),
        ]
        self.adrenal_limbs = [[np.array([s * u(5, 15), u(5, 20), -u(20, 35)]) for s in (-1, 1)] for _ in self.adrenals]
        head = np.array([self.ivc[0] + u(5, 15), self.ivc[1] - u(22, 32), zc - u(55, 80)])
        tail = self.spleen.center + np.array([-u(20, 35), -u(5, 20), -u(15, 30)])
        self.pancreas = [
            (
                head,
                np.array([self.aorta[0] - u(5, 15), self.aorta[1] - self.aorta_r - u(15, 25), head[2] + u(5, 20)]),
                u(14, 20),
            ),
            (None, np.array([self.aorta[0] + u(30, 50), self.aorta[1] - u(10, 25), head[2] + u(15, 35)]), u(10, 14)),
            (None, tail, u(8, 12)),
        ]
        self.heart = Blob(
            np.array([u(10, 30), -0.3 * self.b, u(35, 55)]), np.array([u(55, 70), u(45, 55), u(45, 55)]), u(-0.6, -0.2)
        )

    # -- 2D body outline -------------------------------------------------------------------------
    def body_radius(self, y, x):
        """Normalised elliptic radius with a wobbly outline (< 1 inside the skin), shape (ny, nx)."""
        theta = np.arctan2(y / self.b, x / self.a)
        wobble = 1.0 + sum(amp * np.cos(m * theta + ph) for m, amp, ph in self.harmonics)
        return np.sqrt((x / self.a) ** 2 + (y / self.b) ** 2) / wobble

    def diaphragm(self, y, x):
        """Height (mm) of the diaphragm's upper surface above (x, y): two paraboloid domes."""
        right, left = (
            apex[2] - ((x - apex[0]) ** 2 / 3500.0 + (y - apex[1]) ** 2 / 4000.0) * 20
            for apex in (self.liver.dome_right, self.liver.dome_left)
        )
        return np.maximum(right, left)

    def below_diaphragm(self, box, z, y, x):
        """Below the diaphragm muscle sheet (where abdominal organs may lie)."""
        return z < self.diaphragm(y, x) - self.diaphragm_mm

    # -- painting ---------------------------------------------------------------------------------
    def paint(self, grid: Grid) -> np.ndarray:
        """The uint8 organ map ``(z, y, x)`` on ``grid``."""
        return self.paint_canvas(grid).organs

    def paint_canvas(self, grid: Grid) -> Canvas:
        """Organ map and lumen-content layer on ``grid``."""
        canvas = Canvas(grid)
        t = canvas.organs
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
        sk = self.skeleton

        # muscles along the spine
        para = sum(((X - s * 30) / 24) ** 2 + ((Y - (sk.vert_y + sk.vert_r + 20)) / 20) ** 2 < 1 for s in (-1, 1)) > 0
        t[:, para & body2d] = Tissue.MUSCLE
        psoas_r = np.clip((self.kidneys[0].center[2] - Z) / 6.0, 0, 22) + 1e-3
        for s in (-1, 1):
            psoas = ((X - s * (38 + np.clip((sk.crest_z - Z) / 4, 0, 30))) ** 2 + (Y - sk.vert_y + 4) ** 2) < psoas_r**2
            t[psoas] = Tissue.MUSCLE

        # thorax: lungs and heart above the diaphragm
        dia = self.diaphragm(Y, X)[None]
        above = Z > dia
        lungs = (
            above
            & (cavity & (rho < 1.0 - (self.fat + self.wall + 4) / scale))[None]
            & ~((np.abs(X) < 28) & (Y < sk.vert_y))[None]
        )
        t[lungs] = Tissue.LUNG
        self._paint_blob(canvas, self.heart, Tissue.HEART, lambda box, z, y, x: z > self.diaphragm(y, x))

        inside = self._inside_cavity(cavity)
        self._paint_blob(canvas, self.bladder, Tissue.BLADDER, inside)
        self.gut.paint(canvas, inside, self.below_diaphragm)
        for (code, centre), limbs in zip(self.adrenals, self.adrenal_limbs):
            for limb in limbs:
                self._paint_segment(canvas, centre, centre + limb, 3.5, code)
        self._paint_blob(canvas, self.spleen, Tissue.SPLEEN, self.below_diaphragm)
        start = None
        for a, b, r in self.pancreas:
            a = start if a is None else a
            self._paint_segment(canvas, a, b, r, Tissue.PANCREAS)
            start = b

        # liver with vessels, lesions, the gallbladder; free fluid around it
        liver_box = self.liver.paint(canvas, self._liver_room(cavity))
        self._paint_kidneys(canvas)  # after the liver: the kidney's upper pole impresses it
        if self.ascites_mm > 0 and liver_box is not None:
            self._paint_ascites(canvas, cavity)

        # great vessels (run through every slice above the pelvis)
        for (cx, cy), r, code in ((self.aorta, self.aorta_r, Tissue.AORTA), (self.ivc, self.ivc_r, Tissue.VEIN)):
            disk = ((X - cx) / r) ** 2 + ((Y - cy) / (0.9 * r)) ** 2 < 1
            canvas.put(
                (slice(None), slice(None), slice(None)), np.broadcast_to(disk, t.shape) & (sk.crest_z - 20 < Z), code
            )

        # diaphragm muscle sheet under the lungs and heart, over the liver and spleen
        sheet = (Z <= dia) & (Z > dia - self.diaphragm_mm) & cavity[None]
        sheet &= np.isin(t, (Tissue.FAT, Tissue.LUNG, Tissue.MUSCLE, Tissue.HEART))
        t[sheet] = Tissue.DIAPHRAGM
        canvas.content[sheet] = 0

        ring_outer = 1.0 - (self.fat + 1) / scale
        ring_inner = 1.0 - (self.fat + self.wall + 1) / scale
        sk.paint(canvas, body2d, rho, ring_inner, ring_outer)
        if self.deformation_mm > 0:
            field_rng = np.random.default_rng(self.deformation_seed)
            shift = displacement_field(
                grid.shape, grid.spacing_zyx, self.deformation_mm, self.deformation_control_mm, field_rng
            )
            canvas.organs, canvas.content = warp_labels([canvas.organs, canvas.content], shift)
        return canvas

    @staticmethod
    def _inside_cavity(cavity):
        return lambda box, z, y, x: cavity[box[1], box[2]][None]

    def _paint_blob(self, canvas: Canvas, blob: Blob, code, condition, within=None):
        box, m = blob.mask(canvas.grid)
        if box is None:
            return None, None
        z, y, x = canvas.grid.coords(box)
        keep = m & condition(box, z, y, x)
        if within is not None:
            keep &= canvas.organs[box] == within
        canvas.put(box, keep, code)
        return box, keep

    def _paint_segment(self, canvas: Canvas, a, b, r, code) -> None:
        box = canvas.grid.box(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if box is None:
            return
        z, y, x = canvas.grid.coords(box)
        keep = (segment_distance(z, y, x, a, b) < r) & self.below_diaphragm(box, z, y, x)
        canvas.put(box, keep, code)

    def _paint_kidneys(self, canvas: Canvas) -> None:
        kidney_codes = (  # right (x < 0) then left (x > 0: towards the patient's left)
            (Tissue.KIDNEY_CORTEX, Tissue.KIDNEY_MEDULLA),
            (Tissue.LEFT_KIDNEY_CORTEX, Tissue.LEFT_KIDNEY_MEDULLA),
        )
        for kidney, (cortex, medulla) in zip(self.kidneys, kidney_codes):
            box, m = kidney.mask(canvas.grid)
            if box is not None:
                canvas.put(box, m, cortex)
                inner = Blob(
                    kidney.center + np.array([-np.sign(kidney.center[0]) * 5, 0, 0]), kidney.radii * 0.6, kidney.angle
                )
                self._paint_blob(canvas, inner, medulla, lambda *args: True, within=cortex)

    def _liver_room(self, cavity):
        """Where the liver may lie: inside the abdominal cavity, below the diaphragm sheet."""
        return lambda box, z, y, x: cavity[box[1], box[2]][None] & self.below_diaphragm(box, z, y, x)

    def _paint_ascites(self, canvas: Canvas, cavity) -> None:
        """Free fluid in the fat within ``ascites_mm`` of the liver (perihepatic) and the spleen."""
        grid = canvas.grid
        organs = np.isin(canvas.organs, (Tissue.LIVER, Tissue.LIVER_VESSEL, Tissue.LESION, Tissue.SPLEEN))
        if not organs.any():
            return
        distance = ndimage.distance_transform_edt(~organs, sampling=grid.spacing_zyx)
        fluid = (distance < self.ascites_mm) & (canvas.organs == Tissue.FAT) & cavity[None]
        canvas.put((slice(None),) * 3, fluid, Tissue.ASCITES)
