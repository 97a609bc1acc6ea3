"""The QC page of a prediction run (``lw_predict --report html`` → ``report.html``): one self-contained
HTML file (pictures embedded as base64 PNG, inline CSS and JavaScript, nothing fetched from a network)
with one table row per scan — the plausibility flags or the failure, the liver volume, the seconds, the
per-organ statistics and a picture: axial, coronal and sagittal slices through the liver with the mask's
outline, and a coronal maximum-intensity projection with the outline of the mask's projection.

Rows open sorted with failures first, then by number of flags; clicking a column header sorts by it
(again: reverse). Each row carries what the sort reads: ``data-name``, ``data-volume`` (liver ml; −1 for
a failed scan, so that an ascending sort lists failures first), ``data-flags`` (number of plausibility
flags; :data:`FAILED_FLAGS` for a failed scan) and ``data-seconds``.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text_atomic
from .io import Reorientation, Volume
from .visualization import LABEL_COLOURS, canonical_views, display_window

FAILED_FLAGS = 99  # data-flags of a failed scan: above any real count of flags


def liver_index(volume: Volume, mask: np.ndarray, labels: dict) -> np.ndarray | None:
    """Canonical ``(z, y, x)`` voxel at the liver's centroid (of the whole mask without a liver label)."""
    liver = next((v for v, name in labels.items() if name == "liver"), None)
    inside = mask == liver if liver is not None and np.any(mask == liver) else mask > 0
    if not inside.any():
        return None
    canonical = Reorientation.from_geometry(volume.geometry).to_canonical(inside)
    return np.argwhere(canonical).mean(axis=0).astype(int)


def mip_view(volume: Volume, mask: np.ndarray) -> tuple:
    """``("MIP coronal", image (z, x), mask projection (z, x), aspect)``: maxima along the canonical
    anterior-posterior axis, superior up."""
    reorient = Reorientation.from_geometry(volume.geometry)
    image = reorient.to_canonical(volume.array).max(axis=1)[::-1]
    projected = reorient.to_canonical(mask).max(axis=1)[::-1]
    sx, _, sz = reorient.canonical_geometry(volume.geometry).spacing
    return "MIP coronal", image, projected, sz / sx


def scan_figure(volume: Volume, mask: np.ndarray, modality: str, labels: dict, path) -> Path:
    """Save the scan's QC picture (four panels, PNG) at ``path`` atomically; returns the path."""
    from matplotlib.figure import Figure

    views = [*canonical_views(volume, mask, liver_index(volume, mask, labels)), mip_view(volume, mask)]
    fig = Figure(figsize=(2.3 * len(views), 2.5), dpi=72)
    for column, (name, image, panel_mask, aspect) in enumerate(views):
        ax = fig.add_subplot(1, len(views), column + 1)
        ax.axis("off")
        if name.startswith("MIP"):
            lo, hi = (float(v) for v in np.percentile(image, [1, 99.5]))
        else:
            lo, hi = display_window(image, modality)
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        for value in np.unique(panel_mask[panel_mask > 0]):
            colour = LABEL_COLOURS[(int(value) - 1) % len(LABEL_COLOURS)]
            ax.contour((panel_mask == value).astype(float), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(name, fontsize=8)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=fig.dpi)
    return Path(path)


def _number(value, digits: int = 1) -> str:
    return "" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def statistics_cell(rows: list) -> str:
    """A small table of a scan's per-organ statistics (empty without ``--statistics``)."""
    if not rows:
        return ""
    head = "<tr><th>organ</th><th>ml</th><th>mean</th><th>median</th><th>sd</th><th>pieces removed</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(r['organ'])}</td><td>{_number(r['volume_ml'])}</td>"
        f"<td>{_number(r['intensity_mean'])}</td><td>{_number(r['intensity_median'])}</td>"
        f"<td>{_number(r['intensity_sd'])}</td><td>{r['components_removed']}</td></tr>"
        for r in rows
    )
    unit = html.escape(rows[0]["intensity_unit"])
    return f'<table class="stats">{head}{body}</table><small>intensities in {unit}</small>'


