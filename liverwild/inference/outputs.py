"""What a prediction run writes per scan and per run, beyond the NIfTI mask: DICOM-SEG objects
(``--output-type``), per-organ statistics (``--statistics`` → ``statistics.csv``), the QC page
(``--report html`` → ``report.html``), and, for :func:`liverwild.segment`, the masks kept in memory.

:class:`ScanOutputs` is the per-scan step :func:`.pipeline.segment_all` runs in its writer thread;
:func:`write_run_files` writes the per-run files once every scan is done (under ``torchrun``, rank 0
after the parts' reports are merged).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..atomic import remove_stale_temporaries
from ..errors import ConfigurationError
from ..log import get_logger
from .base import OVERLAYS, BasePredictor, ScanResult
from .resume import written_files
from .statistics import organ_statistics, write_statistics_csv

logger = get_logger(__name__)

OUTPUT_TYPES = ("nifti", "dicom-seg")
REPORTS = ("auto", "html", "none")
FIGURES = ".lw_report"  # per-scan QC pictures, kept until report.html embeds them


def check_output_options(options, output) -> None:
    """Refuse, before any work, output options that cannot act: unknown output types or report kinds,
    ``dicom-seg`` without highdicom, and (``output`` None: nothing is written) any option that writes."""
    types = tuple(options.output_types)
    unknown = sorted(set(types) - set(OUTPUT_TYPES))
    if not types or unknown:
        raise ConfigurationError(
            f"--output-type {' '.join(types) or '(none)'}: choose one or both of {', '.join(OUTPUT_TYPES)}"
        )
    if options.report not in REPORTS:
        raise ConfigurationError(f"--report {options.report}: choose one of {', '.join(REPORTS)}")
    if "dicom-seg" in types:
        from ..io.dicom_seg import require_highdicom

        require_highdicom()
    if output is None:
        writes = {
            "output_types dicom-seg": "dicom-seg" in types,
            "overlays": options.overlays,
            "save_probabilities": options.save_probabilities,
            "report html": options.report == "html",
            "resume (--continue)": options.resume,
        }
        refused = [name for name, on in writes.items() if on]
        if refused:
            raise ConfigurationError(f"{', '.join(refused)}: these write files; give an output folder")


def wants_html(report: str, n_inputs: int, output) -> bool:
    """Whether the run writes ``report.html``: ``html``, or ``auto`` for more than one input."""
    return output is not None and (report == "html" or (report == "auto" and n_inputs > 1))


class ScanOutputs:
    """Everything written or kept for one segmented scan (``finish``), as the run's options ask.

    ``output`` None: nothing is written (the masks go to ``masks``, name → SimpleITK image, when given).
    """

    def __init__(self, predictor: BasePredictor, trained, options, output, html: bool, masks: dict | None = None):
        self.predictor, self.options, self.html, self.masks = predictor, options, html, masks
        self.output = Path(output) if output is not None else None
        self.labels = predictor.label_names()
        described = trained.describe()
        self.model_name = str(described.get("fold") or Path(described["folder"]).name)
        self.training = "synthetic data only" if described.get("default_model") else ""

    @property
    def keep_volume(self) -> bool:
        """Whether the scan's image must survive segmentation (the overlays, statistics and QC page read it)."""
        return bool(self.options.overlays or self.options.statistics or self.html)

    def finish(self, result: ScanResult, volume, mask: np.ndarray, probs) -> ScanResult:
        """Write (or keep) the outputs of one scan; returns ``result`` completed."""
        types = self.options.output_types
        seg = "dicom-seg" in types and Path(volume.path).is_dir()
        if "dicom-seg" in types and not seg:
            message = f"{volume.path}: a DICOM-SEG needs a DICOM series as input; NIfTI written instead"
            logger.warning(f"WARNING {message}")
            result.warnings.append(message)
        if self.output is None:
            result.seconds = {k: round(result.seconds.get(k, 0.0), 4) for k in self.predictor.stages}
        else:
            nifti = "nifti" in types or not seg
            result = self.predictor.write_outputs(
                result, volume, mask, probs, self.output, self.options.overlays, nifti=nifti
            )
        t = time.perf_counter()  # the SEG, statistics and QC picture count as the write stage
        if seg and self.output is not None:
            from ..io.dicom_seg import source_datasets, write_dicom_seg

            path = self.output / f"{result.name}_seg.dcm"
            write_dicom_seg(mask, source_datasets(volume), self.labels, path, self.model_name, self.training)
            result.dicom_seg, result.output = str(path), result.output or str(path)
        if self.options.statistics:
            removed = result.components_removed
            result.statistics = organ_statistics(
                volume.array, mask, volume.geometry, self.labels, result.modality, removed, result.name
            )
        if self.html and self.output is not None:
            from ..qc_report import scan_figure

            scan_figure(volume, mask, result.modality, self.labels, self.output / FIGURES / f"{result.name}.png")
        result.seconds["write"] = round(result.seconds.get("write", 0.0) + time.perf_counter() - t, 4)
        if self.masks is not None:
            import SimpleITK as sitk

            self.masks[result.name] = volume.geometry.apply_to(sitk.GetImageFromArray(np.asarray(mask, np.uint8)))
        return result


