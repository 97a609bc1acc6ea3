"""The CPU stage of caching, one case per worker process: read the scan, its liver label and (when
the dataset keeps one) its multi-organ map, check them, apply the per-case transform and make the
augmented views (:func:`prepare_case`, 2D) — or the whole resized volume and its organ classes
(:func:`prepare_volume_case`, the ``3d`` configuration)."""

from __future__ import annotations

import time

import numpy as np
import torch

from liverwild.errors import LiverwildError
from liverwild.io import Reorientation, check_not_constant, read_aligned_label, read_image
from planning.plans import Plans

from .augmentation import augment_stack
from .cache import input_signature
from .slices import resize_label_map_stack, resize_label_stack
from .transform import prepare_slices
from .volumes import prepare_class_map, prepare_volume


def view_seed(base: int, case: str, view: int) -> int:
    return int(np.random.SeedSequence([base, view, *(ord(c) for c in case)]).generate_state(1)[0])


def case_inputs(image_path, label_path, organs_path=None) -> list:
    """The files a cached case is made from (its signature covers them all)."""
    return [image_path, label_path] + ([organs_path] if organs_path else [])


def prepare_case(job: tuple) -> tuple:
    """Read, normalise, resize and augment one case (the CPU path, in a worker process). ``job``: ``(case,
    image, label, organs or None, plans, single_thread)``. Returns (case, arrays, properties, error)."""
    case, _, _, _, plans, _ = job
    case, inputs, read, error = read_case(job)
    if error:
        return case, None, None, error
    return (case, *transform_case(inputs, read, plans), None)


def read_case(job: tuple) -> tuple:
    """The reading half of :func:`prepare_case` — what the workers do when the transform runs on the
    teacher's device: read and check the scan, its liver label and organ map. Returns (case, ``{"image",
    "label", "organs"}`` arrays in stored layout, what is known of the case so far, error)."""
    case, image_path, label_path, organs_path, plans, single_thread = job
    if single_thread:
        torch.set_num_threads(1)
    try:
        image = read_image(image_path)
        check_not_constant(image)
        label = read_aligned_label(label_path, image)
        organs = None
        if organs_path is not None:
            organ_map = read_aligned_label(organs_path, image)
            if organ_map.array.min() < 0 or organ_map.array.max() > 255:
                raise LiverwildError(f"{organs_path}: organ values must lie in 0..255")
            organs = organ_map.array
    except LiverwildError as exc:
        return case, None, None, str(exc)
    known = {
        "case": case,
        "image": str(image_path),
        "label": str(label_path),
        "organs": str(organs_path) if organs_path else None,
        "signature": input_signature(*case_inputs(image_path, label_path, organs_path)),
        "geometry": image.geometry,
    }
    return case, {"image": image.array, "label": label.array, "organs": organs}, known, None


def transform_case(inputs: dict, known: dict, plans: Plans, device: torch.device | None = None) -> tuple:
    """The read arrays of :func:`read_case` → ``(arrays, properties)`` of the cache: canonical slices
    normalised and resized, labels, organ maps and the augmented views — with NumPy and torch on the CPU
    (``device`` None), or as torch operations on ``device`` (:mod:`.on_device`; the same cache within
    float16 rounding)."""
    start = time.perf_counter()
    geometry, case = known["geometry"], known["case"]
    if device is None:
        slices, stats, reorient = prepare_slices(inputs["image"], geometry, plans, inplace=True)
        labels = resize_label_stack(np.ascontiguousarray(reorient.to_canonical(inputs["label"])), plans.slice_size)
        organs = None
        if inputs["organs"] is not None:
            canonical_organs = np.ascontiguousarray(reorient.to_canonical(inputs["organs"]))
            organs = resize_label_map_stack(canonical_organs, plans.slice_size)
        views_s, views_l = [slices], [labels]
        for v in range(1, plans.views + 1):
            s, m = augment_stack(slices, labels, plans.augmentation, view_seed(plans.augmentation.seed, case, v))
            views_s.append(s)
            views_l.append(m)
        arrays = {"slices": np.stack(views_s).astype(np.float16), "labels": np.stack(views_l), "organs": organs}
    else:
        arrays, stats, reorient = _transform_on_device(inputs, geometry, case, plans, device)
    labels = np.asarray(arrays["labels"])[0]
    liver = np.flatnonzero(labels.any(axis=(1, 2)))
    properties = {
        **known,
        "data_identifier": plans.data_identifier(),
        "modality": plans.modality,
        "n_slices": int(labels.shape[0]),
        "views": plans.views,
        "liver_slices": [int(liver[0]), int(liver[-1])] if liver.size else None,
        "geometry": geometry.to_dict(),
        "canonical_geometry": reorient.canonical_geometry(geometry).to_dict(),
        "reorientation": {"order": list(reorient.order), "flip": list(reorient.flip)},
        "normalization": stats,
        "backbone": plans.backbone.to_json() if plans.backbone is not None else {},
        "cpu_seconds": round(time.perf_counter() - start, 3),
        "transforms_on": "cpu" if device is None else f"device ({device})",
    }
    return arrays, properties


