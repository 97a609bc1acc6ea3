"""The QC page (``--report html``, issue 27): every scan appears with the sort keys of its report line,
pictures are embedded, nothing is fetched; in a real headless browser (when one is installed) the page
loads, decodes its pictures, and clicking a header reorders the rows."""

import base64
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from liverwild.io import Geometry, Volume, write_volume
from liverwild.qc_report import FAILED_FLAGS, render_report, scan_figure

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class Rows(HTMLParser):
    """The ``<tr data-name=...>`` rows of ``#scans`` (attributes, in document order), the images' sources
    and every external reference (``src``/``href`` not ``data:``)."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self.external, self.headers = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-name" in a:
            self.rows.append(a)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "th" and "data-sort" in a:
            self.headers.append(a["data-sort"])
        for key in ("src", "href"):
            if key in a and not str(a[key]).startswith("data:"):
                self.external.append(a[key])


def parse(text: str) -> Rows:
    parser = Rows()
    parser.feed(text)
    return parser


def small_volume(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    g = Geometry((24, 20, 10), (1.5, 1.5, 3.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    image = rng.normal(50, 20, g.shape).astype(np.float32) - 1000 * (rng.random(g.shape) < 0.05)
    mask = np.zeros(g.shape, np.uint8)
    mask[3:7, 5:12, 4:15] = 1
    return Volume(image, g, "x"), mask


@pytest.fixture
def report(tmp_path):
    """A report of four scans (one failed, flags 2 / 0 / 1) with pictures for the three segmented ones."""
    scans = [
        {"name": "big", "input": "/in/big.nii.gz", "liver_ml": 2100.5, "flags": ["volume_high", "left_of_midline"]},
        {"name": "failed", "input": "/in/failed", "liver_ml": 0.0, "flags": None, "error": "/in/failed: truncated"},
        {"name": "small", "input": "/in/small.nii.gz", "liver_ml": 350.25, "flags": []},
        {"name": "mid", "input": "/in/mid.nii.gz", "liver_ml": 1500.0, "flags": ["touches_superior_edge"]},
    ]
    for k, scan in enumerate(scans):
        scan.setdefault("error", "")
        scan["seconds"] = {"read": 0.5 + k, "write": 0.25}
        scan["statistics"] = []
        if not scan["error"]:
            volume, mask = small_volume(k)
            scan_figure(volume, mask, "CT", {0: "background", 1: "liver"}, tmp_path / "figures" / f"{scan['name']}.png")
    content = {"scans": scans, "n_ok": 3, "n_failed": 1, "model": {"folder": "m", "note": "synthetic only"}}
    (tmp_path / "report.html").write_text(render_report(content, tmp_path / "figures"), encoding="utf-8")
    return tmp_path / "report.html", scans, tmp_path / "figures"


def test_every_scan_appears_with_its_sort_keys_and_embedded_picture(report):
    page, scans, figures = report
    parsed = parse(page.read_text(encoding="utf-8"))
    assert [r["data-name"] for r in parsed.rows] == ["failed", "big", "mid", "small"]  # failures, then flags
    for row in parsed.rows:
        scan = next(s for s in scans if s["name"] == row["data-name"])
        failed = bool(scan["error"])
        assert float(row["data-volume"]) == pytest.approx(-1.0 if failed else scan["liver_ml"])
        assert int(row["data-flags"]) == (FAILED_FLAGS if failed else len(scan["flags"]))
        assert float(row["data-seconds"]) == pytest.approx(sum(scan["seconds"].values()))
    assert set(parsed.headers) == {"name", "flags", "volume", "seconds"}
    assert len(parsed.images) == 3 and not parsed.external
    decoded = {base64.b64decode(src.split(",", 1)[1]) for src in parsed.images}
    assert decoded == {(figures / f"{n}.png").read_bytes() for n in ("big", "mid", "small")}
    assert "synthetic only" in page.read_text(encoding="utf-8") and "truncated" in page.read_text(encoding="utf-8")


def find_browser():
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def dump_dom(browser: str, page) -> str:
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )  # fmt: skip  (the DOM is UTF-8 whatever the locale)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_in_a_real_browser_the_page_loads_and_a_header_click_sorts(report, tmp_path):
    """The page's own click handler runs in Chromium: one click on "Liver (ml)" sorts by volume,
    largest first; a second click reverses (the failure, volume −1, first). Skipped without a browser,
    unless LW_REQUIRE_BROWSER=1 (``.ci/run`` sets it where Chromium is installed)."""
    browser = find_browser()
    if browser is None:
        if os.environ.get("LW_REQUIRE_BROWSER") == "1":
            pytest.fail("LW_REQUIRE_BROWSER=1 but no headless browser found (apt-get install chromium)")
        pytest.skip("no headless browser (apt-get install chromium)")
    page, _, _ = report
    text = page.read_text(encoding="utf-8")
    assert [r["data-name"] for r in parse(dump_dom(browser, page)).rows] == ["failed", "big", "mid", "small"]
    for clicks, order in ((1, ["big", "mid", "small", "failed"]), (2, ["failed", "small", "mid", "big"])):
        probe = (
            "<script>window.addEventListener('load', function () {"
            "document.body.dataset.decoded = Array.prototype.filter.call(document.images, "
            "function (i) { return i.complete && i.naturalWidth > 0; }).length;"
            f"for (var n = 0; n < {clicks}; n++) document.querySelector('th[data-sort=volume]').click();"
            "});</script></body>"
        )
        clicked = tmp_path / f"clicked{clicks}.html"
        clicked.write_text(text.replace("</body>", probe), encoding="utf-8")
        dom = dump_dom(browser, clicked)
        assert [r["data-name"] for r in parse(dom).rows] == order
        assert 'data-decoded="3"' in dom


def test_lw_predict_writes_the_page_for_a_folder_and_not_when_told(tmp_path):
    from liverwild.cli import predict as predict_cli
    from liverwild.phantoms import generate_case
    from liverwild.phantoms.randomized import case_domain

    for k in range(2):
        image, _, _ = generate_case(case_domain(k, "CT", 2, max_slices=8), k, 2)
        write_volume(image.array, image.geometry, tmp_path / "in" / f"ct{k}.nii.gz")
    common = ["--device", "cpu", "--no-progress", "--statistics"]
    assert predict_cli.main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "auto"), *common]) == 0
    parsed = parse((tmp_path / "auto" / "report.html").read_text(encoding="utf-8"))
    report = json.loads((tmp_path / "auto" / "prediction_report.json").read_text(encoding="utf-8"))
    assert report["outputs"]["report"] == "report.html" and not (tmp_path / "auto" / ".lw_report").exists()
    by_name = {r["data-name"]: r for r in parsed.rows}
    assert sorted(by_name) == ["ct0", "ct1"] and len(parsed.images) == 2
    for scan in report["scans"]:
        assert float(by_name[scan["name"]]["data-volume"]) == pytest.approx(scan["liver_ml"], abs=1e-3)
        assert int(by_name[scan["name"]]["data-flags"]) == len(scan["flags"])
    argv = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "none"), "--report", "none", *common]
    assert predict_cli.main(argv) == 0 and not (tmp_path / "none" / "report.html").exists()
    one = ["-i", str(tmp_path / "in" / "ct0.nii.gz"), "-o", str(tmp_path / "one"), *common]
    assert predict_cli.main(one) == 0 and not (tmp_path / "one" / "report.html").exists()
    assert predict_cli.main([*one[:3], str(tmp_path / "one_html"), "--report", "html", *common]) == 0
    assert len(parse((tmp_path / "one_html" / "report.html").read_text(encoding="utf-8")).rows) == 1
