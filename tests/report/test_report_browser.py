"""The report opens in a real browser (headless Chromium): its images decode and its tables render.

Needs a Chromium binary (``make test`` installs it): without one the test fails under ``CI=true`` and
is skipped, saying why, elsewhere (the one policy in tests/conftest.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from crowdllm.report.html import build_report

pytestmark = pytest.mark.slow

# Appended to a copy of the page only (the report itself carries no scripts): once everything has
# loaded, write what rendered into the DOM, where --dump-dom can read it.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var decoded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  // tables folded away in a closed <details> (the full settings) are not drawn, by design
  var tables = Array.prototype.slice.call(document.querySelectorAll('table')).filter(function (t) {
    return !t.closest('details:not([open])'); });
  var drawn = tables.filter(function (t) { return t.getBoundingClientRect().height > 10; }).length;
  var d = document.createElement('div');
  d.id = 'render-check';
  d.textContent = 'images=' + imgs.length + ' decoded=' + decoded + ' tables=' + tables.length +
                  ' drawn=' + drawn + ' cells=' + document.querySelectorAll('td').length;
  document.body.appendChild(d);
});
</script>"""


def _chromium(browser: str, *args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium(require, results_dir, tmp_path):
    browser = require("chromium")  # its path; fails under CI=true when missing, naming it
    page = build_report(results_dir, tmp_path / "report.html")
    html = page.read_text(encoding="utf-8")
    n_images = html.count("<img ")
    # tables folded in a closed <details> (the full settings, the long results appendix) are not drawn
    n_tables = re.sub(r"<details>.*?</details>", "", html, flags=re.S).count("<table>")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")

    dom = _chromium(browser, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), profile=tmp_path / "p1")
    found = re.search(r"images=(\d+) decoded=(\d+) tables=(\d+) drawn=(\d+) cells=(\d+)", dom.stdout)
    assert found, f"no render marker in the DOM (chromium rc={dom.returncode}): {dom.stderr[-500:]}"
    images, decoded, tables, drawn, cells = map(int, found.groups())
    assert images == n_images >= 4 and decoded == images
    assert tables == n_tables >= 5 and drawn == tables and cells > 50

    shot = tmp_path / "shot.png"
    run = _chromium(browser, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri(), profile=tmp_path / "p2")
    assert shot.exists() and shot.stat().st_size > 0, run.stderr[-500:]
    from matplotlib.image import imread

    pixels = imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (2000, 1280)
    # not blank: plenty of non-background pixels, and the header band is the report's dark blue
    background = np.all(np.abs(pixels - pixels[-1, -1]) < 0.02, axis=2)
    assert background.mean() < 0.9
    header = np.median(pixels[5:60, 5:1200].reshape(-1, 3), axis=0)
    np.testing.assert_allclose(header, np.array([0x23, 0x39, 0x5D]) / 255, atol=0.03)
