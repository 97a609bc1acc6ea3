"""Declared containment checked against what is preprocessed, written to ``splits.json``'s ``containment``.

A dataset whose ``dataset.json`` says ``"contained_in": ["LiTS"]`` is protected by name: it is kept out
of the folds of a dataset *called* LiTS. When no preprocessed dataset has that name (LiTS imported as
``LiTS2017``, or not imported), the declared rule protects nothing, and only content digests
(:mod:`planning.content`) can still find shared scans. Per declaring dataset the entry records the
absent containers, the datasets whose scans match its scans by content, and the datasets that could not
be compared (no digests); a warning names the dataset and the missing container whenever the digests
found shared scans or cannot rule them out. Copies that were resampled or cropped in-plane are beyond
the digests: an entry that found nothing says so.
"""

from __future__ import annotations

from liverwild.log import get_logger
from planning.content import duplicates, shared_slices

logger = get_logger(__name__)


def matching_cases(digests: dict, slices: dict, name: str, other: str) -> int:
    """How many cases of ``name`` have the same content as a case of ``other``: the same digest, or
    shared slice digests (a crop or intensity-shifted copy)."""
    same = set(duplicates(digests.get(other, {}), digests.get(name, {})))
    same |= set(shared_slices(slices.get(other, {}), slices.get(name, {})))
    return len(same)


def uncomparable(datasets: dict, slices: dict) -> list:
    """The datasets among ``datasets`` (name → cases) with a case lacking slice digests."""
    return [d for d in sorted(datasets) if any(c not in slices.get(d, {}) for c in datasets[d])]


def containment_report(datasets: dict, contained_in: dict, digests: dict, slices: dict) -> dict:
    """``{dataset: entry}`` for each preprocessed dataset that declares ``contained_in``; logs a warning
    for each whose declared containers are absent unless the digests rule out shared scans.

    ``datasets``: name → cases; ``contained_in``: name → declared containers; ``digests``: name →
    {case: content digest}; ``slices``: name → {case: slice digests}."""
    report = {}
    for name in sorted(contained_in):
        declared = list(contained_in[name] or [])
        if name not in datasets or not declared:
            continue
        absent = [c for c in declared if c not in datasets]
        entry: dict = {"declared": declared, "absent": absent}
        if not absent:
            report[name] = {**entry, "status": "every declared container is preprocessed: the declared rule applies"}
            continue
        others = [d for d in sorted(datasets) if d != name]
        overlap = {d: n for d in others if (n := matching_cases(digests, slices, name, d))}
        unchecked = uncomparable(datasets, slices)
        missing = " and ".join(absent)
        if overlap:
            status = (
                f"declared containers {missing} absent; cases with the same content found in "
                + ", ".join(f"{d} ({n} of {len(datasets[name])})" for d, n in overlap.items())
                + " — the content rule keeps them out of each other's folds; if one of these is "
                f"{missing} under another name, add it to {name}'s dataset.json contained_in"
            )
        elif unchecked:
            status = (
                f"declared containers {missing} absent; content digests cannot rule out shared scans: "
                f"{', '.join(unchecked)} lack slice digests (re-run lw_plan_and_preprocess to measure them)"
            )
        else:
            status = (
                f"declared containers {missing} absent; content digests found no shared scan in "
                f"{len(others)} other datasets (copies resampled or cropped in-plane are not recognised)"
            )
        report[name] = {**entry, "content_overlap": overlap, "unchecked": unchecked, "status": status}
        if overlap or unchecked:
            logger.warning(f"{name} declares contained_in {declared}, but {missing} is not preprocessed: {status}")
        else:
            logger.info(f"{name}: {status}")
    return report
