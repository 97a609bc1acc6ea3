"""Synthetic scans from organ label maps (the SynthSeg route): ``lw_phantoms --from-label-maps DIR``.

A folder of multi-organ label maps with their name tables (TotalSegmentator, AMOS, BTCV, FLARE, the
phantoms' own ``labelsTr_organs``) becomes a raw dataset of synthetic CT or MR images. Per map and
copy: every label is mapped by its *name* onto a phantom tissue (:func:`tissue_of`; kidneys get a
medulla, bones a marrow, stomach and bowel a wall and a lumen with random content), the unlabelled
body is rebuilt around the labelled organs (fat, an abdominal-wall muscle layer; air outside), the
whole map is deformed by a smooth random field (:mod:`.deformation`) and rendered with the randomised
appearance model of :mod:`.randomized` on the map's own grid. The liver label — every value whose name
is the liver or a part of it — is taken from the deformed map, so it follows the deformation exactly;
the deformed map itself is written as the case's organ map with the source's names.

Where the name tables come from (:func:`find_label_maps`): a raw dataset's ``dataset.json``
(``organ_labels`` with ``labelsTr_organs/``, or nnU-Net's ``labels`` with ``labelsTr/``), or a JSON
table beside each map with the map's stem (``organs.json`` names ``organs.nii.gz``), or one ``names``
file for every map.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import ConfigurationError, LiverwildError
from ..io import IMAGE_SUFFIXES, Reorientation, Volume, image_suffix, read_label
from ..log import get_logger
from .deformation import displacement_field, warp_labels
from .realism import read_names
from .render import render
from .tissues import Tissue
from .version import GENERATOR_VERSION

log = get_logger(__name__)

_RULES: tuple[tuple[str, Tissue], ...] = (  # (regular expression on the normalised name, tissue); first match wins
    (r"liver.*(tumou?r|lesion|cyst|metasta)", Tissue.LESION),
    (r"liver.*(vessel|vein)|hepatic_vein", Tissue.LIVER_VESSEL),
    (r"\bliver\b|^liver", Tissue.LIVER),
    (r"gall", Tissue.GALLBLADDER),
    (r"kidney.*left.*medulla|left.*kidney.*medulla", Tissue.LEFT_KIDNEY_MEDULLA),
    (r"kidney.*medulla", Tissue.KIDNEY_MEDULLA),
    (r"kidney.*(left|\bl\b)|left.*kidney|l_kidney", Tissue.LEFT_KIDNEY_CORTEX),
    (r"kidney", Tissue.KIDNEY_CORTEX),
    (r"adrenal.*left|left.*adrenal", Tissue.ADRENAL_LEFT),
    (r"adrenal", Tissue.ADRENAL_RIGHT),
    (r"spleen", Tissue.SPLEEN),
    (r"pancrea", Tissue.PANCREAS),
    (r"stomach", Tissue.STOMACH),
    (r"duoden", Tissue.DUODENUM),
    (r"colon|rectum|c[a]?ecum|sigmoid|large_bowel", Tissue.COLON),
    (r"small_bowel|small_intestine|jejun|ileum|^bowel$|intestine", Tissue.SMALL_BOWEL),
    (r"lung|lobe", Tissue.LUNG),
    (r"heart|atri|ventricle|myocard", Tissue.HEART),
    (r"aorta|arter", Tissue.AORTA),
    (r"vena|vein|cava|ivc|portal", Tissue.VEIN),
    (r"bladder", Tissue.BLADDER),
    (r"cartilage|costal", Tissue.CARTILAGE),
    (r"disc", Tissue.DISC),
    (r"spinal|canal|csf", Tissue.CSF),
    (r"vertebra|sacrum|hip|rib|femur|sternum|scapula|clavic|humerus|skull|bone|marrow", Tissue.BONE),
    (r"diaphragm", Tissue.DIAPHRAGM),
    (r"fat", Tissue.FAT),
)
"""Label name → phantom tissue, by regular expression on the lower-case name (``_`` separated)."""

HOLLOW = (Tissue.STOMACH, Tissue.DUODENUM, Tissue.COLON, Tissue.SMALL_BOWEL)
LIVER_PARTS = (Tissue.LIVER, Tissue.LIVER_VESSEL, Tissue.LESION)


def tissue_of(name: str) -> Tissue:
    """The phantom tissue a label named ``name`` renders as; any other labelled structure (muscles,
    prostate, oesophagus, ...) renders as muscle-like soft tissue."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    for pattern, tissue in _RULES:
        if re.search(pattern, key):
            return tissue
    return Tissue.MUSCLE


@dataclass(frozen=True)
class LabelMap:
    """One label map found in a folder: its file, case name and value → name table."""

    path: Path
    case: str
    names: dict


