"""``lw_predict``'s driver: :class:`PredictOptions` (every option of a prediction run, one frozen object),
the runtime chosen (``--runtime``: torch, or the exported ONNX graph without importing torch,
:mod:`.onnx_runtime`), the folder split into parts (``--part``/``--num-parts``, or torchrun's ranks), the
model loaded and its predictor made (:mod:`.registry`) while the first scan is read, the scans segmented
(:func:`.pipeline.segment_all`) under the output folder's lock, and the prediction report written (the
parts' reports merged under torchrun).
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_json_atomic
from ..errors import ConfigurationError, LiverwildError
from ..locking import acquire, refuse_other_writers, release
from ..log import get_logger
from ..shipped import DISCLAIMER
from .base import BasePredictor
from .discovery import find_scans
from .loading import load_runtime, under_torchrun
from .model_folder import resolve_model_dir
from .onnx_runtime import choose_runtime
from .options import PredictOptions
from .outputs import (
    ScanOutputs,
    check_output_options,
    remove_earlier_outputs,
    remove_stale_outputs,
    wants_html,
    write_run_files,
)
from .pipeline import segment_all
from .postprocessing import steps_from
from .resume import PredictionState, configuration

if TYPE_CHECKING:  # torch is imported by the torch runtime's branch only (--runtime onnx runs without it)
    import torch

logger = get_logger(__name__)


def predict(
    inputs,
    output,
    *,
    model="default",
    results=None,
    trainer=None,
    checkpoint="best",
    device="auto",
    batch_size=None,
    postprocess=True,
    save_probabilities=False,
    overlays=False,
    modality="auto",
    backbone_weights=None,
    progress=True,
    part: int = 0,
    num_parts: int = 1,
    int8_teacher: bool = False,
    liver_only: bool = False,
    output_types=("nifti",),
    statistics: bool = False,
    report: str = "auto",
    runtime: str = "auto",
    resume: bool = False,
) -> dict:
    """Segment every scan in ``inputs`` into ``output`` — what ``lw_predict`` runs.

    Args:
        inputs: a scan file (NIfTI, NRRD, MHA), a DICOM series folder, or a folder of them.
        output: folder for ``<scan>.nii.gz`` masks (uint8, the input's size, spacing, origin and
            direction: liver 0/1, or a 3d model's organ labels as the report's ``classes`` says) and
            ``prediction_report.json``; must differ from the input folder.
        model: a trained model folder, a fold name under ``results``, or ``"default"`` (the shipped model).
        results, trainer: where to look up a fold name, and which trainer's model when a fold has several.
        checkpoint: ``"best"``, ``"final"``, ``"latest"`` or a file name in the model folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        batch_size: slices per forward pass (default 128 on GPU; on CPU 16, or 4 with the ONNX runtime).
        postprocess: ``True`` (default) every post-processing step of the liver mask
            (:data:`.postprocessing.STEPS`: ``largest_component``, ``bridges``, ``location``,
            ``z_continuity``, ``fill_holes``, ``plausibility``), ``False`` none, or a list of step names;
            a 3d model's organ map takes ``largest_component`` (of every organ) alone.
        save_probabilities: also write ``<scan>_prob.nii.gz`` (float32; the liver's probability — for a
            3d model with ``liver_only``).
        overlays: also write ``overlays/<scan>.png``.
        modality: ``"auto"`` (from the intensities), ``"CT"`` or ``"MR"``.
        backbone_weights: the teacher's weights file when it moved since training.
        progress: show a progress bar.
        int8_teacher: CPU only: run the teacher with int8 linear layers (faster; off by default, see
            :mod:`liverwild.backbones.quantization`).
        liver_only: a 3d (multi-organ) model writes the liver alone as a 0/1 mask (its organ map's liver
            label), to compare it with the 2D models; 2D models always do.
        output_types: ``("nifti",)`` (default), ``("dicom-seg",)`` or both: a DICOM series input also gets
            ``<scan>_seg.dcm``, a DICOM Segmentation referencing it (:mod:`liverwild.io.dicom_seg`; needs
            highdicom); any other input gets NIfTI and a warning.
        statistics: also write ``statistics.csv``: per scan and organ the volume, intensity mean, median and
            s.d., LPS bounding box and components removed (:mod:`.statistics`).
        report: ``"html"`` writes ``report.html``, the QC page (:mod:`liverwild.qc_report`); ``"none"`` not;
            ``"auto"`` (default) writes it when ``inputs`` holds more than one scan.
        runtime: ``"torch"``; ``"onnx"``: the graph ``lw_export MODEL --onnx`` wrote beside the checkpoint,
            run by onnxruntime without importing torch (refused when it is missing or stale, or with an
            option only torch honours: ``int8_teacher``, ``backbone_weights``, torchrun, ``mps``, ``cuda``
            without onnxruntime-gpu); ``"auto"`` (default): ``onnx`` where it would be accepted and torch
            would not use a GPU that onnxruntime lacks, else ``torch`` (:func:`.onnx_runtime.choose_runtime`).
        part, num_parts: segment only scans ``part``, ``part + num_parts``, ... of the sorted list
            (nnU-Net's convention), so that ``num_parts`` processes or machines share one folder
            without writing a scan twice; each part writes ``prediction_report.part<K>of<N>.json``.
            Under ``torchrun`` the ranks are the parts (leave these at 0 and 1): each rank uses its own
            GPU and rank 0 writes one merged ``prediction_report.json``.
        resume: skip the scans an interrupted run into ``output`` finished with the same model, runtime,
            device type, liverwild revision and output options, whose inputs are unchanged and outputs
            still there (:mod:`.resume`); their results go into the report with ``resumed`` true.

    Returns:
        The report written to ``prediction_report.json``: model, device, git revision and versions, the
        post-processing steps applied, per-scan seconds per stage, liver volume (ml), plausibility
        ``flags`` and ``extent_mm``, components removed, DICOM-SEG path, statistics rows, warnings and
        error; ``n_ok`` and ``n_failed``; ``outputs`` names the run's ``statistics.csv`` and ``report.html``.

    Failures are reported per scan (a warning naming the file) and do not stop the others; a folder
    without any scan is an error.

    Example::

        from liverwild.inference import predict
        report = predict("scans/", "masks/", device="cpu")
        print(report["n_ok"], "masks written")
    """
    options = PredictOptions(
        model=model,
        results=results,
        trainer=trainer,
        checkpoint=checkpoint,
        device=device,
        batch_size=batch_size,
        postprocess=postprocess,
        save_probabilities=save_probabilities,
        overlays=overlays,
        modality=modality,
        backbone_weights=backbone_weights,
        progress=progress,
        part=part,
        num_parts=num_parts,
        int8_teacher=int8_teacher,
        liver_only=liver_only,
        output_types=tuple([output_types] if isinstance(output_types, str) else output_types),
        statistics=statistics,
        report=report,
        runtime=runtime,
        resume=resume,
    )
    return predict_with(inputs, output, options)


def predict_with(inputs, output, options: PredictOptions, masks: dict | None = None) -> dict:
    """:func:`predict` with its options as one :class:`PredictOptions`. ``output`` None writes nothing
    (options that write are refused); ``masks``, when given, receives name → mask (SimpleITK image)."""
    steps_from(options.postprocess)  # unknown steps are refused before anything is read
    check_output_options(options, output)
    inputs, output = Path(inputs), Path(output) if output is not None else None
    if output is not None and output.resolve() == (inputs.resolve() if inputs.is_dir() else inputs.resolve().parent):
        raise LiverwildError(
            f"{output}: the output folder must differ from the input folder (inputs are never overwritten)"
        )
    scans, rejected = find_scans(inputs, exclude=output)
    inside = [p for _, p in scans if output is not None and output.resolve().is_relative_to(Path(p).resolve())]
    if inside:
        raise LiverwildError(f"{output}: the output folder lies inside the input scan {inside[0]}; choose one outside")
    if not scans and not rejected:
        raise LiverwildError(f"{inputs}: no scans found (NIfTI, NRRD, MHA or DICOM series folders)")
    input_paths = {Path(p).resolve() for _, p in scans}
    html = wants_html(options.report, len(scans) + len(rejected), output)
    if choose_runtime(options, resolve_model_dir(options.model, options.results, options.trainer)) == "onnx":
        if not 0 <= options.part < options.num_parts:
            raise ConfigurationError(
                f"--part {options.part} --num-parts {options.num_parts}: need 0 ≤ part < num-parts"
            )
        share = (sorted(scans)[options.part :: options.num_parts], rejected if options.part == 0 else [])
        return _predict_share(inputs, output, share, input_paths, None, options, html, masks)
    from .. import distributed
    from ..distributed import distributed_session

    with distributed_session(options.device) as (context, dev):
        part, num_parts = options.part, options.num_parts
        if context.enabled:
            if num_parts != 1:
                raise ConfigurationError(
                    "under torchrun every rank is one part: leave out --part and --num-parts (or run without torchrun)"
                )
            part, num_parts = context.rank, context.world_size
        if not 0 <= part < num_parts:
            raise ConfigurationError(f"--part {part} --num-parts {num_parts}: need 0 ≤ part < num-parts")
        share = (sorted(scans)[part::num_parts], rejected if part == 0 else [])
        mine = replace(options, part=part, num_parts=num_parts, progress=options.progress and context.is_main)
        report = _predict_share(inputs, output, share, input_paths, dev, mine, html, masks)
        if context.enabled:
            report = {**merge_reports(distributed.gather_objects(report)), "job": distributed.describe_job(context)}
            if context.is_main and output is not None:
                report["outputs"] = write_run_files(output, report, "", options.statistics, html)
                write_json_atomic(output / "prediction_report.json", report)
            distributed.barrier()
    return report


def same_split(num_parts: int, lock_name: str) -> bool:
    """Whether ``lock_name`` is the lock of a part of a ``--num-parts num_parts`` split (parts of one split
    write different scans of one folder; a whole-folder run or another split would write the same ones)."""
    return num_parts > 1 and re.fullmatch(rf"\.lw\.part\d+of{num_parts}\.lock", lock_name) is not None


def merge_reports(reports: list) -> dict:
    """One report from the reports of the parts of a folder (scans in input order, counts summed)."""
    merged = dict(reports[0])
    merged["scans"] = sorted((s for r in reports for s in r["scans"]), key=lambda s: s["input"])
    merged["n_ok"] = sum(r["n_ok"] for r in reports)
    merged["n_failed"] = sum(r["n_failed"] for r in reports)
    merged["seconds_total"] = max(r["seconds_total"] for r in reports)
    merged["devices"] = [r["device"] for r in reports]
    merged["part"], merged["num_parts"] = "all", len(reports)
    return merged


def _predict_share(
    inputs: Path,
    output: Path | None,
    share: tuple,
    input_paths: set,
    dev: torch.device | None,
    options: PredictOptions,
    html: bool = False,
    masks: dict | None = None,
) -> dict:
    """:func:`predict` of this process's ``(scans, rejected)`` (``options.part`` of ``options.num_parts``)
    on ``dev`` (None: the ONNX runtime); writes (unless ``output`` is None) and returns its report."""
    from concurrent.futures import ThreadPoolExecutor

    scans, rejected = share
    part, num_parts = options.part, options.num_parts
    tag = f".part{part}of{num_parts}" if num_parts > 1 else ""
    reader = ThreadPoolExecutor(1, thread_name_prefix="lw-read")
    first = reader.submit(BasePredictor.load, scans[0][1]) if scans else None  # read while the model loads
    lock = None
    try:
        # the model first: options it refuses leave no output folder behind
        trained, predictor, runtime_fields = load_runtime(dev, options)
        if trained.config.get("default_model"):
            logger.info(f"NOTE: {DISCLAIMER}")
        if trained.random_backbone and under_torchrun(dev)[1]:
            logger.warning(
                "WARNING: this model was trained on a RANDOMLY initialised backbone (demo/test setting): its "
                "masks are not meant for real use."
            )
        try:  # one writer per output folder, or the parts of one split
            lock = acquire(output, "lw_predict", f".lw{tag}.lock") if output is not None else None
        except OSError as exc:
            raise LiverwildError(
                f"{output}: the output folder cannot be written ({exc.strerror or exc}); nothing was segmented"
            ) from exc
        if lock is not None:
            refuse_other_writers(output, lock, partial(same_split, num_parts))
        if output is not None and num_parts == 1:  # alone in the folder: what a killed run left can go
            for path in remove_stale_outputs(output):
                logger.info(f"removed {path.name}, left half-written by an interrupted run")
        writer = ScanOutputs(predictor, trained, options, output, html, masks)
        finish, finished, state = writer.finish, {}, None
        if output is not None:
            config = configuration(options, trained.folder, runtime_fields, predictor.device.type)
            state = PredictionState(output, tag, config, options, scans)
            finished = {name: done for name, path in scans if (done := state.finished(name, path)) is not None}
            state.start(set(finished))
            if finished:
                logger.info(f"--continue: {len(finished)} of {len(scans)} scan(s) already segmented; not again")

            def finish(result, volume, mask, probs, state=state):
                return state.record(writer.finish(result, volume, mask, probs))

        results_list, seconds = segment_all(
            predictor,
            scans,
            rejected,
            output,
            input_paths,
            options.save_probabilities,
            options.overlays,
            options.progress,
            reader,
            first,
            finish=finish,
            keep_volume=writer.keep_volume,
            finished=finished,
        )
        if output is not None and state is not None:
            remove_earlier_outputs(output, results_list, scans, options, state, input_paths)
        report = {
            "inputs": str(inputs),
            "output": str(output),
            "model": trained.describe(),
            "plans": {source: plans.to_json() for source, plans in trained.plans.items()},
            **runtime_fields,
            **predictor.describe(),
            "seconds_total": round(seconds, 3),
            "warmup_seconds": round(predictor.warmup_seconds, 3),
            "scans": [asdict(r) for r in results_list],
            "n_ok": sum(not r.error for r in results_list),
            "n_failed": sum(bool(r.error) for r in results_list),
            "part": part,
            "num_parts": num_parts,
            "output_types": list(options.output_types),
        }
        if output is not None and not under_torchrun(dev)[0]:  # under torchrun rank 0 writes the merged report
            earlier = state.unchanged_earlier_files() if state is not None else []
            report["outputs"] = write_run_files(output, report, tag, options.statistics, html, earlier)
            write_json_atomic(output / f"prediction_report{tag}.json", report)
            if state is not None:
                state.record_run_files(report["outputs"].values())
    except BaseException:
        reader.shutdown(wait=False, cancel_futures=True)  # a read under way is left to finish; none is started
        raise
    finally:
        if lock is not None:
            release(lock)
    return report
