"""The raw dataset format.

::

    $LW_raw/<Name>/
        dataset.json
        imagesTr/<case>_0000.nii.gz
        labelsTr/<case>.nii.gz          # 0 background, 1 liver (tumour counted as liver)
        labelsTr_organs/<case>.nii.gz   # optional multi-organ map (values: dataset.json "organ_labels")
        imagesTs/<case>_0000.nii.gz     # optional, unlabelled

``dataset.json`` is a superset of nnU-Net v2's: ``name``, ``modality`` ("CT" or "MR"),
``channel_names``, ``labels`` (with ``"liver": 1``), ``numTraining``, ``file_ending``, ``cases`` (the
training case identifiers), ``source`` and ``licence``. An nnU-Net dataset without our extra keys is
read as well: the modality then comes from ``channel_names["0"]`` and the cases from the files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_json_atomic
from ..errors import ConfigurationError, LiverwildError

MODALITIES = ("CT", "MR")
CHANNEL = "_0000"
ORGAN_FOLDER = "labelsTr_organs"


@dataclass
class DatasetInfo:
    """The content of ``dataset.json``."""

    name: str
    modality: str
    labels: dict = field(default_factory=lambda: {"background": 0, "liver": 1})
    cases: list = field(default_factory=list)
    file_ending: str = ".nii.gz"
    source: str = ""
    licence: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict)  # any other keys, kept on rewrite

    @property
    def liver_value(self) -> int:
        return int(self.labels["liver"])

    def to_json(self) -> dict:
        d = {
            "name": self.name,
            "description": self.description,
            "modality": self.modality,
            "channel_names": {"0": self.modality},
            "labels": self.labels,
            "numTraining": len(self.cases),
            "file_ending": self.file_ending,
            "cases": list(self.cases),
            "source": self.source,
            "licence": self.licence,
        }
        d.update(self.extra)
        return d


def modality_from_channel(name: str) -> str:
    """Map an nnU-Net channel name ('CT', 'T2', 'MRI', 'noNorm', ...) to 'CT' or 'MR'."""
    upper = name.upper()
    return "CT" if upper == "CT" or upper.startswith("CT") else "MR"


def load_dataset_json(folder) -> DatasetInfo:
    """Read ``<folder>/dataset.json``; raises :class:`LiverwildError` naming the file on any problem."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise LiverwildError(f"{path}: missing; every raw dataset needs a dataset.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LiverwildError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise LiverwildError(f"{path}: must hold a JSON object")
    labels = raw.get("labels")
    if not isinstance(labels, dict) or "liver" not in labels:
        raise LiverwildError(f"{path}: 'labels' must map names to values and include \"liver\"")
    modality = raw.get("modality")
    if modality is None:
        channels = raw.get("channel_names") or raw.get("modality_names") or {}
        if not channels:
            raise LiverwildError(f"{path}: neither 'modality' nor 'channel_names' is given")
        modality = modality_from_channel(str(channels.get("0", next(iter(channels.values())))))
    if modality not in MODALITIES:
        raise LiverwildError(f"{path}: modality {modality!r} is not one of {', '.join(MODALITIES)}")
    file_ending = raw.get("file_ending", ".nii.gz")
    cases = raw.get("cases")
    if cases is None:
        cases = sorted(
            p.name[: -len(CHANNEL + file_ending)] for p in (Path(folder) / "imagesTr").glob(f"*{CHANNEL}{file_ending}")
        )
    known = {
        "name",
        "description",
        "modality",
        "channel_names",
        "labels",
        "numTraining",
        "file_ending",
        "cases",
        "source",
        "licence",
    }
    return DatasetInfo(
        name=raw.get("name", Path(folder).name),
        modality=modality,
        labels={k: int(v) if not isinstance(v, list) else v for k, v in labels.items()},
        cases=list(cases),
        file_ending=file_ending,
        source=str(raw.get("source", "")),
        licence=str(raw.get("licence", raw.get("license", ""))),
        description=raw.get("description", ""),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def write_dataset_json(folder, info: DatasetInfo) -> Path:
    """Write ``dataset.json`` atomically."""
    return write_json_atomic(Path(folder) / "dataset.json", info.to_json())


def case_files(folder, info: DatasetInfo, case: str, split: str = "Tr") -> tuple:
    """(image path, label path) of one case; the label path is ``None`` for ``split='Ts'``."""
    folder = Path(folder)
    image = folder / f"images{split}" / f"{case}{CHANNEL}{info.file_ending}"
    label = folder / "labelsTr" / f"{case}{info.file_ending}" if split == "Tr" else None
    root = os.path.normpath(folder)
    for path in (image, label):
        if path is not None and not os.path.normpath(path).startswith(root + os.sep):
            raise LiverwildError(
                f"{folder / 'dataset.json'}: case {case!r} refers to {path}, outside the dataset folder"
            )
    return image, label


def organ_file(folder, info: DatasetInfo, case: str) -> Path | None:
    """The multi-organ map of a training case, or ``None`` when the dataset keeps none for it."""
    if not info.extra.get("organ_labels"):
        return None
    path = Path(folder) / info.extra.get("organ_label_folder", ORGAN_FOLDER) / f"{case}{info.file_ending}"
    return path if path.is_file() else None


def find_dataset(name: str, raw_root) -> Path:
    """The folder of dataset ``name`` under ``raw_root``; also accepts nnU-Net ids ('3' or '003')."""
    raw_root = Path(raw_root)
    folder = raw_root / name
    if folder.is_dir():
        return folder
    if name.isdigit():
        matches = sorted(raw_root.glob(f"Dataset{int(name):03d}_*"))
        if len(matches) == 1:
            return matches[0]
    available = sorted(p.name for p in raw_root.iterdir() if p.is_dir()) if raw_root.is_dir() else []
    raise ConfigurationError(
        f"No dataset {name!r} in {raw_root} (LW_raw); available: " + (", ".join(available) if available else "none")
    )
