"""The hollow viscera of the phantom abdomen: stomach, duodenum, colon and the small bowel, as tubes.

Every structure is a :class:`~liverwild.phantoms.shapes.Tube` laid out relative to the patient's
other anatomy (liver, gallbladder, great vessels, spleen, body wall), with a wall and a lumen whose
content changes along its length: fluid, gas, stool (mottled, with gas bubbles) or positive oral
contrast, or nothing visible (a collapsed loop). Where the anatomy comes from:

- **colon**: caecum in the right iliac fossa, ascending colon along the right flank, the hepatic
  flexure under the inferior right lobe, a transverse colon that sags anteriorly, the splenic flexure
  higher than the hepatic one, the descending colon along the left flank, sigmoid and rectum.
- **duodenum**: the C-loop from the pylorus past the gallbladder neck (D1), down beside the pancreatic
  head (D2), across in front of the IVC and aorta (D3) and up to the duodenojejunal flexure (D4).
- **small bowel**: loops packed in the space the colon frames, a self-avoiding random walk.
- **stomach**: a J-shaped tube from the fundus under the left dome to the pylorus, with a gas cap on
  the anterior (non-dependent) side of an air-fluid level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .shapes import Canvas, Condition, Tube
from .tissues import Tissue

COLLAPSED = 0  # a lumen that shows no content: it renders like the wall


@dataclass
class Frame:
    """What the gut is laid out against (all mm, patient coordinates: x left, y posterior, z superior)."""

    inner_a: float  # half-width of the abdominal cavity
    inner_b: float  # half-depth of the abdominal cavity
    liver_center: np.ndarray  # right lobe centre (xyz)
    liver_radii: np.ndarray  # right lobe radii
    gallbladder: np.ndarray  # gallbladder centre
    hilum: np.ndarray
    ivc: np.ndarray  # (x, y) of the inferior vena cava
    aorta: np.ndarray  # (x, y) of the aorta
    aorta_r: float
    spine_front: float  # y of the vertebral bodies' anterior surface
    spleen: np.ndarray  # spleen centre
    dome_left: np.ndarray  # apex of the left diaphragm dome
    liver_floor: Callable[[float, float], float]  # z (mm) of the liver's inferior surface above (x, y)
    crest_z: float  # z of the iliac crests
    bladder_top: float  # z of the bladder's dome


@dataclass
class Gut:
    """The tubes of one patient's gut, drawn from ``rng`` against ``frame``."""

    colon: Tube
    duodenum: Tube
    small_bowel: list
    stomach: Tube
    stomach_gas: float  # y of the air-fluid level (gas where y < level)
    pylorus: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def draw(cls, rng: np.random.Generator, f: Frame) -> Gut:
        oral_contrast = rng.random() < 0.3
        colon = _colon(rng, f, oral_contrast)
        stomach, pylorus, level = _stomach(rng, f, oral_contrast)
        duodenum, dj_flexure = _duodenum(rng, f, pylorus, oral_contrast)
        loops = _small_bowel(rng, f, colon, dj_flexure, oral_contrast)
        return cls(colon, duodenum, loops, stomach, level, pylorus)

    def paint(self, canvas: Canvas, inside: Condition, below_diaphragm: Condition) -> None:
        """Small bowel, colon, duodenum, then the stomach (later ones win), all inside ``inside``."""
        for loop in self.small_bowel:
            loop.paint(canvas, inside)
        self.colon.paint(canvas, inside)
        self.duodenum.paint(canvas, inside)

        def stomach_room(box, z, y, x):
            return inside(box, z, y, x) & below_diaphragm(box, z, y, x)

        self.stomach.paint(canvas, stomach_room)
        lo = self.stomach.points.min(0) - self.stomach.radii.max()
        hi = self.stomach.points.max(0) + self.stomach.radii.max()
        box = canvas.grid.box(lo, hi)
        if box is not None:
            _, y, _ = canvas.grid.coords(box)
            lumen = (canvas.organs[box] == Tissue.STOMACH) & (canvas.content[box] > 0)
            canvas.fill_content(box, lumen & (y < self.stomach_gas), Tissue.GAS)


def _jitter(rng, point, sd):
    return np.asarray(point, float) + rng.normal(0, sd, 3)


def _pick(rng, options: dict) -> int:
    names, weights = zip(*options.items())
    return int(names[int(rng.choice(len(names), p=np.asarray(weights) / np.sum(weights)))])


def _contents(rng, n, options: dict, run: int = 2) -> np.ndarray:
    """Content codes for ``n`` points, changing every ``run`` points on average."""
    out, current = [], _pick(rng, options)
    for _ in range(n):
        if rng.random() < 1.0 / run:
            current = _pick(rng, options)
        out.append(current)
    return np.array(out)


