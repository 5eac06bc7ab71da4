"""The self-contained HTML page that every flushback report is: the Jinja2 templates (package
data under ``templates/``), tables as template macros, and the charts.

Offline and small: plotly.js is embedded once, gzip-compressed and base64-encoded, and so are
the figures' data (long time axes are written once and shared by the traces that use them);
a few lines of script inflate both with the browser's ``DecompressionStream`` (no network at
view time) and draw every chart into its ``div.plotly-graph-div``. A page without charts
carries no plotly.js at all.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from flushback.backtests.reports.format import fmt, sort_value

__all__ = ["Page", "environment", "records_table", "figure_payload", "render_page",
           "compressed_plotlyjs"]

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

#: time axes at least this long are written once per page and shared by reference
_SHARED_MIN = 200


@lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja2 environment over the package's templates (autoescaping on)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flushback.backtests.reports", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = fmt
    return env


@lru_cache(maxsize=1)
def compressed_plotlyjs() -> tuple[str, str]:
    """(plotly.js version, its bundle gzip-compressed and base64-encoded)."""
    import plotly
    from plotly.offline import get_plotlyjs

    raw = get_plotlyjs().encode("utf-8")
    return plotly.__version__, base64.b64encode(gzip.compress(raw, 9, mtime=0)).decode("ascii")


def _pack(obj: Any) -> str:
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return base64.b64encode(gzip.compress(text.encode("utf-8"), 9, mtime=0)).decode("ascii")


def _clean(obj: Any) -> Any:
    """NaN/inf -> None (JSON has neither; plotly draws a gap)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def figure_payload(fig: Any) -> dict[str, Any]:
    """A plotly figure as the plain JSON ``{data, layout}`` that ``Plotly.newPlot`` takes
    (validated by plotly.py; numpy arrays as plain lists)."""
    import plotly.io as pio

    return _clean(json.loads(pio.to_json(fig, validate=True, engine="json")))


class Page:
    """The charts of one page: register each figure, get the ``<div>`` it draws into."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}

    def chart(self, fig: Any, div_id: str) -> str:
        """Register ``fig`` under ``div_id``; '' (and nothing registered) when fig is None."""
        if fig is None:
            return ""
        payload = figure_payload(fig)
        self.figures[div_id] = payload
        height = (payload.get("layout") or {}).get("height") or 450
        return environment().get_template("macros.html.j2").module.chart(div_id, height)

    @property
    def ids(self) -> list[str]:
        return list(self.figures)

    def packed(self) -> str:
        """Every figure, gzip+base64, with long axes shared: ``{"shared": {key: array},
        "figures": {id: {data, layout, config}}}`` (a trace's ``x`` may be ``{"shared":
        key}``)."""
        shared: dict[str, list[Any]] = {}
        figures = {}
        for div_id, payload in self.figures.items():
            data = []
            for trace in payload.get("data") or []:
                trace = dict(trace)
                x = trace.get("x")
                if isinstance(x, list) and len(x) >= _SHARED_MIN:
                    key = hashlib.sha1(json.dumps(x).encode()).hexdigest()[:12]
                    shared.setdefault(key, x)
                    trace["x"] = {"shared": key}
                data.append(trace)
            figures[div_id] = {"data": data, "layout": payload.get("layout") or {},
                               "config": PLOTLY_CONFIG}
        return _pack({"shared": shared, "figures": figures})


def records_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]] | None = None,
    *,
    sortable: bool = False,
    formatters: Mapping[str, Callable[[Any], str]] | None = None,
    table_id: str | None = None,
    scroll: bool = False,
) -> str:
    """An HTML table of records (template macro ``table``). ``columns`` is a list of (key,
    header); numeric columns are right-aligned and sort numerically; ``formatters`` maps key ->
    callable(value) -> text. Every table scrolls sideways when it is wider than the page;
    ``scroll`` also caps its height."""
    if columns is None:
        keys: list[str] = []
        for r in rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        columns = [(k, k) for k in keys]
    formatters = dict(formatters or {})
    head: list[dict[str, Any]] = []
    for key, header in columns:
        vals = [r.get(key) for r in rows if r.get(key) is not None]
        numeric = bool(vals) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
        head.append({"key": key, "header": header, "numeric": numeric})
    body = []
    for r in rows:
        cells = []
        for col in head:
            key = str(col["key"])
            v = r.get(key)
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            text = formatters[key](v) if key in formatters else fmt(v)
            cells.append({"text": text, "sort": sort_value(v), "numeric": col["numeric"]})
        body.append(cells)
    macro = environment().get_template("macros.html.j2").module.table
    return macro(head, body, sortable, table_id, scroll)


def render_page(template: str, *, title: str, subtitle: str, page: Page | None = None,
                **context: Any) -> str:
    """Render ``template`` (which extends ``base.html.j2``) into a full document: plotly.js
    and the figures embedded compressed when the page has charts."""
    charts = None
    if page is not None and page.figures:
        version, bundle = compressed_plotlyjs()
        charts = {"plotly_version": version, "plotly": bundle, "figures": page.packed()}
    return environment().get_template(template).render(
        title=title, subtitle=subtitle, charts=charts, **context)
