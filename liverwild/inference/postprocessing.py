"""Anatomical post-processing of a predicted liver mask, and the largest component of every organ of a
multi-organ label map (:func:`largest_component_per_class`, nnU-Net's "remove all but the largest
component").

A liver mask is post-processed on the predictor's canonical grid (:mod:`liverwild.io.orientation`:
NumPy axes ``(z, y, x)`` towards superior, posterior and patient-left) by the steps of :data:`STEPS`,
each of which can be switched off (:func:`postprocess`):

- ``largest_component``: keep one 26-connected piece of the mask, the largest (or, with ``location``,
  the largest not left of the body's midline);
- ``bridges``: before choosing, cut the mask at bridges thinner than ``2 × BRIDGE_RADIUS_MM``: the
  mask eroded by that radius (Euclidean, in mm) falls into cores, and each core is grown back inside the
  mask, competing with the others, so a kept piece keeps its full boundary;
- ``location``: pieces whose centroid lies more than ``MIDLINE_MARGIN_MM`` left of the body's midline
  (patient coordinates, from the direction cosines) are not candidates;
- ``z_continuity``: the liver is one run of axial slices; walking from its largest slice towards the
  dome and towards the tip, an in-plane island stays only if at least ``Z_OVERLAP`` of its area lies on
  the liver kept on the slice before it;
- ``fill_holes``: fill cavities enclosed in 3D;
- ``plausibility``: no change to the mask; :func:`plausibility` flags implausible volumes and extents.

The values are anatomical, not fitted to any scan: see documentation/prediction_and_evaluation.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..errors import ConfigurationError
from ..io.geometry import Geometry
from ..labelling import fill_holes as fill_holes  # re-exported: one of the steps
from ..labelling import label, label_slices

FULL = np.ones((3, 3, 3), bool)  # 26-connectivity, for SciPy's functions (imported where used, rarely)

STEPS = ("largest_component", "bridges", "location", "z_continuity", "fill_holes", "plausibility")
DEFAULT_STEPS = tuple(s for s in STEPS if s != "bridges")
"""What ``postprocess=True`` runs. ``bridges`` is opt-in: its failure mode is to cut a liver whose mask
has thin necks (an under-segmented liver with tumours) into pieces and drop all but one, losing whole
lobes, while ``z_continuity`` removes the same slice-wise leaks below the liver and fails gracefully
(see documentation/prediction_and_evaluation.md)."""
NEEDS = {"bridges": "largest_component", "location": "largest_component"}  # step → the step it refines

BRIDGE_RADIUS_MM = 5.0  # erosion radius: bridges thinner than 10 mm are cut; the liver is far thicker
MIDLINE_MARGIN_MM = 20.0  # a piece centred more than this left of the body's midline is not the liver
Z_OVERLAP = 0.5  # share of an island's area that must lie on the previous slice's liver
VOLUME_ML = (600.0, 4000.0)  # plausible volume of a fully covered adult liver
CRANIOCAUDAL_MM = (80.0, 300.0)  # plausible dome-to-tip extent
INPLANE_MAX_MM = 300.0  # no liver is wider (left-right or anterior-posterior) than this


def check_steps(steps: Iterable[str]) -> tuple[str, ...]:
    """``steps`` in the order of :data:`STEPS`; unknown names, or a step without the one it refines,
    raise :class:`~liverwild.errors.ConfigurationError`."""
    chosen = set(steps)
    unknown = sorted(chosen - set(STEPS))
    if unknown:
        raise ConfigurationError(
            f"unknown post-processing step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}"
        )
    for step, needed in NEEDS.items():
        if step in chosen and needed not in chosen:
            raise ConfigurationError(f"post-processing step {step} refines {needed}: add {needed}")
    return tuple(s for s in STEPS if s in chosen)


def spacing_zyx(geometry: Geometry) -> np.ndarray:
    """Voxel spacing (mm) along the NumPy axes ``(z, y, x)``."""
    return np.asarray(geometry.spacing[::-1], dtype=float)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean mask of the largest 26-connected component of ``mask`` (the first in raster order on a tie)."""
    labels, n = label(mask, full=True)
    if n <= 1:
        return mask.astype(bool)
    return labels == int(np.argmax(np.bincount(labels[labels > 0])))