def _add_bubbles(rng, tube: Tube) -> Tube:
    """Gas bubbles in the stool-filled parts of a tube's lumen."""
    for point, radius, content in zip(tube.points, tube.radii, tube.contents):
        if content != Tissue.STOOL:
            continue
        for _ in range(int(rng.integers(0, 3))):
            offset = rng.normal(0, 0.35 * radius, 3)
            tube.bubbles.append((point + offset, float(rng.uniform(2, 0.3 * radius + 2)), int(Tissue.GAS)))
    return tube


def _colon(rng, f: Frame, oral: bool) -> Tube:
    u = rng.uniform
    c, r = f.liver_center, f.liver_radii
    lat = lambda radius: f.inner_a - radius - u(2, 10)  # noqa: E731  centre of a tube along a flank
    radii = [
        u(28, 38),
        u(25, 33),
        u(24, 32),
        u(26, 34),  # under the right lobe and the hepatic flexure: the colon's widest after the caecum
        u(25, 33),
        u(23, 31),
        u(19, 26),
        u(17, 23),
        u(16, 21),
        u(15, 20),
    ]
    radii += [u(14, 19), u(16, 22), u(16, 22)]

    def under_liver(x, y, radius):  # a tube centre that touches the liver's inferior surface from below
        return np.array([x, y, f.liver_floor(x, y) - radius * u(0.75, 1.05)])

    hepatic = under_liver(c[0] + u(-5, 20), c[1] - u(15, 35), radii[4])
    splenic = np.array([lat(radii[7]) * 0.9, f.spleen[1] - u(0, 20), f.spleen[2] - u(35, 70)])
    sag = u(20, 80)
    cecum_z = min(f.crest_z + u(-40, 20), hepatic[2] - 90)
    control = [
        [-lat(radii[0]) * 0.8, -u(0.0, 0.3) * f.inner_b, cecum_z],  # caecum
        [-lat(radii[1]), u(-0.1, 0.25) * f.inner_b, (cecum_z + hepatic[2]) / 2],  # ascending
        [-lat(radii[2]) * 0.95, u(-0.1, 0.2) * f.inner_b, hepatic[2] - u(10, 30)],
        under_liver(c[0] - u(0.0, 0.3) * r[0], c[1] + u(0.0, 0.3) * r[1], radii[3]),  # under the right lobe
        hepatic,  # hepatic flexure, under the inferior right lobe
        under_liver(c[0] + 0.6 * r[0], -f.inner_b + radii[5] + u(3, 15), radii[5]),  # transverse
        [u(-20, 20), -f.inner_b + radii[6] + u(3, 20), hepatic[2] - sag],
        [0.45 * f.inner_a, -f.inner_b + radii[7] + u(5, 30), (hepatic[2] - sag + splenic[2]) / 2],
        splenic,  # splenic flexure, higher than the hepatic one
        [lat(radii[9]), u(0.0, 0.3) * f.inner_b, (splenic[2] + f.crest_z) / 2],  # descending
        [lat(radii[10]) * 0.9, u(-0.1, 0.2) * f.inner_b, f.crest_z - u(20, 50)],
        [u(0.1, 0.4) * f.inner_a, -u(0.0, 0.4) * f.inner_b, f.crest_z - u(70, 110)],  # sigmoid
        [u(-10, 10), f.spine_front + u(10, 30), f.crest_z - u(130, 170)],  # rectum
    ]
    control = [_jitter(rng, p, 3) for p in control]
    options = {Tissue.STOOL: 0.45, Tissue.GAS: 0.3, Tissue.FLUID: 0.15, COLLAPSED: 0.1}
    if oral:
        options[Tissue.ORAL_CONTRAST] = 0.3
    contents = _contents(rng, len(control), options)
    return _add_bubbles(rng, Tube.along(control, radii, Tissue.COLON, contents, wall=u(2, 3.5), step=12.0))


def _stomach(rng, f: Frame, oral: bool):
    u = rng.uniform
    dome = f.dome_left
    fundus = np.array([dome[0] - u(0, 20), dome[1] + u(0, 20), dome[2] - u(25, 40)])
    pylorus = np.array([u(-30, 5), -f.inner_b * u(0.35, 0.55), fundus[2] - u(70, 110)])
    control = [
        fundus,
        [fundus[0] - u(0, 15), -f.inner_b * u(0.1, 0.35), fundus[2] - u(35, 55)],  # body
        [fundus[0] * u(0.6, 0.9), -f.inner_b * u(0.45, 0.7), fundus[2] - u(70, 100)],
        [u(0.05, 0.25) * f.inner_a, -f.inner_b * u(0.55, 0.75), pylorus[2] - u(5, 20)],  # antrum
        pylorus,
    ]
    radii = [u(27, 40), u(25, 36), u(20, 30), u(15, 22), u(10, 14)]  # a fasting patient's stomach
    options = {Tissue.FLUID: 0.55, Tissue.STOOL: 0.25, COLLAPSED: 0.2}
    if oral:
        options[Tissue.ORAL_CONTRAST] = 0.6
    content = _pick(rng, options)
    tube = Tube.along([_jitter(rng, p, 4) for p in control], radii, Tissue.STOMACH, np.full(5, content), u(3, 5))
    gas_level = float(np.min(tube.points[:, 1]) - 30 + u(10, 60))  # anterior cap of 0–30 mm
    return tube, pylorus, gas_level


