"""How realistic is a synthetic abdomen? The neighbourhood of the liver, compared between label maps.

A label map (real multi-organ segmentation, e.g. TotalSegmentator's, or a phantom tissue map) is
reduced to *structure groups* (:data:`STRUCTURE_GROUPS`, matched on the label names) and, around the
liver, to the share of each group in shells of outward distance from the liver surface
(:func:`shell_composition`). Comparing these shares between phantoms and real maps says, e.g.,
whether the phantom liver is surrounded by bowel, kidney and lung the way a real one is.

Conventions: arrays are canonical NumPy ``(z, y, x)`` (:mod:`liverwild.io.orientation`: z runs
towards superior, so the last slice is the top one); spacings are ``(x, y, z)`` in mm, as in
:class:`liverwild.io.Geometry`. Depends on numpy, scipy and :mod:`liverwild.io` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io import Reorientation, read_image, read_label

Rule = tuple[str, ...]
"""Tokens that must all occur in a label name (split on ``_``, ``-``, space; case-free; a trailing
``s``/``es`` plural is accepted); a token written ``!word`` must *not* occur."""

STRUCTURE_GROUPS: dict[str, tuple[Rule, ...]] = {
    # the first group with a matching rule wins, so the order matters (e.g. liver_vessel → liver,
    # kidney_left → left_kidney before any other kidney → right_kidney)
    "outside": (("table",),),  # the phantoms' scanner table: outside the patient
    "liver": (("liver",),),  # liver incl. the phantoms' liver_vessel and liver_lesion
    "gallbladder": (("gallbladder",), ("gall", "bladder")),
    "diaphragm": (("diaphragm",),),
    "lung": (("lung",), ("lobe",)),
    "heart": (("heart",), ("myocardium",), ("atrium",), ("ventricle",), ("atrial", "appendage")),
    "left_kidney": (("kidney", "left"),),
    "right_kidney": (("kidney", "!left"),),  # the phantoms' kidney_cortex/kidney_medulla are the right kidney's
    "spleen": (("spleen",),),
    "pancreas": (("pancreas",),),
    "stomach": (("stomach",),),
    "bowel": tuple(
        (t,) for t in ("bowel", "colon", "duodenum", "intestine", "jejunum", "ileum", "caecum", "cecum", "rectum")
    ),
    "gas": (("gas",),),
    "vessels": tuple(
        (t,) for t in ("aorta", "vein", "vena", "cava", "ivc", "artery", "arteries", "vessel", "brachiocephalic")
    ),
    "bone": tuple(
        (t,)
        for t in (
            "bone",
            "marrow",
            "vertebra",
            "vertebrae",
            "rib",
            "costal",
            "cartilage",
            "sternum",
            "hip",
            "sacrum",
            "femur",
            "humerus",
            "scapula",
            "clavicle",
            "clavicula",
            "skull",
            "disc",  # intervertebral discs: counted with the spine
        )
    ),
    "muscle": tuple((t,) for t in ("muscle", "autochthon", "iliopsoas", "psoas", "gluteus", "rectus")),
    "fat": (("fat",),),
}
"""Structure group → rules recognising its label names (TotalSegmentator and phantom naming)."""

OTHER, UNLABELLED, AIR = "other", "unlabelled", "air"
GROUPS: tuple[str, ...] = (*STRUCTURE_GROUPS, OTHER, UNLABELLED, AIR)
"""Every group a share can be reported for: the named ones, ``other`` (a named label no rule
recognises: adrenal glands, urinary bladder, spinal cord, …), ``unlabelled`` (label 0 inside the
body: fat, body wall and anything else a real map leaves unnamed) and ``air`` (label 0 outside)."""

DEFAULT_SHELLS: tuple[tuple[float, float], ...] = ((0, 4), (4, 15), (15, 30))


def _tokens(name: str) -> set[str]:
    return {t for t in name.lower().replace("-", "_").replace(" ", "_").split("_") if t}


def _has(tokens: set[str], token: str) -> bool:
    return token in tokens or token + "s" in tokens or token + "es" in tokens


def structure_group(name: str) -> str:
    """The structure group of one label name (``other`` when no rule matches)."""
    tokens = _tokens(name)
    for group, rules in STRUCTURE_GROUPS.items():
        for rule in rules:
            if all(not _has(tokens, t[1:]) if t.startswith("!") else _has(tokens, t) for t in rule):
                return group
    return OTHER


def _values_of(names: Mapping[int, str], group: str) -> list[int]:
    return [int(v) for v, n in names.items() if structure_group(n) == group]


def body_mask(
    labels: np.ndarray,
    names: Mapping[int, str],
    image: np.ndarray | None = None,
    threshold: float | None = None,
) -> np.ndarray:
    """The patient's body, ``(z, y, x)`` bool.

    Labelled voxels (minus the ``outside`` group, i.e. the scanner table), united with
    ``image > threshold`` when an image (same grid) is given; then the largest 3D connected component,
    with holes filled slice by slice (so the lungs and the bowel gas lie inside). Without an image the
    body of a real map is only the hull of its labelled structures: a body wall or subcutaneous fat
    outside every labelled structure then counts as ``air``. ``threshold`` defaults to −500 for an
    image that reaches below −500 (CT, HU) and to 10 % of its 99th percentile otherwise (MR).
    """
    mask = labels > 0
    outside = _values_of(names, "outside")
    if outside:
        mask &= ~np.isin(labels, outside)
    if image is not None:
        if threshold is None:
            threshold = -500.0 if float(image.min()) < -500 else 0.1 * float(np.percentile(image, 99))
        mask |= image > threshold
    components, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    body = components == int(np.argmax(sizes))
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def _zyx(spacing_xyz: Sequence[float]) -> tuple[float, float, float]:
    sx, sy, sz = (float(s) for s in spacing_xyz)
    return (sz, sy, sx)


def shell_label(lo: float, hi: float) -> str:
    """``(4, 15)`` → ``"4-15 mm"``."""
    return f"{lo:g}-{hi:g} mm"


def shell_composition(
    labels: np.ndarray,
    spacing_xyz: Sequence[float],
    names: Mapping[int, str],
    shells: Sequence[tuple[float, float]] = DEFAULT_SHELLS,
    image: np.ndarray | None = None,
    body: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Share of each structure group in shells of distance outward from the liver.

    ``labels`` ``(z, y, x)`` int, ``spacing_xyz`` mm, ``names`` label value → name (the liver is every
    value whose group is ``liver``). The distance of a voxel outside the liver is the Euclidean
    distance (mm, anisotropic) from its centre to the nearest liver voxel centre, so a face neighbour
    lies at one spacing. A shell ``(lo, hi)`` holds the outside voxels with ``lo < d <= hi``; only
    voxels inside the volume count, i.e. a shell is truncated where the scan ends. Label 0 counts as
    ``unlabelled`` inside the body (:func:`body_mask`, or ``body`` when given) and as ``air`` outside.
    Returns ``{"4-15 mm": {group: share}}`` with the shares of each shell summing to 1 (an empty dict
    for an empty shell; every group if the liver is absent: empty dicts).
    """
    labels = np.asarray(labels)
    liver = np.isin(labels, _values_of(names, "liver"))
    if not liver.any():
        return {shell_label(lo, hi): {} for lo, hi in shells}
    distance = ndimage.distance_transform_edt(~liver, sampling=_zyx(spacing_xyz))
    if body is None:
        body = body_mask(labels, names, image)
    # one code per voxel: the group index, with label 0 split into unlabelled / air
    values = np.unique(labels)
    lut_groups = [GROUPS.index(structure_group(names.get(int(v), ""))) if v else 0 for v in values]
    group_index = np.asarray(lut_groups, dtype=np.int16)[np.searchsorted(values, labels)]
    zero = labels == 0
    group_index[zero & body] = GROUPS.index(UNLABELLED)
    group_index[zero & ~body] = GROUPS.index(AIR)
    result: dict[str, dict[str, float]] = {}
    for lo, hi in shells:
        in_shell = (distance > lo) & (distance <= hi)
        counts = np.bincount(group_index[in_shell], minlength=len(GROUPS))
        total = int(counts.sum())
        result[shell_label(lo, hi)] = {
            GROUPS[i]: float(c) / total for i, c in enumerate(counts.tolist()) if c and total
        }
    return result


