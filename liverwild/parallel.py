"""Ordered parallel map with a bounded number of results in flight (memory-safe pipelines)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ProcessPoolExecutor


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
