"""The conversion runner shared by every public dataset.

A converter (one small module per dataset) lists :class:`CaseSource` objects and loads each into a
:class:`LoadedCase` (image + label map + geometry). The runner writes them as a liverwild raw dataset:

- images losslessly: a ``.nii.gz`` source is copied byte for byte, a ``.nii`` source gzipped, any
  other source (DICOM, PNG-labelled series) written by SimpleITK with its original pixel type;
- ``labelsTr/<case>.nii.gz``: binary liver (uint8; tumour counted as liver) in the image's geometry;
- ``labelsTr_organs/<case>.nii.gz``: the original multi-organ map, when the source has one;

cases in parallel with a progress bar, finished cases skipped on a re-run, every failing case reported
by name while the others are converted, and the dataset verifier's report at the end.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ...errors import ImageReadError, LiverwildError
from ...io import Geometry, write_mask, write_volume
from ...log import get_logger
from ...parallel import bounded_imap
from ..format import CHANNEL, ORGAN_FOLDER, DatasetInfo, write_dataset_json
from ..verify import VerificationReport, verify_dataset

logger = get_logger(__name__)


@dataclass
class CaseSource:
    case: str  # output case identifier
    image: Path  # file or folder
    label: Path | None = None  # file, folder, or None when the converter finds it itself
    extra: dict = field(default_factory=dict)


@dataclass
class LoadedCase:
    liver: np.ndarray  # (z, y, x) bool/uint8
    geometry: Geometry  # the image's geometry
    image_array: np.ndarray | None = None  # only when the image is not a NIfTI file to copy
    organs: np.ndarray | None = None


class Converter:
    """Subclasses set ``kind``, ``modality``, ``description``, ``source_url``, ``licence`` and implement
    ``find_cases(src)`` and ``load(case)``."""

    kind = ""
    modality = "CT"
    description = ""
    source_url = ""
    licence = ""
    organ_labels: dict | None = None  # name → value of the organ map, when kept

    def __init__(self, **options):
        self.options = options

    def find_cases(self, src: Path) -> list:
        raise NotImplementedError

    def load(self, case: CaseSource) -> LoadedCase:
        raise NotImplementedError

    def dataset_extra(self) -> dict:
        return {}


def label_in_image_geometry(label_volume, image_geometry: Geometry, label_path) -> np.ndarray:
    """A label array checked against its image's geometry (a mismatch is an error naming the file)."""
    diffs = label_volume.geometry.differences(image_geometry)
    if diffs:
        raise LiverwildError(f"{label_path}: label geometry differs from its image: " + "; ".join(diffs))
    return label_volume.array


def copy_image_losslessly(source: Path, target: Path) -> None:
    name = source.name.lower()
    with atomic_path(target, ".nii.gz") as tmp:
        if name.endswith(".nii.gz"):
            shutil.copyfile(source, tmp)
        elif name.endswith(".nii"):
            with open(source, "rb") as f, gzip.open(tmp, "wb", compresslevel=6) as g:
                shutil.copyfileobj(f, g, 1 << 22)
        else:
            raise ValueError(f"{source}: not a NIfTI file")


def _convert_one(job):
    converter, case, folder, overwrite = job
    image_out = folder / "imagesTr" / f"{case.case}{CHANNEL}.nii.gz"
    label_out = folder / "labelsTr" / f"{case.case}.nii.gz"
    organs_out = folder / ORGAN_FOLDER / f"{case.case}.nii.gz"
    if image_out.exists() and label_out.exists() and not overwrite:
        return case.case, "skipped", None
    try:
        loaded = converter.load(case)
        if loaded.organs is not None and converter.organ_labels:
            write_mask(loaded.organs, loaded.geometry, organs_out)
        write_mask(loaded.liver > 0, loaded.geometry, label_out)
        if loaded.image_array is None:
            copy_image_losslessly(Path(case.image), image_out)  # last: marks the case complete
        else:
            write_volume(loaded.image_array, loaded.geometry, image_out)
        return case.case, "converted", None
    except (LiverwildError, ImageReadError) as exc:
        return case.case, "failed", str(exc)
    except (OSError, ValueError, KeyError) as exc:
        return case.case, "failed", f"{case.image}: {type(exc).__name__}: {exc}"


@dataclass
class ConversionReport:
    dataset: str
    folder: str
    converted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    verification: VerificationReport | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and (self.verification is None or self.verification.ok)

    def summary(self) -> str:
        return (
            f"{self.dataset}: {len(self.converted)} converted, {len(self.skipped)} already done, "
            f"{len(self.failed)} failed → {self.folder}"
        )


def run_conversion(
    converter: Converter,
    src,
    out_root,
    name: str,
    *,
    workers: int = 1,
    overwrite: bool = False,
    cases: list | None = None,
    progress: bool = True,
) -> ConversionReport:
    """Convert every case ``converter`` finds in ``src`` into ``out_root/name``; verify at the end."""
    from tqdm import tqdm

    src = Path(src)
    if not src.exists():
        raise LiverwildError(f"{src}: source folder does not exist")
    cases = converter.find_cases(src) if cases is None else cases
    if not cases:
        raise LiverwildError(
            f"{src}: no {converter.kind} cases found; expected the layout described in "
            f"documentation/datasets/{converter.kind}.md"
        )
    folder = Path(out_root) / name
    report = ConversionReport(name, str(folder))
    jobs = [(converter, c, folder, overwrite) for c in cases]
    for case, status, error in tqdm(
        bounded_imap(_convert_one, jobs, workers),
        total=len(jobs),
        desc=f"convert {name}",
        unit="case",
        disable=not progress,
    ):
        if status == "failed":
            report.failed[case] = error
            logger.warning(f"FAILED {error}")
        else:
            getattr(report, status).append(case)
    done = sorted(c.case for c in cases if c.case not in report.failed)
    labels = {"background": 0, "liver": 1}
    extra = {"converted_from": converter.kind, **converter.dataset_extra()}
    if converter.organ_labels:
        extra["organ_labels"] = converter.organ_labels
        extra["organ_label_folder"] = ORGAN_FOLDER
    write_dataset_json(
        folder,
        DatasetInfo(
            name=name,
            modality=converter.modality,
            labels=labels,
            cases=done,
            source=converter.source_url,
            licence=converter.licence,
            description=converter.description,
            extra=extra,
        ),
    )
    report.verification = verify_dataset(folder, max(1, workers))
    return report