def liver_summary(labels: np.ndarray, spacing_xyz: Sequence[float], names: Mapping[int, str]) -> dict:
    """Liver volume (``volume_ml``), cranio-caudal extent (``z_extent_mm``: slices spanned × slice
    spacing) and whether it reaches the top (superior, last canonical slice: ``touches_top``) or the
    bottom slice (``touches_bottom``) of the ``(z, y, x)`` map, i.e. is cut off by the scan."""
    liver = np.isin(np.asarray(labels), _values_of(names, "liver"))
    sx, sy, sz = (float(s) for s in spacing_xyz)
    slices = np.flatnonzero(liver.any(axis=(1, 2)))
    if slices.size == 0:
        return {"volume_ml": 0.0, "z_extent_mm": 0.0, "touches_top": False, "touches_bottom": False}
    return {
        "volume_ml": float(liver.sum()) * sx * sy * sz / 1000.0,
        "z_extent_mm": float(slices[-1] - slices[0] + 1) * sz,
        "touches_top": bool(slices[-1] == liver.shape[0] - 1),
        "touches_bottom": bool(slices[0] == 0),
    }


def read_names(path: str | Path) -> dict[int, str]:
    """A label name table: TotalSegmentator-style ``{"labels": {"1": "spleen", …}}`` (value → name; a
    bare ``{"1": "spleen"}`` too) or a ``dataset.json`` with ``organ_labels`` (or ``labels``) name →
    value. Returns value → name without the background (0)."""
    content = json.loads(Path(path).read_text(encoding="utf-8"))
    table = content
    if isinstance(content, dict):
        for key in ("organ_labels", "labels"):
            if isinstance(content.get(key), dict):
                table = content[key]
                break
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{path}: no label table (expected 'labels' or 'organ_labels')")
    if all(str(k).strip().lstrip("-").isdigit() for k in table):
        names = {int(k): str(v) for k, v in table.items()}
    else:
        names = {int(v): str(k) for k, v in table.items()}
    names.pop(0, None)
    return names