def bounding_box(mask: np.ndarray) -> tuple:
    """Slices of the smallest box holding every foreground voxel (cheap: three projections)."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def pieces_after_bridges(mask: np.ndarray, spacing: np.ndarray, radius_mm: float = BRIDGE_RADIUS_MM) -> np.ndarray:
    """Label map (int32, same shape as the boolean ``(z, y, x)`` mask; 0 outside) of the mask cut at
    bridges thinner than ``2 × radius_mm``.

    Cores are the 26-connected components of the voxels farther than ``radius_mm`` from the background
    (Euclidean distance in mm with ``spacing`` (z, y, x) mm, so anisotropic voxels count by their size;
    enclosed cavities do not count as background, outside the array does). Where a component of the
    mask holds several cores, they are grown back inside it by a watershed on that distance (a geodesic
    reconstruction in which each voxel goes to the core that floods it first): the cut falls at the
    narrowest point of a bridge and every voxel nearer a core keeps it. Components without a core
    (thinner than ``2 × radius_mm`` everywhere) and components with one core stay whole.
    """
    from scipy import ndimage
    from skimage.segmentation import watershed

    components, n = label(mask, full=True)
    solid = np.pad(fill_holes(mask), 1)  # a cavity (vessel, lesion) must not split the liver's core
    distance = ndimage.distance_transform_edt(solid, sampling=spacing)[1:-1, 1:-1, 1:-1]
    cores, n_cores = label((distance > radius_mm) & mask, full=True)
    pairs = np.unique(components[cores > 0].astype(np.int64) * (n_cores + 1) + cores[cores > 0])
    cores_per_component = np.bincount(pairs // (n_cores + 1), minlength=n + 1)
    split = cores_per_component[components] > 1  # voxels of components holding several cores
    if not split.any():
        return components
    interior = distance > radius_mm + float(np.sqrt(np.sum(np.square(spacing))))  # no neighbour outside a core
    grown = watershed(-distance, np.where(split, cores, 0), mask=split & ~interior, connectivity=FULL)
    grown = np.where(interior, cores, grown)  # flooding starts at the cores' rims: their interiors are settled
    return np.where(split, grown, np.where(components > 0, components + n_cores, 0)).astype(np.int32)


def piece_centroid(inside: np.ndarray, start: tuple = (0, 0, 0)) -> np.ndarray:
    """Centroid ``(z, y, x)`` (voxels) of the boolean ``inside``, whose first voxel lies at ``start``: from
    its three projections (``ndimage.center_of_mass``'s centroid without a float copy of the array)."""
    centroid = np.empty(3)
    for axis in range(3):
        profile = inside.sum(axis=tuple(a for a in range(3) if a != axis))
        centroid[axis] = start[axis] + profile @ np.arange(len(profile)) / profile.sum()
    return centroid


def offsets_from_centroids(centroids: np.ndarray, geometry: Geometry, centre: np.ndarray, offset: tuple) -> np.ndarray:
    """How far (mm, towards the patient's left) points ``(n, 3)`` ``(z, y, x)`` (voxels of a crop at voxel
    ``offset`` of ``geometry``'s grid) lie from ``centre`` (LPS mm), whatever the storage orientation."""
    physical = geometry.index_to_physical((centroids.reshape(-1, 3) + np.asarray(offset))[:, ::-1])
    return physical[:, 0] - float(centre[0])  # LPS x runs towards the patient's left


def lateral_offsets_mm(
    labels: np.ndarray, index: np.ndarray, geometry: Geometry, centre: np.ndarray, offset: tuple = (0, 0, 0)
) -> np.ndarray:
    """How far (mm, towards the patient's left) the centroid of each label in ``index`` lies from
    ``centre`` (LPS mm); ``labels`` is ``(z, y, x)`` on ``geometry``'s grid, cropped at voxel ``offset``
    (z, y, x). Patient coordinates come from the direction cosines, whatever the storage orientation."""
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)
    centroids = np.empty((len(index), 3))
    for k, value in enumerate(index):  # each piece inside its own box (4× faster than center_of_mass on a liver)
        box = boxes[int(value) - 1]
        centroids[k] = piece_centroid(labels[box] == value, tuple(s.start for s in box))
    return offsets_from_centroids(centroids, geometry, centre, offset)


def choose_piece(
    labels: np.ndarray, geometry: Geometry, centre: np.ndarray | None, offset: tuple = (0, 0, 0)
) -> np.ndarray:
    """Boolean mask of the largest labelled piece of ``labels`` (int, ``(z, y, x)``, cropped at ``offset``);
    with the body ``centre`` (LPS mm), of the largest piece whose centroid lies at most
    :data:`MIDLINE_MARGIN_MM` left of it (the largest of all if none does).

    The largest piece is checked first and, as it usually qualifies, alone; the others' centroids are
    computed only when it does not."""
    sizes = np.bincount(labels[labels > 0])  # the foreground's labels only: several times faster
    candidates = np.flatnonzero(sizes)
    largest = labels == int(candidates[np.argmax(sizes[candidates])])
    if centre is None or len(candidates) == 1:
        return largest
    box = bounding_box(largest)
    centroid = piece_centroid(largest[box], tuple(s.start for s in box))
    if offsets_from_centroids(centroid, geometry, centre, offset)[0] <= MIDLINE_MARGIN_MM:
        return largest
    right = lateral_offsets_mm(labels, candidates, geometry, centre, offset) <= MIDLINE_MARGIN_MM
    candidates = candidates[right] if right.any() else candidates
    return labels == int(candidates[np.argmax(sizes[candidates])])


