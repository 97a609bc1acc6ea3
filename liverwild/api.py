"""``liverwild.segment``: ``lw_predict`` as one Python call that returns the masks and statistics, for a
notebook that should never shell out.

Example (README.md's "From Python" section holds it; tests/test_api.py runs that copy)::

    import liverwild

    result = liverwild.segment("scans/ct.nii.gz")  # nothing is written to disk
    mask = result.masks["ct"]  # a SimpleITK image on the scan's grid
    print(result.statistics[["scan", "organ", "volume_ml", "intensity_mean"]])

With an output folder it writes what ``lw_predict`` writes, e.g.
``liverwild.segment("dicom_folder/", "out/", output_types=("nifti", "dicom-seg"))``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple


class Segmentation(NamedTuple):
    """What :func:`segment` returns: ``masks`` (scan name → SimpleITK uint8 image with the input's size,
    spacing, origin and direction), ``statistics`` (pandas DataFrame, one row per scan and organ:
    :data:`liverwild.inference.statistics.COLUMNS`) and ``report`` (the prediction report, as
    ``prediction_report.json`` holds it; failed scans are listed there with their error)."""

    masks: dict
    statistics: Any
    report: dict


def segment(input, output=None, **options) -> Segmentation:
    """Segment a scan file, a DICOM series folder, or a folder of them, as ``lw_predict`` does.

    Args:
        input: what ``lw_predict -i`` takes.
        output: a folder to write into as ``lw_predict -o`` does, or None (default): nothing is written,
            and options that write files (``output_types`` with ``dicom-seg``, ``overlays``,
            ``save_probabilities``, ``report="html"``) are refused.
        options: :func:`liverwild.inference.predict`'s keyword options (``model``, ``device``,
            ``postprocess``, ``output_types``, ``report``, ...); ``statistics`` defaults to True here
            (False: an empty table), ``progress`` to False.

    Returns:
        :class:`Segmentation` ``(masks, statistics, report)``. Every mask is held in memory.
    """
    from .errors import ConfigurationError
    from .inference.driver import PredictOptions, predict_with
    from .inference.statistics import statistics_table

    known = {f.name for f in fields(PredictOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        listing = ", ".join(sorted(known))
        raise ConfigurationError(f"segment(): unknown option(s) {', '.join(unknown)}; known: {listing}")
    options = {"statistics": True, "progress": False, **options}
    if isinstance(options.get("output_types"), str):
        options["output_types"] = (options["output_types"],)
    masks: dict = {}
    report = predict_with(input, output, PredictOptions(**options), masks=masks)
    return Segmentation(masks, statistics_table(report["scans"]), report)