def _transform_on_device(inputs: dict, geometry, case: str, plans: Plans, device: torch.device) -> tuple:
    """:func:`transform_case`'s device branch: ``(arrays, normalisation stats, reorientation)``."""
    from planning.fingerprint import body_mask

    from .on_device import augment_on_device, normalize_on_device, resize_on_device

    reorient = Reorientation.from_geometry(geometry)
    canonical = reorient.to_canonical(inputs["image"])  # a view: no copy
    body_median = None
    if plans.normalization.relative_to_body_median:  # the one step left on the CPU (connected components)
        body_median = float(np.median(canonical[body_mask(canonical, plans.modality)]))
    volume = torch.from_numpy(np.ascontiguousarray(canonical, dtype=np.float32)).to(device)
    with torch.inference_mode():
        normalised, stats = normalize_on_device(volume, plans.normalization, body_median)
        del volume
        slices = resize_on_device(normalised, plans.slice_size)
        del normalised
        label = torch.from_numpy(np.ascontiguousarray(reorient.to_canonical(inputs["label"]) > 0)).to(device)
        labels = (resize_on_device(label.float(), plans.slice_size) >= 0.5).to(torch.uint8)
        organs = None
        if inputs["organs"] is not None:
            organ_map = torch.from_numpy(np.ascontiguousarray(reorient.to_canonical(inputs["organs"]), np.float32))
            resized = resize_on_device(organ_map.to(device), plans.slice_size, mode="nearest-exact")
            organs = torch.round(resized).to(torch.uint8).cpu().numpy()
        views_s, views_l = [slices], [labels]
        for v in range(1, plans.views + 1):
            s, m = augment_on_device(slices, labels, plans.augmentation, view_seed(plans.augmentation.seed, case, v))
            views_s.append(s)
            views_l.append(m)
        arrays = {
            "slices": torch.stack(views_s).half().cpu().numpy(),
            "labels": torch.stack(views_l).cpu().numpy(),
            "organs": organs,
        }
    return arrays, stats, reorient


def prepare_volume_case(job: tuple) -> tuple:
    """Read, normalise and resize one case for the ``3d`` configuration, with its organ classes.
    ``job``: ``(case, image_path, label_path, plans, single_thread)`` where ``label_path`` is the organ
    map or the liver label, as the plans' ``3d.label_maps`` says. Returns (case, arrays, properties, error)."""
    case, image_path, label_path, plans, single_thread = job
    if single_thread:
        torch.set_num_threads(1)
    config = plans.config_3d
    if config is None:
        return case, None, None, f"the plans of {plans.dataset} have no 3d configuration"
    try:
        image = read_image(image_path)
        check_not_constant(image)
        label = read_aligned_label(label_path, image)
        start = time.perf_counter()
        volume, stats, reorient = prepare_volume(
            image.array, image.geometry, plans.modality, config.volume_size, config.normalization, inplace=True
        )
        labels, voxels = prepare_class_map(label.array, reorient, config)
        canonical = reorient.canonical_geometry(image.geometry)
        size_zyx = config.volume_size
        properties = {
            "case": case,
            "image": str(image_path),
            "label": str(label_path),
            "signature": input_signature(image_path, label_path),
            "data_identifier": plans.data_identifier_3d(),
            "modality": plans.modality,
            "classes": list(config.classes),
            "class_voxels": voxels,  # at the scan's resolution: 0 = the organ is not in this scan
            "volume_size": list(size_zyx),
            # the resized grid's voxel size (x, y, z) in mm: the canonical extent over the new size
            "volume_spacing_xyz": [
                canonical.spacing[axis] * canonical.size[axis] / size_zyx[2 - axis] for axis in range(3)
            ],
            "geometry": image.geometry.to_dict(),
            "canonical_geometry": canonical.to_dict(),
            "reorientation": {"order": list(reorient.order), "flip": list(reorient.flip)},
            "normalization": stats,
            "cpu_seconds": round(time.perf_counter() - start, 3),
        }
        return case, {"volume": volume.astype(np.float16), "labels": labels}, properties, None
    except LiverwildError as exc:
        return case, None, None, str(exc)