def resting_islands(
    labels: np.ndarray, area: np.ndarray, previous: np.ndarray, min_overlap: float = Z_OVERLAP
) -> np.ndarray:
    """Boolean ``(y, x)`` mask of the islands of a slice (its labels from :func:`liverwild.labelling.label_slices`;
    ``area``: every label's voxel count over the stack) with at least ``min_overlap`` of their area on
    ``previous`` (the liver kept on the adjacent slice, boolean, same shape)."""
    resting = np.bincount(labels[previous], minlength=area.size)
    keep = resting >= min_overlap * area
    keep[0] = False
    return keep[labels]


def z_continuity(mask: np.ndarray, min_overlap: float = Z_OVERLAP) -> np.ndarray:
    """Boolean ``(z, y, x)`` mask (z = canonical axial slices, inferior → superior) reduced to one run of
    slices: from the slice of largest area, walk towards the dome and towards the tip keeping the
    :func:`resting_islands` (8-connected, each slice on its own) of each slice on the liver kept on the slice
    before; the first slice left empty ends the walk. A tapering tip rests on the larger slice above it
    and is kept."""
    out = np.zeros(mask.shape, bool)
    slice_area = np.count_nonzero(mask, axis=(1, 2))
    if not slice_area.any():
        return out
    labels, n = label_slices(mask, full=True)
    area = np.bincount(labels[mask.astype(bool, copy=False)], minlength=n + 1)  # the islands' voxels only
    start = int(np.argmax(slice_area))
    out[start] = mask[start]
    for step in (-1, 1):
        k = start + step
        while 0 <= k < mask.shape[0]:
            out[k] = resting_islands(labels[k], area, out[k - step], min_overlap)
            if not out[k].any():
                break
            k += step
    return out


def removed_components(before: np.ndarray, after: np.ndarray, labels: np.ndarray | None = None) -> int:
    """How many 26-connected components of the boolean mask ``before`` have no voxel left in ``after``
    (same shape): the pieces post-processing dropped whole. ``labels``: ``before``'s 26-connected
    labelling when the caller has it (it is not computed again)."""
    if labels is None:
        labels = label(before, full=True)[0]
    n = int(labels.max(initial=0))
    hits = np.bincount(labels[after.astype(bool, copy=False)].ravel(), minlength=n + 1)  # voxels kept per label
    return int(n - np.count_nonzero(hits[1:]))


def postprocess(
    mask: np.ndarray,
    geometry: Geometry,
    steps: Iterable[str] = STEPS,
    body_centre: np.ndarray | Callable[[], np.ndarray] | None = None,
    record: dict | None = None,
) -> np.ndarray:
    """The ``steps`` (any of :data:`STEPS`; applied in that order) on a canonical liver mask ``(z, y, x)``
    on ``geometry`` (its canonical geometry: spacing in mm, direction cosines); uint8 0/1, same shape.

    ``body_centre`` (LPS mm, from :func:`body_centre_mm`), or a function returning it, is needed by
    ``location``; a function is called once the mask is labelled, so that a caller can compute the centre
    in another thread meanwhile. Computed inside the mask's bounding box; an empty mask stays empty.
    ``record``, when given, receives ``components_removed``: the :func:`removed_components` of the mask.
    """
    steps = check_steps(steps)
    out = np.zeros(mask.shape, np.uint8)
    if record is not None:
        record["components_removed"] = 0
    if not mask.any():
        return out
    if "location" in steps and body_centre is None:
        raise ValueError("the location step needs the body centre")
    box = bounding_box(mask)
    region = mask[box].astype(bool)
    offset = tuple(s.start for s in box)
    components = None  # the mask's 26-connected components, once labelled
    if "largest_component" in steps:
        if "bridges" in steps:
            labels = pieces_after_bridges(region, spacing_zyx(geometry))
        else:
            labels = components = label(region, full=True)[0]
        centre = None
        if "location" in steps:
            centre = body_centre() if callable(body_centre) else body_centre
        region = choose_piece(labels, geometry, centre, offset)
    if "z_continuity" in steps:
        region = z_continuity(region)
    if "fill_holes" in steps:
        region = fill_holes(region)
    if record is not None:
        record["components_removed"] = removed_components(mask[box], region, components)
    out[box] = region
    return out


