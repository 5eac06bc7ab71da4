"""A leveraged long through the Feb 2026 flush on the real BTCUSDT perpetual (4h bars).

The trade: long BTCUSDT-PERP at the open of the 4h bar after 2026-02-02 00:00 (the entry
signal on that bar's close fills at the 04:00 open), held through 2026-02-06 (marked at the
close of the 2026-02-06 20:00 bar), maintenance-margin rate 0.4 % (Binance's first BTCUSDT
tier), no commission or slippage, the Binance 8h funding settlements charged. The test
computes the liquidation price by hand from the entry price, the leverage and the
maintenance rate, and finds the first 4h bar whose low crosses it by reading the raw CSV
(not the data layer); both engines must find the same, and agree with each other.

Figures (docs/strategies.md): entry 76,256.2; the lowest low 59,800.0 (2026-02-06 00:00);
3x liquidation price 51,041.63 and 2x 38,281.22: neither is liquidated; 5x (61,249.96) is,
in the 2026-02-06 00:00 bar.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_fast_parity import assert_same

from flushback.strategies.adapter import run_engine
from flushback.strategies.config import validate_strategy_params
from flushback.strategies.contrarian import ContrarianStrategy
from flushback.strategies.fast import run_fast
from flushback.strategies.funding import settled_funding

pytestmark = pytest.mark.realdata

ENTRY_SIGNAL = "2026-02-02T00:00:00Z"
LAST_BAR = "2026-02-06T20:00:00Z"
MM = 0.004


def raw_bars(data_dir: Path) -> list[dict]:
    with open(data_dir / "prices" / "BTCUSDT-PERP_4h.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if ENTRY_SIGNAL <= r["timestamp"] <= LAST_BAR]
    return rows


def hand(rows: list[dict], leverage: float) -> tuple[float, float, str | None]:
    """(entry price, liquidation price, timestamp of the first bar whose low reaches it)."""
    entry = float(rows[1]["open"])  # the bar after the signal bar
    liq = entry * (1.0 - 1.0 / leverage) / (1.0 - MM)
    hit = next((r["timestamp"] for r in rows[1:] if float(r["low"]) <= liq), None)
    return entry, liq, hit


@pytest.fixture(scope="module")
def perp(shared_data_dir):
    from flushback.data import load_dataset, load_frame

    frame = load_frame("BTCUSDT-PERP", "4h", externals=(), start=ENTRY_SIGNAL, end=LAST_BAR,
                       data_dir=shared_data_dir).frame
    frame = frame[["open", "high", "low", "close", "volume"]].copy()
    frame.attrs["interval"] = "4h"
    rows, _ = load_dataset("derivatives/binance_btcusdt_funding_8h", data_dir=shared_data_dir)
    settlements = pd.Series(rows["funding_rate"].to_numpy(),
                            index=pd.DatetimeIndex(rows["known_at"]))
    extra = pd.DataFrame({
        "entry": [1.0] + [0.0] * (len(frame) - 1),
        "funding_rate": settled_funding(frame.index, pd.Timedelta(hours=4), settlements),
    }, index=frame.index)
    return frame, extra, raw_bars(shared_data_dir), shared_data_dir


def run(frame, extra, leverage):
    params = validate_strategy_params("contrarian", {"leverage": leverage,
                                                     "maintenance_margin": MM})
    kw = dict(cash=10_000.0, commission=0.0, slippage=0.0, funding="settlements",
              strategy_params={"cfg": params})
    ref = run_engine(ContrarianStrategy, frame, extra, **kw)
    assert_same(ref, run_fast("contrarian", frame, extra, **kw))
    return ref


def test_the_raw_bars_are_the_flush(perp):
    _, _, rows, _ = perp
    assert rows[1]["timestamp"] == "2026-02-02T04:00:00Z" and float(rows[1]["open"]) == 76256.2
    low = min(rows, key=lambda r: float(r["low"]))
    assert (low["timestamp"], float(low["low"])) == ("2026-02-06T00:00:00Z", 59800.0)
    assert rows[-1]["timestamp"] == LAST_BAR and float(rows[-1]["close"]) == 70544.5


@pytest.mark.parametrize("leverage", [3.0, 2.0])
def test_3x_and_2x_longs_survive_the_flush(perp, leverage):
    frame, extra, rows, data_dir = perp
    entry, liq, hit = hand(rows, leverage)
    assert hit is None  # 59,800 never reaches 51,041.63 (3x) or 38,281.22 (2x)
    assert round(liq, 2) == {3.0: 51041.63, 2.0: 38281.22}[leverage]
    r = run(frame, extra, leverage)
    assert list(r.trades["exit_reason"]) == ["end_of_data"]
    t = r.trades.iloc[0]
    assert t["entry_price"] == entry and t["exit_price"] == 70544.5
    size = 10_000.0 * (1.0 - 1e-12) / (entry / leverage)
    # the funding settled at the closes of the bars held (08:00 on 02-02 .. 00:00 on 02-07),
    # each on size * the close of the bar it falls in, read from the raw files
    closes = {r["timestamp"]: float(r["close"]) for r in rows}
    paid = 0.0
    funding_csv = data_dir / "derivatives" / "binance_btcusdt_funding_8h.csv"
    with open(funding_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            t_settle = pd.Timestamp(row["timestamp"])
            bar = (t_settle - pd.Timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if "2026-02-02T04:00:00Z" <= bar <= LAST_BAR:
                paid += size * closes[bar] * float(row["funding_rate_8h_fraction"])
    assert round(t["funding"], 2) == round(paid, 2)
    pnl = size * (70544.5 - entry) - paid
    assert round(t["pnl"], 2) == round(pnl, 2)
    # the worst close-to-low of the trade: the margin left at the 59,800 low
    worst = 10_000.0 + size * (59800.0 - entry)
    assert worst > 0 and t["mae"] == pytest.approx(59800.0 / entry - 1.0)


def test_5x_long_is_liquidated_in_the_2026_02_06_bar(perp):
    frame, extra, rows, _ = perp
    entry, liq, hit = hand(rows, 5.0)
    assert (round(liq, 2), hit) == (61249.96, "2026-02-06T00:00:00Z")
    r = run(frame, extra, 5.0)
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "liquidation"
    assert t["exit_time"] == pd.Timestamp(hit) and t["exit_price"] == pytest.approx(liq)
    assert r.equity["equity"].loc[pd.Timestamp(hit)] < 10_000.0 - 10_000.0 * 0.99
    assert r.equity["position"].loc[pd.Timestamp(hit):].eq(0.0).all()

