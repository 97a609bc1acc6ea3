"""Datasets distributed as NIfTI image/label pairs: BTCV, LiTS, MSD Task03, AMOS22, AbdomenCT-1K, nnU-Net."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ...errors import LiverwildError
from ...io import read_geometry, read_image, read_label
from .base import CaseSource, Converter, LoadedCase, label_in_image_geometry
from .registry import register_converter


def _number(file_name: str) -> str:
    """The digits of a file name's stem ('liver_12.nii.gz' → '12')."""
    return re.sub(r"\D", "", file_name.split(".")[0])


def _visible(paths):
    """Skip hidden files and macOS '._' resource forks (common in the MSD tar files)."""
    return sorted(p for p in paths if not p.name.startswith("."))


class NiftiPairConverter(Converter):
    """Image/label NIfTI pairs; ``liver_values`` of the label map become liver."""

    liver_values: tuple[int, ...] = (1,)
    keep_organs = False

    def load(self, case: CaseSource) -> LoadedCase:
        if case.label is None or not Path(case.label).is_file():
            raise LiverwildError(f"{case.label or case.image}: label of case {case.case} is missing")
        copied = str(case.image).lower().endswith((".nii", ".nii.gz"))  # copied as is: the header suffices
        if copied:
            geometry, image_array = read_geometry(case.image), None
        else:
            image = read_image(case.image, dtype=None)
            geometry, image_array = image.geometry, image.array
        label = read_label(case.label)
        array = label_in_image_geometry(label, geometry, case.label)
        organs = array if self.keep_organs else None
        return LoadedCase(np.isin(array, self.liver_values), geometry, image_array, organs)


class BTCV(NiftiPairConverter):
    kind, modality = "btcv", "CT"
    description = "BTCV (Synapse multi-organ abdominal CT), liver = 6"
    source_url = "https://www.synapse.org/#!Synapse:syn3193805/wiki/217789"
    licence = "Synapse/BTCV data use terms (registration required; research use)"
    liver_values, keep_organs = (6,), True
    organ_labels = {
        "spleen": 1,
        "right_kidney": 2,
        "left_kidney": 3,
        "gallbladder": 4,
        "esophagus": 5,
        "liver": 6,
        "stomach": 7,
        "aorta": 8,
        "inferior_vena_cava": 9,
        "portal_and_splenic_vein": 10,
        "pancreas": 11,
        "right_adrenal_gland": 12,
        "left_adrenal_gland": 13,
    }

    def find_cases(self, src: Path) -> list:
        images = _visible(src.rglob("img*.nii.gz"))
        cases = []
        for image in images:
            if image.parent.name != "img":
                continue
            number = _number(image.name)
            cases.append(CaseSource(f"btcv_{number}", image, image.parent.parent / "label" / f"label{number}.nii.gz"))
        return cases


class LiTS(NiftiPairConverter):
    kind, modality = "lits", "CT"
    description = "LiTS (Liver Tumor Segmentation Challenge), liver 1 + tumour 2 → liver"
    source_url = "https://competitions.codalab.org/competitions/17094"
    licence = "CC BY-NC-SA 4.0 (LiTS)"
    liver_values = (1, 2)

    def find_cases(self, src: Path) -> list:
        cases = []
        for image in _visible(src.rglob("volume-*.nii*")):
            number = re.match(r"volume-(\d+)\.nii", image.name)
            if not number:
                continue
            n = number.group(1)
            labels = _visible(src.rglob(f"segmentation-{n}.nii*"))
            cases.append(CaseSource(f"lits_{int(n):03d}", image, labels[0] if labels else None))
        return cases


class MSDLiver(NiftiPairConverter):
    kind, modality = "msd-liver", "CT"
    description = "Medical Segmentation Decathlon Task03_Liver, liver 1 + tumour 2 → liver"
    source_url = "http://medicaldecathlon.com/"
    licence = "CC BY-SA 4.0 (Medical Segmentation Decathlon)"
    liver_values = (1, 2)

    def find_cases(self, src: Path) -> list:
        root = src if (src / "imagesTr").is_dir() else next((p for p in src.rglob("imagesTr") if p.is_dir()), None)
        if root is None:
            return []
        root = root if root.name != "imagesTr" else root.parent
        return [
            CaseSource(f"msdliver_{_number(p.name):0>3}", p, root / "labelsTr" / p.name)
            for p in _visible((root / "imagesTr").glob("liver_*.nii*"))
        ]

    def dataset_extra(self) -> dict:
        return {"contained_in": ["LiTS"]}  # Task03's training scans are LiTS's


