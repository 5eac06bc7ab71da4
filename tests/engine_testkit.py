"""Test helpers for engine parity: a planted fast-engine bug the parity checks must catch."""

from __future__ import annotations

from flushback.strategies import nb


def plant_stop_at_close(monkeypatch):
    """Replace the kernel by one whose close-based stop-loss fills at the signal bar's close
    (instead of the next open): the exit is booked one bar early at that close."""
    real = nb.simulate

    def buggy(ohlc, entry, exit_, vol, fng, funding_rate, level_tp, level_sl, cfg, equity,
              cash, pos, trades, fills, path):
        nt, nf, status = real(ohlc, entry, exit_, vol, fng, funding_rate, level_tp, level_sl,
                              cfg, equity, cash, pos, trades, fills, path)
        for row in trades[:nt]:
            if int(row[13]) == nb.R_STOP:
                bar = int(row[4]) - 1
                row[4], row[5] = bar, ohlc[bar, 3]
                row[10] = row[6] * (row[5] - row[3]) - row[7] - row[8] - row[9]
        return nt, nf, status

    monkeypatch.setattr(nb, "simulate", buggy)