def scan_row(scan: dict, figures: Path) -> str:
    """One ``<tr>`` of the page, with the sort keys as data attributes."""
    failed = bool(scan.get("error"))
    flags = list(scan.get("flags") or [])
    n_flags = FAILED_FLAGS if failed else len(flags)
    volume = -1.0 if failed else float(scan.get("liver_ml", 0.0))
    seconds = float(sum((scan.get("seconds") or {}).values()))
    if failed:
        findings = f'<span class="failed">FAILED</span> {html.escape(scan["error"])}'
    elif scan.get("flags") is None:
        findings = "not checked"
    else:
        findings = ", ".join(f'<span class="flag">{html.escape(f)}</span>' for f in flags) or "none"
    findings += "".join(f'<br><span class="warning">{html.escape(w)}</span>' for w in scan.get("warnings") or [])
    picture = figures / f"{scan['name']}.png"
    image = ""
    if not failed and picture.is_file():  # a failed scan's picture would be an earlier run's
        encoded = base64.b64encode(picture.read_bytes()).decode("ascii")
        image = f'<img alt="{html.escape(scan["name"])} views" src="data:image/png;base64,{encoded}">'
    stages = ", ".join(f"{k} {v:.2f}" for k, v in (scan.get("seconds") or {}).items())
    return (
        f'<tr data-name="{html.escape(scan["name"])}" data-volume="{volume:.3f}" data-flags="{n_flags}" '
        f'data-seconds="{seconds:.3f}"><td class="name">{html.escape(scan["name"])}<br>'
        f"<small>{html.escape(scan.get('input', ''))}</small></td><td>{findings}</td>"
        f'<td>{"" if failed else _number(volume)}</td><td title="{html.escape(stages)}">{seconds:.1f}</td>'
        f"<td>{statistics_cell(scan.get('statistics') or [])}</td><td>{image}</td></tr>"
    )


STYLE = """body{font-family:sans-serif;margin:1.5em}table#scans{border-collapse:collapse}
#scans>thead th,#scans>tbody>tr>td{border-bottom:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th.sortable{cursor:pointer;text-decoration:underline dotted}.failed{color:#fff;background:#b00;padding:1px 4px}
.flag{background:#fd5;padding:1px 4px}.warning{color:#a50}table.stats td,table.stats th{font-size:80%;padding:0 4px}
.note{background:#eef;padding:6px}"""

SCRIPT = """document.querySelectorAll('th.sortable').forEach(function (th) {
  th.addEventListener('click', function () {
    var key = th.dataset.sort, body = document.querySelector('#scans tbody');
    var descending = th.dataset.order !== 'desc';
    th.dataset.order = descending ? 'desc' : 'asc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.dataset[key], y = b.dataset[key], c = (key === 'name') ? x.localeCompare(y) : x - y;
      return descending ? -c : c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});"""


def render_report(report: dict, figures: Path) -> str:
    """The page's HTML text for a prediction ``report`` (:func:`liverwild.inference.predict`'s), with the
    pictures found in ``figures`` (``<scan name>.png``)."""
    scans = sorted(
        report["scans"],
        key=lambda s: (-(FAILED_FLAGS if s.get("error") else len(s.get("flags") or [])), s.get("liver_ml", 0.0)),
    )
    model = report.get("model", {})
    note = f'<p class="note">{html.escape(model["note"])}</p>' if model.get("note") else ""
    header = "".join(
        f'<th class="sortable" data-sort="{key}">{label}</th>' if key else f"<th>{label}</th>"
        for key, label in (
            ("name", "Scan"),
            ("flags", "Flags"),
            ("volume", "Liver (ml)"),
            ("seconds", "Seconds"),
            ("", "Statistics"),
            ("", "Axial · coronal · sagittal · MIP"),
        )
    )
    rows = "\n".join(scan_row(scan, figures) for scan in scans)
    summary = (
        f"{report.get('n_ok', 0)} segmented, {report.get('n_failed', 0)} failed; model "
        f"{html.escape(str(model.get('folder', '')))}; device {html.escape(str(report.get('device', '')))}; "
        f"{float(report.get('seconds_total', 0.0)):.1f} s in all"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>liverwild prediction report</title>'
        f"<style>{STYLE}</style></head><body><h1>liverwild prediction report</h1><p>{summary}</p>{note}"
        "<p>Click a column header to sort (click again to reverse).</p>"
        f'<table id="scans"><thead><tr>{header}</tr></thead><tbody>\n{rows}\n</tbody></table>'
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_html_report(report: dict, figures, path) -> Path:
    """Write :func:`render_report` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, render_report(report, Path(figures)))
