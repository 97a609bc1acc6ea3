"""Generate phantom cases and whole raw datasets (one per domain)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..datasets.format import CHANNEL, ORGAN_FOLDER, DatasetInfo, write_dataset_json
from ..io import Geometry, Reorientation, Volume, stored_geometry, write_mask, write_volume
from ..parallel import bounded_imap
from .anatomy import Abdomen, Grid
from .domains import DOMAINS, Domain
from .tissues import LIVER_TISSUES, Tissue, label_name
from .version import GENERATOR_VERSION

SOURCE = "liverwild synthetic phantoms (liverwild.phantoms)"
LICENCE = "CC0-1.0 (synthetic, generated)"


def case_seed(seed: int, domain: Domain, case: int) -> np.random.SeedSequence:
    """Independent, order-free seed for one case of one domain."""
    key = [ord(c) for c in domain.name]
    return np.random.SeedSequence([seed, case, *key])


def canonical_grid(domain: Domain, n_slices: int | None = None):
    """The canonical (LPS-aligned) grid and geometry of a domain's scan."""
    sx, sy, sz = domain.spacing
    nz = n_slices or domain.n_slices()
    n = domain.matrix
    x = (np.arange(n) - (n - 1) / 2) * sx
    y = (np.arange(n) - (n - 1) / 2) * sy
    z_center = (domain.z_range[0] + domain.z_range[1]) / 2
    z = z_center + (np.arange(nz) - (nz - 1) / 2) * sz
    geometry = Geometry((n, n, nz), (sx, sy, sz), (float(x[0]), float(y[0]), float(z[0])), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return Grid(x, y, z), geometry


def slab_samples(slice_mm: float) -> int:
    """Sub-slices a slice of ``slice_mm`` integrates (odd, so one of them is the slice's centre):
    1 below 4 mm, 3 up to 7.5 mm, 5 above."""
    return 1 if slice_mm < 4.0 else 3 if slice_mm < 7.5 else 5


def generate_case(domain: Domain | str, seed: int = 0, case: int = 0, n_slices: int | None = None):
    """One phantom scan: ``(image, label, tissues)``.

    ``image`` and ``label`` are :class:`~liverwild.io.Volume` objects in the domain's storage
    orientation (label uint8, 1 = liver incl. vessels and lesions); ``tissues`` is the canonical uint8
    organ map. ``n_slices`` overrides the domain's slice count (the z extent is kept centred). Thick
    slices integrate :func:`slab_samples` sub-slices (partial volume); the label and the organ map are
    the slab's central sub-slice, so the label is exactly the organ map's liver.
    """
    from .render import render

    domain = DOMAINS[domain] if isinstance(domain, str) else domain
    rng = np.random.default_rng(case_seed(seed, domain, case))
    grid, canonical = canonical_grid(domain, n_slices)
    slab = slab_samples(domain.slice_mm)
    if slab > 1:
        offsets = (np.arange(slab) - (slab - 1) / 2) * domain.slice_mm / slab
        grid = Grid(grid.x, grid.y, (grid.z[:, None] + offsets[None]).ravel())
    if tuple(domain.anatomy_scale) != (1.0, 1.0, 1.0):  # a larger patient = a finer grid in body units
        ax, ay, az = domain.anatomy_scale
        grid = Grid(grid.x / ax, grid.y / ay, grid.z / az)
    canvas = Abdomen(rng).paint_canvas(grid)
    image = render(canvas.appearance(), domain, canonical.spacing, rng, slab)
    tissues = canvas.organs[slab // 2 :: slab]
    liver = np.isin(tissues, LIVER_TISSUES).astype(np.uint8)
    geometry = stored_geometry(canonical, domain.direction)
    reorient = Reorientation.from_geometry(geometry)
    dtype = np.dtype(domain.dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        image = np.clip(np.rint(image), info.min, info.max)
    stored_image = np.ascontiguousarray(reorient.from_canonical(image.astype(dtype)))
    stored_label = np.ascontiguousarray(reorient.from_canonical(liver))
    return Volume(stored_image, geometry), Volume(stored_label, geometry), tissues


def organ_labels() -> dict:
    """``dataset.json``'s ``organ_labels`` of a phantom dataset: every tissue code but air (0), named so
    that :mod:`liverwild.datasets.organs` finds the organs (``liver_lesion``, ``left_kidney_cortex``)."""
    return {label_name(tissue): int(tissue) for tissue in Tissue if tissue != Tissue.AIR}


def _write_case(args):
    domain, folder, seed, case, n_slices, overwrite = args
    name = f"{domain.name.lower()}_{case:03d}"
    image_path = Path(folder) / "imagesTr" / f"{name}{CHANNEL}.nii.gz"
    label_path = Path(folder) / "labelsTr" / f"{name}.nii.gz"
    organs_path = Path(folder) / ORGAN_FOLDER / f"{name}.nii.gz"
    if image_path.exists() and label_path.exists() and organs_path.exists() and not overwrite:
        return name, 0.0
    start = time.perf_counter()
    image, label, tissues = generate_case(domain, seed, case, n_slices)
    reorient = Reorientation.from_geometry(image.geometry)
    write_volume(label.array, label.geometry, label_path)  # labels first: the image marks completion
    write_mask(np.ascontiguousarray(reorient.from_canonical(tissues)), label.geometry, organs_path)
    write_volume(image.array, image.geometry, image_path)
    return name, time.perf_counter() - start


def write_domain(
    domain: Domain | str,
    out_root,
    n_cases: int | None = None,
    seed: int = 0,
    scale: float = 1.0,
    n_slices: int | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write one domain as a raw dataset ``out_root/<domain name>/``; returns the folder.

    Cases already on disk are kept (re-runs are cheap) unless ``overwrite``.
    """
    from tqdm import tqdm

    domain = (DOMAINS[domain] if isinstance(domain, str) else domain).scaled(scale)
    n_cases = n_cases or domain.cases
    folder = Path(out_root) / domain.name
    jobs = [(domain, folder, seed, case, n_slices, overwrite) for case in range(n_cases)]
    names = []
    bar = tqdm(total=n_cases, desc=domain.name, unit="case", disable=not progress)
    for name, _ in bounded_imap(_write_case, jobs, workers):
        names.append(name)
        bar.update()
    bar.close()
    info = DatasetInfo(
        name=domain.name,
        modality=domain.modality,
        cases=sorted(names),
        source=SOURCE,
        licence=LICENCE,
        description=domain.description,
        extra={
            "phantom": {
                "seed": seed,
                "generator_version": GENERATOR_VERSION,
                "scale": scale,
                "spacing_mm": list(domain.spacing),
                "orientation": Geometry((1, 1, 1), (1, 1, 1), (0, 0, 0), domain.direction).orientation_code(),
            },
            "organ_labels": organ_labels(),
            "organ_label_folder": ORGAN_FOLDER,
        },
    )
    write_dataset_json(folder, info)
    return folder


def write_phantoms(
    out_root,
    domains=None,
    n_cases: int | None = None,
    seed: int = 0,
    scale: float = 1.0,
    n_slices: int | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> list:
    """Write several domains (default: all registered) under ``out_root``; returns their folders."""
    names = list(domains or DOMAINS)
    unknown = [n for n in names if n not in DOMAINS]
    if unknown:
        raise KeyError(f"unknown phantom domain(s) {unknown}; known: {', '.join(DOMAINS)}")
    return [
        write_domain(DOMAINS[n], out_root, n_cases, seed, scale, n_slices, workers, overwrite, progress) for n in names
    ]


def save_preview(path, domains=None, seed: int = 0, case: int = 0, scale: float = 1.0):
    """PNG with axial, coronal and sagittal views of one case per domain, liver outlined in red."""
    from ..visualization import canonical_views, overlay_grid

    rows = []
    for name in domains or DOMAINS:
        domain = DOMAINS[name].scaled(scale)
        image, label, _ = generate_case(domain, seed, case)
        rows.append(
            (f"{name} ({image.geometry.orientation_code()})", domain.modality, canonical_views(image, label.array))
        )
    return overlay_grid(rows, path, title="liverwild phantom domains (canonical LPS display; red: liver label)")
