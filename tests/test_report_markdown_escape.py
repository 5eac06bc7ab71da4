"""``flushback report --format md`` prints the spec's name and description as literal text.

A spec name or description is free text; pasted into an issue or a notebook, a ``|`` must not
split a table cell, ``*`` must not start emphasis and ``<script>`` must not become HTML. The
Markdown is rendered with markdown-it (CommonMark, installed with rich) and the HTML it gives
is checked: the text comes back verbatim and no element was injected.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from markdown_it import MarkdownIt

from flushback.backtests import cli
from flushback.backtests.reports.schema import write_report_file

sys.path.insert(0, str(Path(__file__).parent))
from report_testkit import make_report

NAME = "fear | flush *bold* <script>alert(1)</script> _x_ [link](http://evil)"
DESCRIPTION = "line one | **two**\n# not a heading <img src=x onerror=alert(1)>"


def _markdown(tmp_path, capsys) -> str:
    doc = make_report(n=200, spec_name=NAME)
    doc["config"]["description"] = DESCRIPTION
    doc["trades"][0]["exit_reason"] = "stop | *loss*"
    run = tmp_path / "run"
    write_report_file(doc, run / "report.json")
    assert cli.main(["report", str(run), "--format", "md"]) == 0
    return capsys.readouterr().out


def test_name_and_description_are_literal_text(tmp_path, capsys):
    md = _markdown(tmp_path, capsys)
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<script" not in html and "<img" not in html
    assert "<em>" not in html and "<strong>" not in html and "<a " not in html
    assert html.count("<h1>") == 0  # the description's '#' started no heading
    # the text reads back verbatim (HTML-escaped by the renderer)
    esc = NAME.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert esc in html
    assert "line one | **two** # not a heading &lt;img src=x onerror=alert(1)&gt;" in html


def test_tables_keep_their_columns(tmp_path, capsys):
    md = _markdown(tmp_path, capsys)
    html = MarkdownIt("commonmark").enable("table").render(md)
    tables = html.split("<table>")[1:]
    assert tables
    for table in tables:
        body = table.split("</table>")[0]
        head = len(re.findall(r"<th[ >]", body.split("</thead>")[0]))
        for row in body.split("<tbody>")[-1].split("<tr>")[1:]:
            assert len(re.findall(r"<td[ >]", row)) == head
    assert re.search(r"<td[^>]*>stop \| \*loss\*</td>", html)
