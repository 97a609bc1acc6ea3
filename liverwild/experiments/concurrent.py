"""``lw_experiment --concurrent K``: K independent runs of an experiment at once on one device.

A small 2D network at the paper's batch of 8 leaves a large GPU mostly idle: its step is bound by the
host launching kernels, not by the GPU. Runs of an experiment are independent (each has its own model and
run folder, its own seed), so K of them can share the device, each in its own process (``spawn``: CUDA
cannot be forked). Each worker process takes a share of the device:

- CUDA (and MPS): its caching allocator is capped at 1/K of the device memory
  (``set_per_process_memory_fraction``), so one run cannot starve the others; a run that needs more fails
  with an out-of-memory error naming it, and the others go on.
- CPU: ``cores // K`` intra-op threads (``$LW_THREADS // K`` when set), at least one.

Each run has a process of its own, so a run that fails — with an error, or a worker that dies — does not
stop the others; when all have ended, :class:`ConcurrentRunsError` names every failed run and its error.
Re-running the experiment resumes them, as for sequential runs. Each run's numbers are those it gets
alone with the same threads (the runs are seeded; tested on CPU); its times are not, since the runs
share the device — the report says how many ran at once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from ..errors import LiverwildError
from ..log import get_logger
from ..parallel import cpu_threads

logger = get_logger(__name__)


class ConcurrentRunsError(LiverwildError):
    """Some of the runs started together failed; the others finished."""


def worker_threads(concurrent: int) -> int:
    """Intra-op threads of one of ``concurrent`` CPU workers: ``$LW_THREADS`` (else the cores) shared out."""
    total = cpu_threads()
    return max(1, total // concurrent)


def _start_worker(concurrent: int, device: str, level: int) -> None:
    """Initialise one worker process: logging at the parent's level, its share of the device."""
    import logging

    import torch

    from ..device import resolve_device
    from ..log import configure_logging

    configure_logging({logging.DEBUG: 1, logging.INFO: 0}.get(level, -1))
    torch.set_num_threads(worker_threads(concurrent))
    os.environ["LW_THREADS"] = str(worker_threads(concurrent))  # what the trainers' own set-up reads
    chosen = resolve_device(device)
    if chosen.type == "cuda":  # the allocator's cap needs the device's index ("cuda" alone has none)
        index = chosen.index if chosen.index is not None else torch.cuda.current_device()
        torch.cuda.set_per_process_memory_fraction(1.0 / concurrent, index)
    elif chosen.type == "mps":
        torch.mps.set_per_process_memory_fraction(1.0 / concurrent)


def run_concurrently(run: Callable, jobs: Sequence[tuple], keys: Sequence[str], concurrent: int, device) -> list:
    """``run(*job)`` for every job, at most ``concurrent`` at a time, each in a process of its own (so that a
    worker that dies — killed for memory, a fatal CUDA error — takes no other run with it); returns the
    results in job order. ``keys`` name the jobs in messages. Raises :class:`ConcurrentRunsError` after
    every job has ended when some failed."""
    if concurrent < 1:
        raise LiverwildError(f"--concurrent {concurrent}: give 1 or more runs at once")
    import logging

    level = logging.getLogger("liverwild").getEffectiveLevel()
    context = multiprocessing.get_context("spawn")
    results: list = [None] * len(jobs)
    failures: dict[str, str] = {}
    logger.info(f"{len(jobs)} runs, {min(concurrent, len(jobs))} at once (each with 1/{concurrent} of the device)")
    queue = list(enumerate(jobs))
    running: dict[Future, tuple[int, ProcessPoolExecutor]] = {}
    try:
        while queue or running:
            while queue and len(running) < concurrent:
                index, job = queue.pop(0)
                pool = ProcessPoolExecutor(1, context, _start_worker, (concurrent, str(device), level))
                running[pool.submit(run, *job)] = (index, pool)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index, pool = running.pop(future)
                pool.shutdown(wait=True)
                try:
                    results[index] = future.result()
                except Exception as exc:  # noted with its traceback; the other runs go on
                    failures[keys[index]] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    logger.exception(f"FAILED {keys[index]}: {failures[keys[index]]}")
    finally:
        for _, pool in running.values():  # interrupted (Ctrl-C): no worker outlives the command
            pool.shutdown(wait=False, cancel_futures=True)
    if failures:
        listed = "; ".join(f"{key}: {why}" for key, why in failures.items())
        raise ConcurrentRunsError(
            f"{len(failures)} of {len(jobs)} runs failed ({listed}); the others finished — re-run to resume them"
        )
    return results
