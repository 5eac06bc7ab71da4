"""Open a page in the distribution's headless Chromium (driven by Playwright) and report what
rendered: JavaScript errors and, for every plotly chart, its traces' data points and the SVG /
canvas marks actually drawn.

Never downloads a browser: it launches ``/usr/bin/chromium`` (or ``FLUSHBACK_CHROMIUM``). When
Chromium or Playwright is missing the test is skipped with the reason, unless
``FLUSHBACK_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

REPO = Path(__file__).resolve().parents[1]
#: screenshots go here (gitignored), one sub-folder per test
OUTPUT_DIR = REPO / "test-output"


def chromium_executable() -> str | None:
    for candidate in (os.environ.get("FLUSHBACK_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def require_browser() -> str:
    """The Chromium path, or skip (fail under FLUSHBACK_REQUIRE_BROWSER=1) with the reason."""
    reason = None
    exe = chromium_executable()
    if exe is None:
        reason = "Chromium not found at /usr/bin/chromium (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright python package is not installed"
    if reason:
        if os.environ.get("FLUSHBACK_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; FLUSHBACK_REQUIRE_BROWSER=1 makes this a failure")
        pytest.skip(reason)
    assert exe is not None
    return exe


# Runs in the page: one entry per plotly chart with its traces and the drawn marks.
_INSPECT_JS = """() => Array.from(document.querySelectorAll('div.plotly-graph-div')).map(gd => {
  const finite = v => typeof v === 'number' ? isFinite(v) :
      (v !== null && v !== undefined && v !== '' && !(typeof v === 'number' && isNaN(v)));
  const traces = (gd._fullData || []).map((t, i) => {
    const cd = (gd.calcdata && gd.calcdata[i]) || [];
    let points = 0;
    if (t.type === 'scatter') {
      points = cd.filter(p => finite(p.x) && finite(p.y)).length;
    } else if (t.type === 'bar') {
      points = cd.filter(p => finite(p.s) && finite(p.p)).length;
    } else if (t.type === 'heatmap') {
      const z = (cd[0] && cd[0].z) || [];
      points = z.flat().filter(v => typeof v === 'number' && isFinite(v)).length;
    } else if (t.type === 'parcoords') {
      points = t._length || 0;
    } else {
      points = t._length || cd.length;
    }
    return {type: t.type, name: t.name, visible: t.visible, points: points};
  });
  const nonEmptyPaths = sel => Array.from(gd.querySelectorAll(sel))
      .filter(p => (p.getAttribute('d') || '').length > 2).length;
  return {
    id: gd.id,
    plotted: gd.classList.contains('js-plotly-plot'),
    width: gd.getBoundingClientRect().width,
    height: gd.getBoundingClientRect().height,
    traces: traces,
    marks: {
      lines: nonEmptyPaths('.scatterlayer path.js-line'),
      points: nonEmptyPaths('.scatterlayer path.point'),
      bars: nonEmptyPaths('.barlayer path'),
      heatmap: gd.querySelectorAll('.hm image').length,
      parcoords_axes: gd.querySelectorAll('.parcoords .y-axis').length,
      canvases: gd.querySelectorAll('canvas').length,
    },
  };
})"""


@dataclass
class PageReport:
    url: str
    errors: list[str] = field(default_factory=list)
    charts: list[dict[str, Any]] = field(default_factory=list)
    screenshot: Path | None = None
    title: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every chart that did not render with data points, as readable lines."""
        out = []
        for c in self.charts:
            where = f"chart #{c['id']}"
            if not c["plotted"]:
                out.append(f"{where}: not plotted")
            if c["width"] < 50 or c["height"] < 50:
                out.append(f"{where}: zero size {c['width']}x{c['height']}")
            if not c["traces"]:
                out.append(f"{where}: no traces")
            for t in c["traces"]:
                if t["visible"] is True and t["points"] <= 0:
                    out.append(f"{where}: trace {t['name']!r} ({t['type']}) has no data points")
            m = c["marks"]
            types = {t["type"] for t in c["traces"]}
            if "scatter" in types and m["lines"] + m["points"] == 0:
                out.append(f"{where}: no line or marker drawn")
            if "bar" in types and m["bars"] == 0:
                out.append(f"{where}: no bar drawn")
            if "heatmap" in types and m["heatmap"] == 0:
                out.append(f"{where}: heatmap image not drawn")
            if "parcoords" in types and (m["parcoords_axes"] == 0 or m["canvases"] == 0):
                out.append(f"{where}: parallel coordinates not drawn")
        return out


def inspect_page(
    html_path: Path,
    screenshot: Path | None = None,
    *,
    actions: Any = None,
    viewport: tuple[int, int] = (1400, 900),
) -> PageReport:
    """Load ``html_path`` in headless Chromium; collect console errors and page errors, inspect
    every plotly chart, optionally run ``actions(page, report)``, save a full-page screenshot."""
    exe = require_browser()
    from playwright.sync_api import sync_playwright

    url = Path(html_path).resolve().as_uri()
    report = PageReport(url=url)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: report.errors.append(f"console: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: report.errors.append(f"pageerror: {e}"))
            # a self-contained page must not fetch anything: record any request off file://
            page.on("request", lambda r: report.errors.append(f"network request: {r.url}")
                    if not r.url.startswith(("file:", "data:", "blob:", "about:")) else None)
            page.goto(url, wait_until="load")
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('div.plotly-graph-div'))"
                ".every(d => d.classList.contains('js-plotly-plot') && d._fullLayout)",
                timeout=30_000,
            )
            page.wait_for_timeout(300)
            report.title = page.title()
            report.charts = page.evaluate(_INSPECT_JS)
            if actions is not None:
                actions(page, report)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
                report.screenshot = screenshot
        finally:
            browser.close()
    return report


def output_dir(name: str) -> Path:
    """``test-output/<name>/`` under the repository (gitignored)."""
    path = OUTPUT_DIR / name
    path.mkdir(parents=True, exist_ok=True)
    return path
