"""What ``lw_predict`` remembers of the runs into an output folder: ``lw_predict --continue`` resumes an
interrupted run, and a re-run removes only what an earlier run wrote and nobody changed since.

Every run records, in ``<output>/.lw_predict_state<tag>.json`` (rewritten atomically after each scan),
what decides a scan's outputs — the model's checkpoint (SHA-256), the runtime and device type, liverwild's
version and git revision, and every option that changes what is written (:func:`configuration`) — and,
per finished scan, its input's signature (taken before it was read: name, size, modification and change
times of the file, or of every file of a DICOM series), each output file it wrote with that file's size
and modification time, and its result; then the run files (``statistics.csv``, ``report.html``) likewise.

``--continue`` skips a scan only when the configuration is the same, the input's signature unchanged and
every output file it wrote is still there as written; its recorded result goes into the new report.
Anything else is segmented again; without ``--continue`` every scan is. A state another configuration
wrote is not resumed from, but its records still say which files an earlier run wrote.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, fields
from pathlib import Path

from .. import __version__
from ..atomic import write_json_atomic
from ..hashing import file_sha256
from ..log import get_logger
from .base import ScanResult
from .discovery import PROBABILITY_SUFFIX
from .model_folder import checkpoint_path
from .options import PredictOptions

logger = get_logger(__name__)

STATE_FORMAT = 2
# options that do not change what a scan's outputs hold: speed, progress, which part, how the model is found
UNRELATED = {"progress", "batch_size", "part", "num_parts", "report", "results", "trainer", "model", "device", "resume"}


def state_path(output, tag: str = "") -> Path:
    return Path(output) / f".lw_predict_state{tag}.json"


def configuration(options: PredictOptions, model_dir: Path, runtime_fields: dict, device_type: str) -> dict:
    """What decides a scan's outputs (plain JSON): the checkpoint's SHA-256, the runtime and the git
    revision (from the report's ``runtime_fields``), device type, liverwild version, and the options that
    change what is written."""
    chosen = {f.name: getattr(options, f.name) for f in fields(options) if f.name not in UNRELATED}
    chosen = {k: sorted(v) if isinstance(v, (tuple, list, set)) else v for k, v in chosen.items()}
    return {
        "format": STATE_FORMAT,
        "checkpoint_sha256": file_sha256(checkpoint_path(model_dir, options.checkpoint)),
        "runtime": runtime_fields["runtime"],
        "device_type": device_type,
        "liverwild": __version__,
        "git_revision": runtime_fields["git_revision"],
        "options": json.loads(json.dumps(chosen, default=str)),
    }


def input_signature(path) -> str:
    """A digest of the name, size, modification and change times of a scan file, or of every file of a
    DICOM series folder: any file replaced, added, removed or touched changes it."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    lines = []
    for file in files:
        stat = file.stat()
        lines.append(f"{file.name}\t{stat.st_size}\t{stat.st_mtime_ns}\t{stat.st_ctime_ns}")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def file_signature(path: Path) -> list | None:
    """``[size, modification ns]`` of a written file, or None when it is gone."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def written_files(result: ScanResult, options: PredictOptions) -> list[str]:
    """The files (relative to the output folder) a run with ``options`` wrote for a finished scan."""
    names = [Path(p).name for p in (result.output, result.dicom_seg) if p]
    if options.save_probabilities:
        names.append(f"{result.name}{PROBABILITY_SUFFIX}.nii.gz")
    if options.overlays:
        names.append(f"overlays/{result.name}.png")
    return sorted(set(names))


def _entries(stored: object, key: str) -> dict:
    value = stored.get(key) if isinstance(stored, dict) else None
    return value if isinstance(value, dict) else {}


class PredictionState:
    """The state file of one output folder (and part) for a run over ``scans`` (``(name, path)``)."""

    def __init__(self, output: Path, tag: str, config: dict, options: PredictOptions, scans: list):
        self.path, self.output, self.config, self.options = state_path(output, tag), Path(output), config, options
        self.inputs = {name: input_signature(path) for name, path in scans}  # before anything is read
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        except (OSError, ValueError):
            stored = {}
        self.earlier = _entries(stored, "scans")  # whatever configuration wrote them: what they wrote
        self.earlier_run_files = _entries(stored, "run_files")
        same = isinstance(stored, dict) and stored.get("configuration") == config
        if options.resume and self.earlier and not same:
            logger.info(f"{self.path.name}: made with another model or options; every scan is segmented again")
        self.resumable = self.earlier if options.resume and same else {}
        self.scans: dict = {}
        self.run_files: dict = {}
        self.lock = threading.Lock()

    def finished(self, name: str, path) -> ScanResult | None:
        """The recorded result of scan ``name`` when it can be skipped: same configuration and input, every
        output it wrote still there as written. Output paths are this run's."""
        entry = self.resumable.get(name)
        if not isinstance(entry, dict):
            return None
        try:
            if Path(entry["input"]).resolve() != Path(path).resolve() or entry["signature"] != self.inputs[name]:
                return None
            if any(file_signature(self.output / file) != sig for file, sig in entry["files"].items()):
                return None
            result = ScanResult(**{**entry["result"], "input": str(path), "resumed": True})
        except (TypeError, KeyError, AttributeError):  # an entry another version wrote
            return None
        result.output = str(self.output / Path(result.output).name) if result.output else ""
        result.dicom_seg = str(self.output / Path(result.dicom_seg).name) if result.dicom_seg else ""
        return result

    def start(self, resumed: set) -> None:
        """Keep the records of the scans this run resumes (the others are segmented again); write."""
        with self.lock:
            self.scans = {name: self.resumable[name] for name in resumed}
            self._write()

    def record(self, result: ScanResult) -> ScanResult:
        """Add a finished scan (no error) with the files it wrote, and rewrite the state; returns ``result``."""
        if result.error:
            return result
        files = {file: file_signature(self.output / file) for file in written_files(result, self.options)}
        entry = {
            "input": result.input,
            "signature": self.inputs.get(result.name) or input_signature(result.input),
            "files": {file: sig for file, sig in files.items() if sig is not None},
            "result": asdict(result),
        }
        with self.lock:  # the writer thread records; one rewrite at a time
            self.scans[result.name] = entry
            self._write()
        return result

    def record_run_files(self, names) -> None:
        """Add the run files written at the end (``statistics.csv``, ``report.html``)."""
        with self.lock:
            self.run_files = {name: file_signature(self.output / name) for name in names if name}
            self._write()

    def unchanged_earlier_files(self, name: str | None = None) -> list[Path]:
        """The files an earlier run recorded for scan ``name`` (None: its run files) that are still as it
        wrote them — the only ones a re-run may remove."""
        entry = self.earlier.get(name) if name is not None else {"files": self.earlier_run_files}
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, dict):
            return []
        return [self.output / file for file, sig in files.items() if file_signature(self.output / file) == sig]

    def _write(self) -> None:
        write_json_atomic(self.path, {"configuration": self.config, "scans": self.scans, "run_files": self.run_files})
