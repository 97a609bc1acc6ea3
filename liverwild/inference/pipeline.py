"""One process's scans through a predictor, one failure never stopping the others: reading, segmenting
and writing overlap (a reader and a writer thread around the model's work), results in input order."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import LiverwildError
from ..log import get_logger
from .base import BasePredictor, ScanResult

logger = get_logger(__name__)


def guarded(name: str, path, work, *args):
    """``work(*args)``, or the failed :class:`ScanResult` of this scan (logged with a one-line reason) if it
    raises: bad input (LiverwildError) as a warning, anything else as an error with its traceback."""
    try:
        return work(*args)
    except LiverwildError as exc:
        logger.warning(f"FAILED {exc}")
        return ScanResult(name, str(path), error=str(exc))
    except Exception as exc:
        message = f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        logger.error(f"FAILED {message}", exc_info=True)  # unexpected: the traceback helps a bug report
        return ScanResult(name, str(path), error=message)


def segment_all(
    predictor: BasePredictor,
    scans,
    rejected,
    output: Path | None,
    input_paths: set,
    save_probabilities: bool,
    overlays: bool,
    progress: bool,
    reader=None,
    first=None,
    finish=None,
    keep_volume: bool | None = None,
    finished: dict | None = None,
) -> tuple:
    """Every scan into ``output``, one failure never stopping the others; ``(results, seconds)``.

    Pipelined: a reader thread loads the next scan and a writer thread writes the previous one's mask
    while the model works on the current scan, so a folder takes about the time of its slowest stage
    (reading and writing are mostly compression, which leaves the GIL). At most one scan waits read and
    two wait written, so memory stays bounded. ``reader`` (a one-thread executor, shut down here) and
    ``first`` (its read of the first scan) let the caller start reading before the model is loaded.
    ``finish(result, volume, mask, probs)``, when given, writes a scan in the writer thread instead of
    ``predictor.write_outputs`` (:class:`.outputs.ScanOutputs`); ``output`` may then be None.
    ``keep_volume`` (default: ``overlays``) keeps each scan's image for the writer. ``finished``: name →
    the recorded :class:`ScanResult` of a scan not to segment again (``lw_predict --continue``).
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    results: dict[int, ScanResult] = {}  # by position: rejected inputs first, then the scans in order
    for position, (p, reason) in enumerate(rejected):
        results[position] = ScanResult(Path(p).name, str(p), error=f"{p}: {reason}")
        logger.warning(f"FAILED {results[position].error}")
    todo: list[tuple] = []  # (position, name, path) of the scans to segment
    for position, (name, path) in enumerate(scans, start=len(rejected)):
        if output is not None and (output / f"{name}.nii.gz").resolve() in input_paths:
            results[position] = ScanResult(name, str(path), error=f"{path}: output would overwrite an input")
            logger.warning(f"FAILED {results[position].error}")
        elif finished and name in finished:
            results[position] = finished[name]
        else:
            todo.append((position, name, path))
    start = time.perf_counter()
    reader = reader or ThreadPoolExecutor(1, thread_name_prefix="lw-read")
    if first is None or not todo or todo[0][2] != scans[0][1]:
        first = reader.submit(predictor.load, todo[0][2]) if todo else None
    with reader, ThreadPoolExecutor(1, thread_name_prefix="lw-write") as writer:
        reads = deque([first] if first is not None else [])
        writes: deque = deque()

        def collect_write():
            index, name, path, future = writes.popleft()
            results[index] = guarded(name, path, future.result)

        def segment(name, path, pending):
            volume, read_seconds = pending.result()
            keep = overlays if keep_volume is None else keep_volume
            result, mask, probs = predictor.segment_loaded(name, path, volume, save_probabilities, keep)
            result.seconds["read"] = read_seconds
            return result, volume, mask, probs

        for k, (index, name, path) in enumerate(tqdm(todo, desc="predict", unit="scan", disable=not progress)):
            pending = reads.popleft()
            if k + 1 < len(todo):
                reads.append(reader.submit(predictor.load, todo[k + 1][2]))
            outcome = guarded(name, path, segment, name, path, pending)
            if isinstance(outcome, ScanResult):
                results[index] = outcome
                continue
            if len(writes) >= 2:
                collect_write()
            result, volume, mask, probs = outcome
            if finish is not None:
                job = writer.submit(finish, result, volume, mask, probs)
            else:
                job = writer.submit(predictor.write_outputs, result, volume, mask, probs, output, overlays)
            writes.append((index, name, path, job))
        while writes:
            collect_write()
    return [results[i] for i in sorted(results)], time.perf_counter() - start