def write_run_files(output: Path, report: dict, tag: str, statistics: bool, html: bool, earlier=()) -> dict:
    """Write ``statistics<tag>.csv`` and ``report<tag>.html`` of a finished run's ``report`` into
    ``output`` as asked, and remove the ``earlier`` run files (an earlier run's, unchanged since:
    :meth:`.resume.PredictionState.unchanged_earlier_files`) this run did not write; returns
    ``{"statistics": file name or None, "report": file name or None}``."""
    written: dict = {"statistics": None, "report": None}
    for path in earlier:
        if path.name not in (f"statistics{tag}.csv" if statistics else "", f"report{tag}.html" if html else ""):
            path.unlink(missing_ok=True)
            logger.info(f"removed {path.name}: an earlier run's, not made by this one")
    if statistics:
        written["statistics"] = write_statistics_csv(report["scans"], output / f"statistics{tag}.csv").name
    if html:
        from ..qc_report import write_html_report

        written["report"] = write_html_report(report, output / FIGURES, output / f"report{tag}.html").name
        for scan in report["scans"]:
            (output / FIGURES / f"{scan['name']}.png").unlink(missing_ok=True)
        if (output / FIGURES).is_dir() and not any((output / FIGURES).iterdir()):
            shutil.rmtree(output / FIGURES, ignore_errors=True)
    return written


def remove_earlier_outputs(output: Path, results: list, scans: list, options, state, input_paths: set) -> list[Path]:
    """Remove what an earlier run wrote for this run's ``scans`` (``(name, path)``), recorded in the
    :class:`~.resume.PredictionState` ``state`` and unchanged since, that this run did not write: a failed
    scan's old mask, a probability map, DICOM-SEG or overlay no longer asked for. Otherwise the folder
    would mix two runs, and ``lw_evaluate`` would score an old mask as this run's. A file nobody recorded
    (the user's own, a corrected mask) or changed since is kept, an input (``input_paths``, resolved) never
    touched; returns the files removed."""
    removed = []
    segmented = {(name, str(path)) for name, path in scans}
    for result in results:
        if (result.name, result.input) not in segmented:  # an input rejected before segmenting
            continue
        made = set() if result.error else {output / file for file in written_files(result, options)}
        for path in state.unchanged_earlier_files(result.name):
            if path not in made and path.resolve() not in input_paths:
                path.unlink(missing_ok=True)
                removed.append(path)
                logger.info(f"removed {path.relative_to(output)}: an earlier run's, not made by this one")
    return removed


def remove_stale_outputs(output: Path) -> list:
    """The temporaries a killed ``lw_predict`` left in ``output`` and the folders it writes into
    (:func:`liverwild.atomic.remove_stale_temporaries`); returns them. Only for a run over the whole
    folder: it holds the folder's lock and no other run writes there (the driver refuses to start
    beside one, :func:`liverwild.locking.refuse_other_writers`)."""
    return [p for folder in (output, output / FIGURES, output / OVERLAYS) for p in remove_stale_temporaries(folder)]
