"""Dataset verifier: checks a raw dataset before anything is trained on it.

Every problem is reported with the file it concerns; the verifier never stops at the first one.
Checks: ``dataset.json`` is valid; every listed case has an image and a label and every file belongs
to a listed case; each file reads as a 3D scalar volume without NaNs; image and label share size,
spacing, origin and direction; label values are among those declared in ``labels``; each label
contains liver (a warning when not).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LiverwildError
from ..io import read_image, read_label
from .format import CHANNEL, case_files, load_dataset_json


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self):
        return f"{self.severity.upper()} {self.path}: {self.message}"


@dataclass
class VerificationReport:
    dataset: str
    cases_checked: int = 0
    problems: list = field(default_factory=list)

    @property
    def errors(self) -> list:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def bad_cases(self) -> set:
        return {p.path for p in self.errors}

    def summary(self) -> str:
        n_err, n_warn = len(self.errors), len(self.problems) - len(self.errors)
        state = "OK" if self.ok else "FAILED"
        return f"{self.dataset}: {state} — {self.cases_checked} cases checked, {n_err} errors, {n_warn} warnings"


def _check_case(folder: Path, info, case: str, allowed: set) -> list:
    image_path, label_path = case_files(folder, info, case)
    problems = []
    if not image_path.is_file():
        problems.append(Problem(str(image_path), f"image of case {case!r} is missing"))
    if not label_path.is_file():
        problems.append(Problem(str(label_path), f"label of case {case!r} is missing"))
    if problems:
        return problems
    image = label = None
    try:
        image = read_image(image_path)
    except LiverwildError as exc:
        problems.append(Problem(str(image_path), getattr(exc, "problem", str(exc))))
    try:
        label = read_label(label_path)
    except LiverwildError as exc:
        problems.append(Problem(str(label_path), getattr(exc, "problem", str(exc))))
    if image is None or label is None:
        return problems
    diffs = label.geometry.differences(image.geometry)
    if diffs:
        problems.append(Problem(str(label_path), "geometry differs from its image: " + "; ".join(diffs)))
    values = set(np.unique(label.array).tolist())
    unknown = sorted(values - allowed)
    if unknown:
        problems.append(
            Problem(
                str(label_path),
                f"label values {unknown} are not declared in dataset.json labels (allowed {sorted(allowed)})",
            )
        )
    if info.liver_value not in values:
        problems.append(Problem(str(label_path), "contains no liver voxels", "warning"))
    return problems


def verify_dataset(folder, num_workers: int = 2) -> VerificationReport:
    """Check the raw dataset in ``folder`` and return a report listing every problem found."""
    folder = Path(folder)
    report = VerificationReport(folder.name)
    try:
        info = load_dataset_json(folder)
    except LiverwildError as exc:
        report.problems.append(Problem(str(folder / "dataset.json"), str(exc).split(": ", 1)[-1]))
        return report
    allowed = set()
    for value in info.labels.values():
        allowed.update(value if isinstance(value, list) else [value])
    for sub in ("imagesTr", "labelsTr"):
        if not (folder / sub).is_dir():
            report.problems.append(Problem(str(folder / sub), "folder is missing"))
    ending = info.file_ending
    listed = set(info.cases)
    if len(listed) != len(info.cases):
        report.problems.append(Problem(str(folder / "dataset.json"), "the case list holds duplicates"))
    if not info.cases:
        report.problems.append(Problem(str(folder / "dataset.json"), "no training cases"))
    for path in sorted((folder / "imagesTr").glob("*")) if (folder / "imagesTr").is_dir() else []:
        if path.name.startswith("."):
            continue
        if not path.name.endswith(CHANNEL + ending):
            report.problems.append(Problem(str(path), f"unexpected file; images are named <case>{CHANNEL}{ending}"))
        elif path.name[: -len(CHANNEL + ending)] not in listed:
            report.problems.append(Problem(str(path), "image of a case that dataset.json does not list"))
    for path in sorted((folder / "labelsTr").glob("*")) if (folder / "labelsTr").is_dir() else []:
        if path.name.startswith("."):
            continue
        if not path.name.endswith(ending) or path.name[: -len(ending)] not in listed:
            report.problems.append(Problem(str(path), "label of a case that dataset.json does not list"))
    with ThreadPoolExecutor(max(1, num_workers)) as pool:
        for problems in pool.map(lambda c: _check_case(folder, info, c, allowed), info.cases):
            report.problems.extend(problems)
    report.cases_checked = len(info.cases)
    if (folder / "imagesTs").is_dir():
        for path in sorted((folder / "imagesTs").glob(f"*{ending}")):
            try:
                read_image(path)
            except LiverwildError as exc:
                report.problems.append(Problem(str(path), getattr(exc, "problem", str(exc))))
    return report
