"""3D-IRCADb-01: ``3Dircadb1.<n>/PATIENT_DICOM`` and ``MASKS_DICOM/liver``, zipped or unzipped.

The patient and the liver mask are both DICOM series (files ``image_<k>`` without extension), each
ordered by ImagePositionPatient; the mask must have the patient's geometry; mask > 0 is liver. IRCADb
is part of LiTS, so the dataset is marked ``"contained_in": ["LiTS"]`` (no LiTS-sourced fold targets it).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import SimpleITK as sitk

from ...errors import LiverwildError
from ...io import Geometry, read_dicom_files
from .base import CaseSource, Converter, LoadedCase
from .registry import register_converter


def _files(folder: Path) -> list:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


MAX_UNZIPPED_BYTES = 16 * 2**30  # one IRCADb series unzips to ~100 MB; more is not an IRCADb archive


def check_archive(archive: Path, z: zipfile.ZipFile, target: Path) -> None:
    """Refuse, before extracting anything, members that would land outside ``target`` (absolute paths,
    ``..``) and archives whose declared uncompressed size is absurd (zip bombs)."""
    root = os.path.normpath(target)
    for member in z.infolist():
        dest = os.path.normpath(os.path.join(root, member.filename))
        if os.path.isabs(member.filename) or not (dest == root or dest.startswith(root + os.sep)):
            raise LiverwildError(
                f"{archive}: member {member.filename!r} would be written outside the extraction "
                "folder; refusing the archive"
            )
    total = sum(m.file_size for m in z.infolist())
    if total > MAX_UNZIPPED_BYTES:
        raise LiverwildError(
            f"{archive}: declares {total / 2**30:.1f} GiB uncompressed (limit "
            f"{MAX_UNZIPPED_BYTES / 2**30:.0f} GiB); refusing to extract it"
        )


def _folder(base: Path, name: str, tmp: Path) -> Path:
    """``base/name`` as a folder, extracting ``base/name.zip`` into ``tmp`` when needed."""
    if (base / name).is_dir():
        return base / name
    archive = base / f"{name}.zip"
    if archive.is_file():
        try:
            with zipfile.ZipFile(archive) as z:
                check_archive(archive, z, tmp / name)
                z.extractall(tmp / name)
        except zipfile.BadZipFile as exc:
            raise LiverwildError(f"{archive}: not a readable zip file ({exc})") from exc
        inner = tmp / name / name
        return inner if inner.is_dir() else tmp / name
    raise LiverwildError(f"{base}: neither {name}/ nor {name}.zip")


class IRCADb(Converter):
    kind, modality = "ircadb", "CT"
    description = "3D-IRCADb-01 (IRCAD), liver mask > 0"
    source_url = "https://www.ircad.fr/research/data-sets/liver-segmentation-3d-ircadb-01/"
    licence = "IRCAD terms (research use; see the provider)"

    def find_cases(self, src: Path) -> list:
        return [
            CaseSource(f"ircadb_{int(p.name.split('.')[-1]):02d}", p)
            for p in sorted(src.rglob("3Dircadb1.*"))
            if p.is_dir() and p.name.split(".")[-1].isdigit()
        ]

    def dataset_extra(self) -> dict:
        return {"contained_in": ["LiTS", "MSD_Liver"]}  # IRCADb's 20 scans are LiTS 28–47

    def load(self, case: CaseSource) -> LoadedCase:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            patient = _folder(Path(case.image), "PATIENT_DICOM", tmp)
            masks = _folder(Path(case.image), "MASKS_DICOM", tmp)
            if not (masks / "liver").is_dir():
                raise LiverwildError(f"{masks}: no liver/ mask series")
            image = read_dicom_files(_files(patient), patient)
            mask = read_dicom_files(_files(masks / "liver"), masks / "liver")
            geometry = Geometry.from_sitk(image)
            diffs = Geometry.from_sitk(mask).differences(geometry)
            if diffs:
                raise LiverwildError(
                    f"{masks / 'liver'}: mask geometry differs from the patient series: " + "; ".join(diffs)
                )
            return LoadedCase(sitk.GetArrayFromImage(mask) > 0, geometry, sitk.GetArrayFromImage(image))


@register_converter(
    "ircadb",
    default_name="IRCADb",
    layout="3D-IRCADb-01: 3Dircadb1.<n>/PATIENT_DICOM(.zip), MASKS_DICOM(.zip)/liver",
)
def _ircadb() -> list:
    return [(IRCADb(), "")]