def _duodenum(rng, f: Frame, pylorus, oral: bool):
    u = rng.uniform
    gb = f.gallbladder
    bulb = np.array([gb[0] + u(5, 20), gb[1] + u(15, 30), gb[2] - u(0, 15)])  # D1 by the gallbladder neck
    top = bulb[2] - u(5, 15)
    d2_x = f.ivc[0] - u(15, 30)
    d3_z = top - u(60, 90)
    front = f.aorta[1] - f.aorta_r - u(12, 20)
    dj = np.array([f.aorta[0] + u(20, 35), front - u(5, 15), d3_z + u(30, 50)])
    control = [
        pylorus,
        bulb,
        [d2_x, f.ivc[1] - u(15, 25), top - u(10, 25)],  # superior flexure → D2
        [d2_x + u(-5, 5), f.ivc[1] - u(5, 20), (top + d3_z) / 2],
        [d2_x + u(5, 15), f.ivc[1] - u(0, 10), d3_z],  # inferior flexure
        [f.aorta[0] - u(0, 15), front, d3_z + u(-5, 5)],  # D3 in front of IVC and aorta
        dj,  # D4 up to the duodenojejunal flexure
    ]
    options = {Tissue.FLUID: 0.45, Tissue.GAS: 0.2, COLLAPSED: 0.35}
    if oral:
        options[Tissue.ORAL_CONTRAST] = 0.5
    radii = [u(11, 14), u(13, 17), u(12, 16), u(12, 16), u(11, 15), u(10, 14), u(10, 13)]
    contents = _contents(rng, len(control), options)
    tube = Tube.along([_jitter(rng, p, 3) for p in control], radii, Tissue.DUODENUM, contents, u(2, 3), step=8.0)
    return tube, dj


def _small_bowel(rng, f: Frame, colon: Tube, dj_flexure, oral: bool, step: float = 12.0) -> list:
    """Loops that fill the space inside the colon's frame: self-avoiding random walks."""
    radius = float(rng.uniform(10, 14))
    z_top = float(np.percentile(colon.points[:, 2], 85)) - radius
    z_bottom = f.bladder_top + radius
    x_half = f.inner_a - 2.2 * float(np.median(colon.radii)) - radius
    y_lo, y_hi = -f.inner_b + radius + 3, f.spine_front - radius
    if z_top - z_bottom < 2 * radius or x_half < radius or y_hi - y_lo < 2 * radius:
        return []

    def inside(p):
        ex = ((p[..., 0]) / x_half) ** 2 + ((p[..., 1] - (y_lo + y_hi) / 2) / ((y_hi - y_lo) / 2)) ** 2
        return (ex < 1) & (p[..., 2] < z_top) & (p[..., 2] > z_bottom)

    volume = np.pi * x_half * (y_hi - y_lo) / 2 * (z_top - z_bottom)
    target = rng.uniform(0.3, 0.55) * volume / (np.pi * radius**2)  # length (mm) filling that share
    points = np.empty((0, 3))
    start = np.asarray(dj_flexure, float)
    start = np.clip(start, [-x_half, y_lo, z_bottom], [x_half, y_hi, z_top - 1])
    loops: list = []
    options = {Tissue.FLUID: 0.5, COLLAPSED: 0.3, Tissue.GAS: 0.1}
    if oral:
        options[Tissue.ORAL_CONTRAST] = 0.6
    length, tries = 0.0, 0
    while length < target and tries < 40:
        tries += 1
        path = [start]
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        for _ in range(400):
            candidates = direction + rng.normal(0, 0.6, (12, 3))
            candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
            nxt = path[-1] + step * candidates
            ok = inside(nxt)
            if not ok.any():
                break
            others = np.vstack([points, np.array(path[:-2])]) if len(path) > 2 else points
            clearance = np.full(len(nxt), 1e9) if len(others) == 0 else _min_distance(nxt, others)
            score = np.where(ok, np.minimum(clearance, 3 * radius) + rng.uniform(0, 2, len(nxt)), -1.0)
            best = int(np.argmax(score))
            if score[best] < 1.6 * radius:
                break
            direction = candidates[best]
            path.append(nxt[best])
        if len(path) >= 4:
            path_array = np.array(path)
            contents = _contents(rng, len(path_array), options, run=8)
            loops.append(Tube(path_array, np.full(len(path_array), radius), Tissue.SMALL_BOWEL, contents, 2.0))
            points = np.vstack([points, path_array])
            length += step * (len(path_array) - 1)
        start = np.array([rng.uniform(-x_half, x_half), rng.uniform(y_lo, y_hi), rng.uniform(z_bottom, z_top)])
    return loops


def _min_distance(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each of ``points`` (n, 3), the distance (mm) to the nearest of ``others`` (m, 3)."""
    d = np.linalg.norm(points[:, None, :] - others[None, :, :], axis=2)
    return d.min(axis=1)
