"""The per-case caches that training reads: memory-mapped ``.npy`` arrays plus a properties JSON.

::

    $LW_preprocessed/<Name>/<data identifier>/
        plans.json                    # the plan this cache was made with
        <case>/slices.npy             # (1 + K, Z, 224, 224) float16 — view 0 is the original slice
        <case>/labels.npy             # (1 + K, Z, 224, 224) uint8  — liver masks per view
        <case>/features.npy           # (1 + K, Z, C, h, w) float16 (float32 when the plans' feature_dtype
                                      #   says so) — frozen backbone maps per view
        <case>/organs.npy             # (Z, 224, 224) uint8 — multi-organ map of view 0, when the raw
                                      #   dataset keeps one (labelsTr_organs/); read by the domain-
                                      #   randomisation baseline
        <case>/properties.json        # geometry, reorientation, normalisation stats, input signature

The ``3d`` configuration has its own cache beside it (:class:`CachedVolume`)::

    $LW_preprocessed/<Name>/<3d data identifier lw3d_...>/
        plans.json
        <case>/volume.npy             # (D, H, W) float16 — the normalised canonical volume (64 × 128 × 128)
        <case>/labels.npy             # (D, H, W) uint8 — organ class indices (0 background, k + 1: classes[k])
        <case>/properties.json        # geometry, reorientation, classes, their voxel counts, input signature

A case folder appears under its final name only when complete (it is written as a hidden temporary
folder and renamed), so an interrupted run never leaves a case that a later run trusts. Per slice and
view the cache costs 224·224·2 + 224·224 + C·h·w·2 bytes: 301 KB for ViT-S/16 (C = 384, 14×14),
i.e. 0.9 MB per slice with the default K = 2 augmented views (float32 features: C·h·w·4, 451 KB).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liverwild.atomic import write_json_atomic
from liverwild.errors import LiverwildError

ARRAYS = ("slices", "labels", "features")
OPTIONAL_ARRAYS = ("organs",)
ARRAYS_3D = ("volume", "labels")


def input_signature(*paths) -> list:
    """(name, size, mtime) of each input file: cheap evidence that an input is unchanged."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


def is_complete(case_dir: Path, signature: list, data_identifier: str, arrays=ARRAYS) -> bool:
    """True when ``case_dir`` holds every array (``arrays``: the configuration's) and was made from the
    same inputs and plan."""
    props = case_dir / "properties.json"
    if not props.is_file() or not all((case_dir / f"{a}.npy").is_file() for a in arrays):
        return False
    try:
        p = json.loads(props.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return p.get("signature") == signature and p.get("data_identifier") == data_identifier


def write_case(case_dir: Path, arrays: dict, properties: dict) -> Path:
    """Write a complete case folder atomically (hidden temporary folder, then rename): every array of
    ``arrays`` that is not None as ``<name>.npy``, and ``properties.json``."""
    case_dir = Path(case_dir)
    tmp = case_dir.parent / f".{case_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        try:
            for name, array in arrays.items():
                if array is not None:
                    np.save(tmp / f"{name}.npy", array)
            write_json_atomic(tmp / "properties.json", properties)
        except OSError as exc:
            raise LiverwildError(
                f"{case_dir}: cannot be written — {exc} (disk full or file-size limit?); the case "
                "was not kept, re-run once there is room"
            ) from exc
        if case_dir.exists():
            shutil.rmtree(case_dir)
        os.replace(tmp, case_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return case_dir


def remove_stale_temporaries(folder: Path) -> None:
    for tmp in Path(folder).glob(".*.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


@dataclass
class CachedCase:
    """Read-only, memory-mapped view of one cached case (nothing is loaded until indexed)."""

    folder: Path

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.slices = np.load(self.folder / "slices.npy", mmap_mode="r")
        self.labels = np.load(self.folder / "labels.npy", mmap_mode="r")
        self.features = np.load(self.folder / "features.npy", mmap_mode="r")
        organs = self.folder / "organs.npy"
        self.organs = np.load(organs, mmap_mode="r") if organs.is_file() else None
        self.properties = json.loads((self.folder / "properties.json").read_text(encoding="utf-8"))

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def n_slices(self) -> int:
        return int(self.slices.shape[1])

    @property
    def n_views(self) -> int:
        return int(self.slices.shape[0])


@dataclass
class CachedVolume:
    """Read-only, memory-mapped view of one case of a ``3d`` cache: ``volume`` ``(D, H, W)`` float16,
    ``labels`` ``(D, H, W)`` uint8 class indices, ``properties``."""

    folder: Path

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.volume = np.load(self.folder / "volume.npy", mmap_mode="r")
        self.labels = np.load(self.folder / "labels.npy", mmap_mode="r")
        self.properties = json.loads((self.folder / "properties.json").read_text(encoding="utf-8"))

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def classes(self) -> list:
        """The organ names of the label indices 1, 2, …"""
        return list(self.properties["classes"])


def list_cases(cache_folder) -> list:
    """Names of the complete cases in a cache folder (hidden temporaries are ignored)."""
    folder = Path(cache_folder)
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "properties.json").is_file()
    )