def body_centre_mm(image: np.ndarray, geometry: Geometry, modality: str, subsampled: bool = False) -> np.ndarray:
    """Centroid (x, y, z) in LPS mm of the body outline of a stored ``(z, y, x)`` image on ``geometry``
    (:func:`planning.fingerprint.body_mask`: CT above −300 HU, MR above half the Otsu threshold, largest
    component; on a 2× subsampled grid). Its x is the body's left-right midline. ``subsampled``: ``image``
    is already that grid, ``stored[::2, ::2, ::2]`` (a copy a caller keeps while the scan is normalised)."""
    from planning.fingerprint import body_mask

    body = body_mask(image if subsampled else image[::2, ::2, ::2], modality)
    if body.any():
        index_zyx = np.argwhere(body).mean(axis=0) * 2
    else:  # no body found: the scan's centre (of the whole grid, also from a subsample)
        index_zyx = (np.asarray(geometry.shape) - 1) / 2
    return geometry.index_to_physical(index_zyx[::-1])


def plausibility(mask: np.ndarray, geometry: Geometry, body_centre: np.ndarray | None = None) -> dict:
    """``{"flags": [...], "extent_mm": {...}}`` of a canonical liver mask ``(z, y, x)`` on ``geometry``.

    Flags (words): ``empty``; ``touches_inferior_edge`` / ``touches_superior_edge`` (the mask reaches the
    first / last axial slice: the liver is partly outside the scan, so ``volume_low`` and
    ``craniocaudal_extent_low`` are not judged); ``volume_low`` / ``volume_high`` (outside
    :data:`VOLUME_ML`; a part above the upper bound is flagged too); ``craniocaudal_extent_low`` /
    ``craniocaudal_extent_high`` (outside :data:`CRANIOCAUDAL_MM`); ``inplane_extent_high`` (wider than
    :data:`INPLANE_MAX_MM`); ``left_of_midline`` (with ``body_centre``: the mask's centroid lies more
    than :data:`MIDLINE_MARGIN_MM` left of the body's midline).
    """
    if not mask.any():
        return {"flags": ["empty"], "extent_mm": {}}
    box = bounding_box(mask)
    offset = tuple(s.start for s in box)
    spacing = spacing_zyx(geometry)
    cc, ap, lr = ((s.stop - s.start) * float(d) for s, d in zip(box, spacing))
    flags = []
    if box[0].start == 0:
        flags.append("touches_inferior_edge")
    if box[0].stop == mask.shape[0]:
        flags.append("touches_superior_edge")
    covered = not flags
    ml = float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000
    if ml > VOLUME_ML[1]:
        flags.append("volume_high")
    elif covered and ml < VOLUME_ML[0]:
        flags.append("volume_low")
    if cc > CRANIOCAUDAL_MM[1]:
        flags.append("craniocaudal_extent_high")
    elif covered and cc < CRANIOCAUDAL_MM[0]:
        flags.append("craniocaudal_extent_low")
    if max(lr, ap) > INPLANE_MAX_MM:
        flags.append("inplane_extent_high")
    if body_centre is not None:
        centroid = piece_centroid(mask[box], offset)  # 0/1 values: their sums count voxels
        if offsets_from_centroids(centroid, geometry, body_centre, (0, 0, 0))[0] > MIDLINE_MARGIN_MM:
            flags.append("left_of_midline")
    extent = {"craniocaudal": round(cc, 1), "anterior_posterior": round(ap, 1), "left_right": round(lr, 1)}
    return {"flags": flags, "extent_mm": extent}


def largest_component_per_class(label_map: np.ndarray, removed: dict | None = None) -> np.ndarray:
    """Every label value keeps only its largest 3D (26-connected) component; smaller pieces become
    background (0). Computed inside each label's bounding box; uint8. ``removed``, when given, receives
    label value → number of components removed."""
    out = np.asarray(label_map, np.uint8).copy()
    for value in np.unique(out):
        if value == 0:
            continue
        box = bounding_box(out == value)
        region = out[box]
        inside = region == value
        labels, n = label(inside, full=True)
        if n > 1:
            region[inside & (labels != int(np.argmax(np.bincount(labels[inside]))))] = 0
        if removed is not None:
            removed[int(value)] = max(n - 1, 0)
    return out


def steps_from(option: bool | Iterable[str]) -> tuple[str, ...]:
    """The steps a ``postprocess`` option names: ``True`` :data:`DEFAULT_STEPS` (the default),
    ``False`` none, or a list of step names (checked by :func:`check_steps`)."""
    if isinstance(option, bool):
        return DEFAULT_STEPS if option else ()
    if isinstance(option, str):
        option = [option]
    return check_steps(option)
