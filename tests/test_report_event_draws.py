"""The event study's random draws are one default everywhere: the events section of a run's
report (and its report.html) and ``flushback events study`` on the same bars print the same
p-values."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from flushback.backtests.cli import main
from flushback.backtests.events import DEFAULT_DRAWS
from flushback.backtests.reports.format import fmt


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_every_event_study_entry_point_defaults_to_the_same_draws():
    import inspect

    from flushback.backtests.api import study_events
    from flushback.backtests.events.signal_study import study
    from flushback.backtests.events.strategy import events_section_for_run
    from flushback.backtests.events.study import run_event_study

    for func in (run_event_study, events_section_for_run, study_events, study):
        assert inspect.signature(func).parameters["draws"].default == DEFAULT_DRAWS, func


@pytest.mark.realdata
@pytest.mark.slow
def test_report_and_events_study_print_the_same_p_values(shared_data_dir, capsys, tmp_path):
    data = str(shared_data_dir)
    out = _run(capsys, "--data-dir", data, "backtest", "fear_flush_btc_daily", "--runs-dir",
               str(tmp_path), "--format", "json")
    run = Path(json.loads(out)["run_dir"])
    report = json.loads((run / "report.json").read_text())
    section = report["events"]
    assert section["baseline"]["draws"] == DEFAULT_DRAWS
    horizons = ",".join(str(h) for h in section["horizons"])
    out = _run(capsys, "--data-dir", data, "events", "study", "--symbol", "BTC-USD",
               "--interval", "1d", "--start", report["data"]["start"][:10], "--end",
               report["data"]["end"][:10], "--horizons", horizons, "--format", "json")
    cli = json.loads(out)
    assert cli["baseline"]["draws"] == DEFAULT_DRAWS
    got = {s["horizon"]: (s["n_events"], s["ret_p_value"]) for s in section["summary"]}
    want = {s["horizon"]: (s["n_events"], s["ret_p_value"]) for s in cli["summary"]}
    assert got == want and len(got) == 3
    # the page shows those p-values in its event-study table
    page = (run / "report.html").read_text(encoding="utf-8")
    table = page[page.index('id="event-study-table"'):]
    table = html.unescape(table[:table.index("</table>")])
    cells = re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>"):])
    assert len(cells) == 3
    for row, s in zip(cells, cli["summary"], strict=True):
        texts = re.findall(r">([^<]*)</td>", row)
        assert texts[0] == str(s["horizon"]) and fmt(s["ret_p_value"]) in texts
    assert f"against {DEFAULT_DRAWS:,} draws" in html.unescape(page)