def read_canonical(path: str | Path, label: bool = False) -> tuple[np.ndarray, tuple[float, float, float]]:
    """An image (float32) or label map (integer) as a canonical ``(z, y, x)`` array and its
    ``(x, y, z)`` spacing in mm, whatever its storage orientation."""
    volume = read_label(path) if label else read_image(path)
    reorientation = Reorientation.from_geometry(volume.geometry)
    array = np.ascontiguousarray(reorientation.to_canonical(volume.array))
    spacing = reorientation.canonical_geometry(volume.geometry).spacing
    return array, (float(spacing[0]), float(spacing[1]), float(spacing[2]))


def read_label_map(
    path: str | Path, names_path: str | Path | None = None
) -> tuple[np.ndarray, tuple[float, float, float], dict[int, str]]:
    """A multi-organ label map: ``(labels (z, y, x) canonical, spacing (x, y, z) mm, value → name)``.

    ``names_path`` defaults to ``organs.json`` beside the map, else ``dataset.json`` beside it or one
    folder up (a raw dataset's ``labelsTr``); see :func:`read_names` for the formats.
    """
    path = Path(path)
    if names_path is None:
        candidates = [path.parent / "organs.json", path.parent / "dataset.json", path.parent.parent / "dataset.json"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{path}: no name table found ({', '.join(map(str, candidates))})")
        names_path = found
    labels, spacing = read_canonical(path, label=True)
    return labels, spacing, read_names(names_path)
