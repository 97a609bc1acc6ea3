"""Which slices a slice is contrasted with (method.md §3, Table 3).

Slices of one scan are indexed 0 … n−1 (canonical order, inferior → superior).

- ``neighbours`` (the paper): positives i−1 and i+1; negative (i + n//2) mod n.
- ``neighbours2``: positives i−2 and i+2; same negative.
- ``two_negatives``: positives i±1; negatives (i + n//2) mod n and (i + n//2 + 1) mod n.

Positives outside the scan are dropped (the first slice has only i+1); if none is left — a scan of one
slice, or of two with distance 2 — the slice itself is the positive. In a one-slice scan the negative
is the slice itself too: callers should not train on such scans, but nothing breaks.
"""

from __future__ import annotations

SAMPLING_STRATEGIES: dict[str, dict[str, tuple[int, ...]]] = {
    "neighbours": {"positive_offsets": (-1, 1), "negative_offsets": (0,)},
    "neighbours2": {"positive_offsets": (-2, 2), "negative_offsets": (0,)},
    "two_negatives": {"positive_offsets": (-1, 1), "negative_offsets": (0, 1)},
}


def contrastive_partners(i: int, n: int, strategy: str = "neighbours") -> tuple:
    """``(positive indices, negative indices)`` of slice ``i`` in a scan of ``n`` slices."""
    if strategy not in SAMPLING_STRATEGIES:
        raise KeyError(f"unknown sampling strategy {strategy!r}; known: {', '.join(SAMPLING_STRATEGIES)}")
    if not 0 <= i < n:
        raise IndexError(f"slice {i} outside a scan of {n} slices")
    spec = SAMPLING_STRATEGIES[strategy]
    positives = [i + d for d in spec["positive_offsets"] if 0 <= i + d < n] or [i]
    negatives = [(i + n // 2 + d) % n for d in spec["negative_offsets"]]
    return positives, negatives
