"""Ordered parallel maps: in processes with a bounded number of results in flight (memory-safe
pipelines), and in threads for NumPy and onnxruntime work that releases the GIL."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def cpu_threads() -> int:
    """The CPU threads a process uses: ``$LW_THREADS``, else the cores."""
    return int(os.environ.get("LW_THREADS", 0)) or (os.cpu_count() or 1)


def thread_map(function, jobs, workers: int | None = None) -> list:
    """``[function(job) for job in jobs]``, in job order, the jobs shared by ``workers`` threads (default
    :func:`cpu_threads`; one runs them in this thread)."""
    jobs = list(jobs)
    workers = min(workers or cpu_threads(), len(jobs))
    if workers <= 1:
        return [function(job) for job in jobs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, jobs))


def bounded_imap(function, jobs, workers: int = 1, in_flight: int | None = None, pool_from: int = 2):
    """Yield ``function(job)`` in job order. With ``workers >= pool_from`` jobs run in that many
    processes (``pool_from=1`` lets a single worker overlap with the consumer), and
    at most ``in_flight`` (default ``workers + 1``) results wait for the consumer, so a slow consumer
    (e.g. feature extraction) never makes finished results pile up in memory."""
    if workers < pool_from:
        for job in jobs:
            yield function(job)
        return
    in_flight = in_flight or workers + 1
    with ProcessPoolExecutor(workers) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(function, job))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
