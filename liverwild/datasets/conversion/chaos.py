"""CHAOS (CT and MR T2-SPIR / T1-DUAL): DICOM series with one PNG mask per slice.

Pairing: CHAOS documents that slice order follows the *image file names* (its evaluation code sorts
DICOM files and PNGs by name). liverwild therefore pairs the k-th PNG with the k-th DICOM file in name
order — or, for MR where every PNG is named after its DICOM file, by that name — and places each mask
at the position its DICOM slice has in the volume, which is itself ordered by ImagePositionPatient. The
PNG's rows and columns are the DICOM slice's rows and columns. A PNG without its slice, a different
count of masks and slices, or a mask of the wrong size is an error naming the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import LiverwildError
from ...io import Geometry, dicom_tag, read_dicom_files, sort_by_position
from .base import CaseSource, Converter, LoadedCase
from .registry import register_converter

MR_RANGES = {1: (55, 70), 2: (110, 135), 3: (175, 200), 4: (240, 255)}  # liver, R kidney, L kidney, spleen


def read_png(path) -> np.ndarray:
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    return array[..., 0] if array.ndim == 3 else array


def dicom_files(folder: Path) -> list:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def split_t1_dual(files: list, phase: str) -> list:
    """T1-DUAL folders hold in- and opposed-phase slices; in-phase has the longer echo time."""
    by_te: dict = {}
    for f in files:
        te = dicom_tag(f, "0018|0081")
        if te is None:
            raise LiverwildError(f"{f}: no EchoTime to separate in- and opposed-phase images")
        by_te.setdefault(round(float(te), 2), []).append(f)
    if len(by_te) != 2:
        raise LiverwildError(f"{files[0].parent}: expected two echo times in a T1-DUAL series, found {sorted(by_te)}")
    short, long = sorted(by_te)
    return by_te[long if phase == "in" else short]


class CHAOS(Converter):
    source_url = "https://chaos.grand-challenge.org/"
    licence = "CC BY-SA 4.0 (CHAOS)"

    def __init__(self, modality: str = "CT", sequence: str = "T2SPIR", **options):
        super().__init__(**options)
        self.modality, self.sequence = modality, sequence
        self.kind = "chaos-ct" if modality == "CT" else "chaos-mr"
        if modality == "CT":
            self.description = "CHAOS CT (portal-venous), liver PNG value 255"
        else:
            self.description = f"CHAOS MR {sequence}, liver PNG value 63 (55–70)"
            self.organ_labels = {"liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}

    def find_cases(self, src: Path) -> list:
        cases = []
        if self.modality == "CT":
            for dicom in sorted(src.rglob("DICOM_anon")):
                if dicom.parent.parent.name == "CT":
                    cases.append(CaseSource(f"chaosct_{int(dicom.parent.name):02d}", dicom, dicom.parent / "Ground"))
        else:
            folder = "T2SPIR" if self.sequence == "T2SPIR" else "T1DUAL"
            for seq in sorted(src.rglob(folder)):
                if seq.parent.parent.name == "MR" and (seq / "DICOM_anon").is_dir():
                    cases.append(CaseSource(f"chaosmr_{int(seq.parent.name):02d}", seq / "DICOM_anon", seq / "Ground"))
        return cases

    def load(self, case: CaseSource) -> LoadedCase:
        files = dicom_files(Path(case.image))
        if self.sequence.startswith("T1DUAL"):
            files = split_t1_dual(files, "in" if self.sequence.endswith("in") else "out")
        if case.label is None:
            raise LiverwildError(f"{case.image}: no ground-truth folder found for this CHAOS case")
        ground = Path(case.label)
        pngs = sorted(ground.glob("*.png")) if ground.is_dir() else []
        if not pngs:
            raise LiverwildError(f"{ground}: no PNG masks for case {case.case}")
        stems = {f.stem: f for f in files}
        if all(p.stem in stems for p in pngs) and len(pngs) == len(files):
            pairs = [(p, stems[p.stem]) for p in pngs]  # MR: PNG named after its slice
        elif len(pngs) == len(files):
            pairs = list(zip(pngs, files))  # CT: k-th PNG ↔ k-th DICOM by name
        else:
            unmatched = [p.name for p in pngs if p.stem not in stems]
            detail = f"; e.g. {unmatched[0]} has no matching slice" if unmatched and len(unmatched) < len(pngs) else ""
            raise LiverwildError(f"{ground}: {len(pngs)} PNG masks for {len(files)} DICOM slices{detail}")
        image = read_dicom_files(files, case.image)
        geometry = Geometry.from_sitk(image)
        z_of = {str(f): k for k, f in enumerate(sort_by_position(files, case.image))}
        nz, ny, nx = geometry.shape
        label = np.zeros((nz, ny, nx), np.uint8)
        for png, dcm in pairs:
            mask = read_png(png)
            if mask.shape != (ny, nx):
                raise LiverwildError(f"{png}: mask of size {mask.shape} for a {ny}×{nx} slice ({dcm.name})")
            if self.modality == "CT":
                label[z_of[str(dcm)]] = mask >= 128
            else:
                for value, (lo, hi) in MR_RANGES.items():
                    label[z_of[str(dcm)]][(mask >= lo) & (mask <= hi)] = value
        organs = label if self.modality == "MR" else None
        return LoadedCase(label == 1, geometry, sitk.GetArrayFromImage(image), organs)


@register_converter(
    "chaos-ct", default_name="CHAOS_CT", layout="CHAOS CT: Train_Sets/CT/<id>/{DICOM_anon,Ground}, liver PNG = 255"
)
def _chaos_ct() -> list:
    return [(CHAOS("CT"), "")]


@register_converter(
    "chaos-mr",
    default_name="CHAOS_MR",
    layout="CHAOS MR: Train_Sets/MR/<id>/T2SPIR (or T1DUAL) /{DICOM_anon,Ground}, liver PNG = 63",
    options=("sequence",),
)
def _chaos_mr(sequence: str = "T2SPIR") -> list:
    suffix = "" if sequence == "T2SPIR" else "_" + sequence.replace("T1DUAL_", "T1")
    return [(CHAOS("MR", sequence), suffix)]