def find_label_maps(folder, names_file=None) -> list[LabelMap]:
    """The label maps under ``folder`` with their name tables (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigurationError(f"{folder}: not a folder of label maps")
    if names_file is not None:
        names = read_names(names_file)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and image_suffix(p) in IMAGE_SUFFIXES)
        return [LabelMap(p, _case_name(folder, p), names) for p in files]
    dataset = folder / "dataset.json"
    if dataset.is_file():
        content = json.loads(dataset.read_text(encoding="utf-8"))
        sub = "labelsTr_organs" if isinstance(content.get("organ_labels"), dict) else "labelsTr"
        names = read_names(dataset)
        files = sorted(p for p in (folder / sub).glob("*") if image_suffix(p) in IMAGE_SUFFIXES)
        return [LabelMap(p, _case_name(folder / sub, p), names) for p in files]
    maps = []
    for table in sorted(folder.rglob("*.json")):
        for suffix in IMAGE_SUFFIXES:
            image = table.with_name(table.stem + suffix)
            if image.is_file():
                maps.append(LabelMap(image, _case_name(folder, image), read_names(table)))
    return maps


def _case_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root)
    stem = relative.name[: -len(image_suffix(path))] if image_suffix(path) else relative.stem
    parts = [*relative.parts[:-1], stem]
    return re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_").lower()


def tissue_layers(labels: np.ndarray, names: dict, spacing_zyx, rng: np.random.Generator):
    """Canonical label map → ``(organs, content)`` uint8 tissue layers (see :class:`~.shapes.Canvas`)."""
    organs = relabel(labels, {value: int(tissue_of(name)) for value, name in names.items()}, np.uint8)
    for cortex, medulla, depth in (
        (Tissue.KIDNEY_CORTEX, Tissue.KIDNEY_MEDULLA, 6.0),
        (Tissue.LEFT_KIDNEY_CORTEX, Tissue.LEFT_KIDNEY_MEDULLA, 6.0),
        (Tissue.BONE, Tissue.MARROW, 2.0),
    ):
        organs[_inner(organs, cortex, depth, spacing_zyx)] = medulla
    content = np.zeros(labels.shape, np.uint8)
    for code in HOLLOW:  # a wall of 2–4 mm, then one content per organ and case
        fill = int(
            rng.choice([Tissue.FLUID, Tissue.GAS, Tissue.STOOL, Tissue.ORAL_CONTRAST, 0], p=[0.35, 0.2, 0.2, 0.1, 0.15])
        )
        if fill:
            content[_inner(organs, code, float(rng.uniform(2, 4)), spacing_zyx)] = fill
    _add_body(organs, spacing_zyx, rng)
    return organs, content


def relabel(labels: np.ndarray, table: dict, dtype) -> np.ndarray:
    """``labels`` with every value replaced by ``table[value]``; values not in the table become 0."""
    lookup = np.zeros(int(max(table, default=0)) + 1, dtype)
    for value, new in table.items():
        lookup[value] = new
    return lookup[np.where((labels >= 0) & (labels < len(lookup)), labels, 0)]


def _inner(organs, code, depth_mm: float, spacing_zyx) -> np.ndarray:
    """The voxels of ``code`` more than about ``depth_mm`` inside it (erosion by whole voxels of the
    finest spacing, at least one), computed in its bounding box; bool, the shape of ``organs``."""
    mask = organs == code
    inner = np.zeros_like(mask)
    if mask.any():
        box = tuple(slice(max(int(a.min()) - 1, 0), int(a.max()) + 2) for a in np.nonzero(mask))
        iterations = max(1, int(round(depth_mm / min(spacing_zyx))))
        inner[box] = ndimage.binary_erosion(mask[box], iterations=iterations)
    return inner


def _add_body(organs: np.ndarray, spacing_zyx, rng) -> None:
    """Unlabelled voxels within a random margin of the labelled organs become the body: inner fat,
    an abdominal-wall muscle layer, subcutaneous fat; the rest stays air (in place, slice by slice)."""
    margin, wall, subcutaneous = rng.uniform(20, 40), rng.uniform(8, 13), rng.uniform(5, 25)
    _, sy, sx = spacing_zyx
    for k in range(organs.shape[0]):
        labelled = organs[k] > 0
        if not labelled.any():
            continue
        outside = ndimage.distance_transform_edt(~labelled, sampling=(sy, sx))
        body = ndimage.binary_fill_holes(outside < margin + wall + subcutaneous)
        depth = ndimage.distance_transform_edt(body, sampling=(sy, sx))  # distance to the skin
        free = body & ~labelled
        layer = organs[k]
        layer[free] = Tissue.FAT
        layer[free & (depth > subcutaneous) & (depth < subcutaneous + wall)] = Tissue.MUSCLE


def synthesize(
    label_map: Volume, names: dict, modality: str, rng: np.random.Generator, deformation_mm: float | None = None
):
    """One synthetic scan from a label map: ``(image, liver label, deformed label map)`` as Volumes
    in the map's own geometry (``deformation_mm``: s.d. of the smooth displacement, default random
    2–7 mm). Raises ``ValueError`` when no label is the liver."""
    from .randomized import sample_domain

    liver_values = [v for v, n in names.items() if tissue_of(n) in LIVER_PARTS]
    if not liver_values:
        raise ValueError(f"no liver label among {sorted(names.values())}")
    reorient = Reorientation.from_geometry(label_map.geometry)
    labels = np.ascontiguousarray(reorient.to_canonical(label_map.array))
    canonical = reorient.canonical_geometry(label_map.geometry)
    sx, sy, sz = canonical.spacing
    organs, content = tissue_layers(labels, names, (sz, sy, sx), rng)
    amplitude = float(rng.uniform(2, 7)) if deformation_mm is None else deformation_mm
    if amplitude > 0:
        shift = displacement_field(labels.shape, (sz, sy, sx), amplitude, float(rng.uniform(60, 110)), rng)
        organs, content, labels = warp_labels([organs, content, labels], shift)
    domain = sample_domain(rng, modality)
    appearance = np.where(content > 0, content, organs)
    image = render(appearance, domain, canonical.spacing, rng)
    dtype = np.dtype("int16" if modality == "CT" else "float32")
    if dtype.kind == "i":
        image = np.clip(np.rint(image), -32768, 32767)
    liver = np.isin(labels, liver_values).astype(np.uint8)
    geometry = label_map.geometry
    out = (
        reorient.from_canonical(image.astype(dtype)),
        reorient.from_canonical(liver),
        reorient.from_canonical(labels),
    )
    return tuple(Volume(np.ascontiguousarray(a), geometry) for a in out)


def write_from_label_maps(
    source,
    out_root,
    modality: str,
    copies: int = 1,
    seed: int = 0,
    dataset_name: str | None = None,
    names_file=None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``out_root/<dataset_name>/`` (default ``FromLabelMaps<modality>``): ``copies`` synthetic
    scans of ``modality`` per label map under ``source``. A map that cannot be used (no liver label,
    unreadable) is skipped with a one-line warning; raises ``ConfigurationError`` when none can be used."""
    from tqdm import tqdm

    from ..datasets.format import CHANNEL, ORGAN_FOLDER, DatasetInfo, write_dataset_json
    from ..io import write_volume
    from .generate import LICENCE

    if modality not in ("CT", "MR"):
        raise ValueError(f"modality must be 'CT' or 'MR', got {modality!r}")
    maps = find_label_maps(source, names_file)
    if not maps:
        raise ConfigurationError(
            f"{source}: no label map with a name table found "
            "(dataset.json, <map stem>.json beside each map, or --names)"
        )
    name = dataset_name or f"FromLabelMaps{modality}"
    folder = Path(out_root) / name
    cases, failures = [], []
    unified: dict[str, int] = {}  # one value per label name across every source map
    for item in tqdm(maps, desc=name, unit="map", disable=not progress):
        try:
            label_map = read_label(item.path)
            renumber = {v: unified.setdefault(label, len(unified) + 1) for v, label in sorted(item.names.items())}
            for copy in range(copies):
                case = f"{item.case}_{copy:02d}"
                paths = [
                    folder / "labelsTr" / f"{case}.nii.gz",
                    folder / ORGAN_FOLDER / f"{case}.nii.gz",
                    folder / "imagesTr" / f"{case}{CHANNEL}.nii.gz",
                ]
                if not all(p.exists() for p in paths) or overwrite:
                    key = [seed, copy, GENERATOR_VERSION, *item.case.encode()]
                    rng = np.random.default_rng(np.random.SeedSequence(key))
                    image, liver, organs = synthesize(label_map, item.names, modality, rng)
                    write_volume(liver.array, liver.geometry, paths[0])  # labels first: the image marks completion
                    write_volume(relabel(organs.array, renumber, np.uint16), organs.geometry, paths[1])
                    write_volume(image.array, image.geometry, paths[2])
                cases.append(case)
        except (LiverwildError, ValueError, RuntimeError) as error:  # one bad map must not stop the others
            failures.append(item.path)
            log.warning("FAILED %s: %s", item.path, error)
    if not cases:
        raise ConfigurationError(f"{source}: none of the {len(maps)} label maps could be used")
    info = DatasetInfo(
        name=name,
        modality=modality,
        cases=sorted(cases),
        source=f"synthetic images from the label maps in {Path(source).resolve()} (liverwild.phantoms.labelmaps)",
        licence=f"images: {LICENCE}; label maps: the source's licence",
        description=f"{modality} rendered from {len(maps) - len(failures)} label maps × {copies} (SynthSeg route)",
        extra={
            "phantom": {"seed": seed, "generator_version": GENERATOR_VERSION, "from_label_maps": str(source)},
            "organ_labels": unified,
            "organ_label_folder": ORGAN_FOLDER,
        },
    )
    write_dataset_json(folder, info)
    return folder