class AMOS(NiftiPairConverter):
    """AMOS22: ids < 500 are CT, ≥ 500 MR; ``modality`` option picks which part this converter writes."""

    kind = "amos"
    source_url = "https://amos22.grand-challenge.org/"
    licence = "CC BY 4.0 (AMOS22)"
    liver_values, keep_organs = (6,), True
    organ_labels = {
        "spleen": 1,
        "right_kidney": 2,
        "left_kidney": 3,
        "gallbladder": 4,
        "esophagus": 5,
        "liver": 6,
        "stomach": 7,
        "aorta": 8,
        "postcava": 9,
        "pancreas": 10,
        "right_adrenal_gland": 11,
        "left_adrenal_gland": 12,
        "duodenum": 13,
        "bladder": 14,
        "prostate_uterus": 15,
    }

    def __init__(self, modality: str = "CT", **options):
        super().__init__(**options)
        self.modality = modality
        self.description = f"AMOS22 {modality} part (ids {'< 500' if modality == 'CT' else '≥ 500'}), liver = 6"

    def find_cases(self, src: Path) -> list:
        cases = []
        for split_images, split_labels in (("imagesTr", "labelsTr"), ("imagesVa", "labelsVa")):
            for image in _visible(src.rglob(f"{split_images}/amos_*.nii.gz")):
                number = int(_number(image.name))
                if (number < 500) != (self.modality == "CT"):
                    continue
                cases.append(CaseSource(f"amos_{number:04d}", image, image.parent.parent / split_labels / image.name))
        return cases


class AbdomenCT1K(NiftiPairConverter):
    kind, modality = "act1k", "CT"
    description = "AbdomenCT-1K, liver = 1 (kidney 2, spleen 3, pancreas 4 kept in labelsTr_organs)"
    source_url = "https://github.com/JunMa11/AbdomenCT-1K"
    licence = "CC BY-NC-SA (AbdomenCT-1K; see its repository)"
    liver_values, keep_organs = (1,), True
    organ_labels = {"liver": 1, "kidney": 2, "spleen": 3, "pancreas": 4}

    def find_cases(self, src: Path) -> list:
        masks = {p.name: p for p in _visible(src.rglob("Case_*.nii.gz")) if not p.name.endswith("_0000.nii.gz")}
        cases = []
        for image in _visible(src.rglob("Case_*_0000.nii.gz")):
            name = image.name.replace("_0000.nii.gz", ".nii.gz")
            cases.append(CaseSource(f"act1k_{_number(name)}", image, masks.get(name)))
        return cases

    def dataset_extra(self) -> dict:
        return {"contained_in": ["LiTS", "MSD_Liver"]}  # it reuses public scans, LiTS's among them


class NNUNet(NiftiPairConverter):
    """Any nnU-Net raw dataset; ``liver_label`` values become liver, the full map is kept."""

    kind = "nnunet"
    description = "nnU-Net raw dataset"
    keep_organs = True

    def __init__(self, liver_label=(1,), **options):
        super().__init__(**options)
        self.liver_values = tuple(int(v) for v in liver_label)

    def find_cases(self, src: Path) -> list:
        from ..format import modality_from_channel

        meta_path = src / "dataset.json"
        if not meta_path.is_file():
            raise LiverwildError(f"{src}: no dataset.json; not an nnU-Net raw dataset")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        ending = meta.get("file_ending", ".nii.gz")
        channels = meta.get("channel_names") or meta.get("modality") or {"0": "CT"}
        self.modality = modality_from_channel(str(channels.get("0", "CT")))
        self.organ_labels = {k: v for k, v in meta.get("labels", {}).items() if k != "background"} or None
        self.description = f"converted from nnU-Net dataset {src.name}; liver = {list(self.liver_values)}"
        self.source_url = str(src)
        self.licence = meta.get("licence", meta.get("license", "see the source dataset"))
        return [
            CaseSource(p.name[: -len("_0000" + ending)], p, src / "labelsTr" / p.name.replace("_0000" + ending, ending))
            for p in _visible((src / "imagesTr").glob(f"*_0000{ending}"))
        ]


# ---- registered kinds -------------------------------------------------------------------------


@register_converter("btcv", default_name="BTCV", layout="BTCV: RawData/Training/{img,label}/img0001.nii.gz, liver = 6")
def _btcv() -> list:
    return [(BTCV(), "")]


@register_converter(
    "lits", default_name="LiTS", layout="LiTS: volume-<n>.nii + segmentation-<n>.nii, liver 1 + tumour 2"
)
def _lits() -> list:
    return [(LiTS(), "")]


@register_converter(
    "msd-liver",
    default_name="MSD_Liver",
    layout="MSD Task03_Liver: imagesTr/liver_<n>.nii.gz + labelsTr, liver 1 + tumour 2",
)
def _msd_liver() -> list:
    return [(MSDLiver(), "")]


@register_converter(
    "amos",
    default_name="AMOS",
    layout="AMOS22: imagesTr/amos_<id>.nii.gz + labelsTr, liver = 6; CT (< 500) and MR (≥ 500) datasets",
    options=("amos_modalities",),
)
def _amos(amos_modalities=("CT", "MR")) -> list:
    return [(AMOS(m), f"_{m}") for m in amos_modalities]


@register_converter(
    "act1k", default_name="AbdomenCT1K", layout="AbdomenCT-1K: Case_<n>_0000.nii.gz + Case_<n>.nii.gz, liver = 1"
)
def _act1k() -> list:
    return [(AbdomenCT1K(), "")]


@register_converter(
    "nnunet",
    default_name=None,
    layout="any nnU-Net raw dataset (choose --liver-label)",
    options=("liver_label",),
)
def _nnunet(liver_label=(1,)) -> list:
    return [(NNUNet(liver_label), "")]
