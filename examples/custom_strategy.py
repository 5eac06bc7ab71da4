"""A custom backtrader strategy that still gets flushback's feed, costs, metrics and reports.

Run it (offline, on the shared data):

    python examples/custom_strategy.py --data-dir ../shared/data

The strategy, "flush_ladder": while the entry signal fires, buy up to ``rungs`` tranches, each
at least ``step`` below the previous buy's close; sell everything when the position is
``take_profit`` above its average price. It is a plain ``FlushbackStrategy`` subclass:

- implement ``decide()``: the base records the bar (equity, cash, position, excursions,
  funding) and then calls it at each bar's close;
- read the feed as in any backtrader strategy: ``self.data.close[0]``, and every
  ``[signals.<name>]`` table of the spec as a line, here ``self.data.entry[0]``;
- decide with ``self.enter(fraction, reason)`` / ``self.exit(reason)``: the adapter fills them
  at the next bar's open with the spec's commission and slippage, sized in fractional units;
- ``param_specs`` declares the parameters with the same ``Param`` type as the signals: they are
  validated from the spec's ``[strategy]`` table (unknown keys -> did-you-mean) and are the
  search space ``flushback optimize`` samples.
"""

from __future__ import annotations

import argparse

from flushback.signals import Param
from flushback.strategies import FlushbackStrategy, register_strategy


@register_strategy("flush_ladder")
class FlushLadder(FlushbackStrategy):
    param_specs = {
        "rungs": Param(int, 3, 1, 10, doc="maximum number of tranches"),
        "step": Param(float, 0.05, 0.0, 0.5, doc="next rung at least this far below the last"),
        "take_profit": Param(float, 0.15, 0.01, 2.0, doc="sell all at avg price * (1 + x)"),
    }
    required_signals = ("entry",)

    def start(self) -> None:  # backtrader's hook before the first bar: the strategy's own state
        self.last_buy_close: float | None = None

    def decide(self) -> None:
        close = float(self.data.close[0])
        lot, cfg = self.lot, self.cfg
        if lot is not None and close >= lot.avg_price * (1 + cfg["take_profit"]):
            self.exit("take_profit")
            self.last_buy_close = None
            return
        if self.data.entry[0] > 0 and (lot is None or lot.tranches < cfg["rungs"]):
            if self.last_buy_close is None or close <= self.last_buy_close * (1 - cfg["step"]):
                self.enter(1.0 / cfg["rungs"], "rung")
                self.last_buy_close = close


SPEC = {
    "name": "flush_ladder_btc_daily",
    "data": {"symbol": "BTC-USD", "interval": "1d", "start": "2018-02-01",
             "externals": ["fng"]},
    "signals": {"entry": {"type": "extreme_fear", "threshold": 15.0}},
    "strategy": {"type": "flush_ladder", "rungs": 3, "step": 0.07, "take_profit": 0.3},
    "costs": {"commission": 0.001, "slippage": 0.0005},
}


def main() -> None:
    from flushback.backtests.run.folders import write_run
    from flushback.backtests.run.runner import run_backtest
    from flushback.backtests.run.spec import load_spec

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    result = run_backtest(load_spec(SPEC), data_dir=args.data_dir)
    folder = write_run(result)
    print(f"{len(result.trades)} trades, total return {result.metrics['total_return']:.2%} "
          f"(buy-and-hold {result.benchmark_metrics['total_return']:.2%}) -> {folder}")


if __name__ == "__main__":
    main()
