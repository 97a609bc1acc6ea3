"""How an experiment's tables were measured, stated beside each table: the evaluation protocol (the grid
the masks are compared on) and the post-processing of the predictions, from each run's configuration
record (:mod:`.records`), per row when the rows differ."""

from __future__ import annotations

MEASURED = ("evaluation_protocol", "evaluation_inplane_size", "postprocessing")  # fields of a run's record


def row_of(run, plan) -> str:
    """The report row a run is in: its trainer, or its seed in a table whose rows are seeds."""
    return f"seed {run.seed}" if plan.rows == "seed" else run.trainer


def describe_measurement(measured: dict) -> str:
    """One run's measurement in words: its evaluation protocol and grid, and its post-processing steps."""
    protocol, size, steps = (measured.get(k) for k in MEASURED)
    if protocol is None:
        grid = "evaluation protocol not recorded"
    elif size:
        grid = f"evaluation protocol {protocol} (canonical axial slices resized to {size} × {size})"
    else:
        grid = f"evaluation protocol {protocol} (each scan's own grid)"
    post = "not recorded" if steps is None else (", ".join(steps) if steps else "none")
    return f"{grid}; post-processing: {post}"


def table_measurement(plan, measurement: dict, folds=None) -> dict:
    """``{row: how its runs were measured}`` for a table made of ``plan``'s runs of ``folds`` (default
    all); ``measurement``: run key → its :data:`MEASURED` fields."""
    rows: dict = {}
    for run in plan.runs:
        if folds is None or run.fold in folds:
            described = describe_measurement(measurement.get(run.key, {}))
            rows.setdefault(row_of(run, plan), set()).add(described)
    return {row: "; or ".join(sorted(ways)) for row, ways in sorted(rows.items(), key=lambda kv: str(kv[0]))}


def measurement_note(measured: dict) -> list:
    """Markdown lines stating a table's evaluation protocol and post-processing (per row when they differ)."""
    ways = set(measured.values())
    if len(ways) == 1:
        return [f"Measured with {ways.pop()}.", ""]
    return ["Measured per row:", "", *(f"- {row}: {way}" for row, way in measured.items()), ""]
