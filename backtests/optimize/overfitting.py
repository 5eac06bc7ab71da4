"""How much of an optimized result is selection luck: Deflated Sharpe Ratio and PBO.

Written by hand on purpose (DESIGN.md, "Libraries"): the popular implementations get the
variance term of the Sharpe ratio estimator wrong for fat-tailed returns such as crypto's.

Deflated Sharpe Ratio (Bailey & López de Prado, 2014, "The Deflated Sharpe Ratio: Correcting
for Selection Bias, Backtest Overfitting and Non-Normality", J. Portfolio Management 40(5))
-----------------------------------------------------------------------------------------------
All Sharpe ratios here are *per period* (not annualized): ``SR = mean(r) / std(r, ddof=1)`` of
the ``T`` per-bar returns the strategy was selected on.

Expected maximum Sharpe ratio of ``N`` independent zero-skill trials whose Sharpe ratios have
cross-sectional variance ``V``::

    SR0 = sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))

with ``g`` the Euler-Mascheroni constant and ``Phi^-1`` the standard normal quantile. Then::

    DSR = Phi( (SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2) )

where ``skew`` is the skewness and ``kurt`` the **raw (Pearson) kurtosis** of the selected
strategy's returns: ``kurt = 3`` for normal returns, so the variance term becomes
``1 + SR^2 / 2`` (Lo, 2002). Equivalent form: ``1 + SR^2/2 - skew*SR + (kurt - 3)/4 * SR^2``.

The libraries' mistake: quantstats' ``probabilistic_ratio`` (and the forks built on it, e.g.
quantstats-lumi's ``probabilistic_sharpe_ratio``) plugs pandas' ``Series.kurtosis()`` -- which
is the *excess* (Fisher) kurtosis, 0 for a normal -- into the second form, i.e. computes
``(kurt_excess - 3) / 4``. That subtracts 3 twice: for normal returns the term is
``1 - SR^2/4`` instead of ``1 + SR^2/2``, so the standard error is understated, and for
crypto's fat tails the understatement is larger -- the probability comes out too confident.
``scipy.stats.kurtosis`` has the same trap (``fisher=True`` by default). Here the raw kurtosis
is computed with ``fisher=False``.

Probability of Backtest Overfitting (Bailey, Borwein, López de Prado & Zhu, 2017, "The
Probability of Backtest Overfitting", J. Computational Finance 20(4)) -- CSCV
----------------------------------------------------------------------------------------------
``M`` is a ``T x N`` matrix of per-period returns, one column per trial (configuration). The
rows are cut into ``S`` (even) contiguous blocks of ``T // S`` rows. For each of the
``C(S, S/2)`` ways of choosing ``S/2`` blocks as the in-sample set (the rest, in the same time
order, is out-of-sample), each half's performance is computed on its own rows with the
performance measure the study optimizes (:data:`PBO_MEASURES`): pick ``n*`` = the column with
the best in-sample performance (ties: the lowest column), find its rank ``r`` (1 = worst .. N =
best; tied columns share their average rank) among all columns out-of-sample, set
``w = r / (N + 1)`` and the logit ``lambda = ln(w / (1 - w))``. PBO is the fraction of splits
with ``lambda <= 0`` (decided exactly as ``r <= (N + 1) / 2``): how often the in-sample winner
ends up at or below the out-of-sample median.

When ``S`` does not divide ``T``, the ``T mod S`` rows no block holds can be dropped at either
end; the result is computed for every such alignment and reported as their mean and range.
Each half's statistics are accumulated block by block in time order, identically for every
column, so columns with equal returns on a half tie exactly (a half's sums are never taken as
the total minus the other half's, which breaks such ties by rounding).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "EULER_GAMMA",
    "sharpe_per_period",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "deflated_sharpe_ratio",
    "DSRResult",
    "PBOResult",
    "probability_of_backtest_overfitting",
]

EULER_GAMMA = 0.5772156649015329


def _clean(returns: Any) -> np.ndarray:
    arr = np.asarray(returns, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def sharpe_per_period(returns: Any) -> float:
    """Non-annualized Sharpe ratio ``mean / std(ddof=1)``; NaN when undefined."""
    r = _clean(returns)
    if r.size < 2:
        return float("nan")
    sd = r.std(ddof=1)
    if not np.isfinite(sd) or sd == 0:
        return float("nan")
    return float(r.mean() / sd)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """``SR0``: the expected maximum Sharpe ratio of ``n_trials`` zero-skill trials."""
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    z1 = stats.norm.ppf(1.0 - 1.0 / n)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(max(sharpe_variance, 0.0)) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis_raw: float
) -> float:
    """``Phi((SR - SR*) sqrt(T-1) / sqrt(1 - skew SR + (kurt_raw - 1)/4 SR^2))``.

    ``kurtosis_raw`` is Pearson's kurtosis (3 for a normal), *not* the excess kurtosis.
    """
    if n_obs < 2 or not np.isfinite(sharpe):
        return float("nan")
    var_term = 1.0 - skew * sharpe + (kurtosis_raw - 1.0) / 4.0 * sharpe**2
    if var_term <= 0:
        return float("nan")
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var_term)
    return float(stats.norm.cdf(z))


@dataclass(frozen=True)
class DSRResult:
    dsr: float  # probability that the true Sharpe exceeds SR0
    sharpe: float  # per-period Sharpe of the selected returns
    expected_max_sharpe: float  # SR0 (per period)
    n_trials: int
    sharpe_variance: float  # variance of the trials' per-period Sharpe ratios
    n_obs: int
    skew: float
    kurtosis_raw: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def deflated_sharpe_ratio(
    returns: Any, *, n_trials: int, trial_sharpes: Any = None, sharpe_variance: float | None = None
) -> DSRResult:
    """Deflated Sharpe Ratio of the selected strategy's per-period ``returns``.

    ``n_trials``: how many configurations were tried. The variance of their Sharpe ratios is
    taken from ``sharpe_variance`` or computed (ddof=1) from ``trial_sharpes`` (per period).
    """
    r = _clean(returns)
    if sharpe_variance is None:
        if trial_sharpes is None:
            raise ValueError("give trial_sharpes or sharpe_variance")
        ts = _clean(trial_sharpes)
        sharpe_variance = float(ts.var(ddof=1)) if ts.size >= 2 else 0.0
    sr = sharpe_per_period(r)
    skew = float(stats.skew(r, bias=True)) if r.size > 2 else float("nan")
    kurt = float(stats.kurtosis(r, fisher=False, bias=True)) if r.size > 3 else float("nan")
    sr0 = expected_max_sharpe(max(int(n_trials), 1), float(sharpe_variance))
    dsr = probabilistic_sharpe_ratio(sr, sr0, int(r.size), skew, kurt)
    return DSRResult(
        dsr=dsr,
        sharpe=sr,
        expected_max_sharpe=sr0,
        n_trials=int(n_trials),
        sharpe_variance=float(sharpe_variance),
        n_obs=int(r.size),
        skew=skew,
        kurtosis_raw=kurt,
    )


# --------------------------------------------------------------------------------------------
# PBO by CSCV

#: Performance measures CSCV can rank trials by, each computed on the rows of a half exactly as
#: :mod:`flushback.backtests.run.metrics` computes it on a whole backtest (the annualisation factor
#: is a positive constant and changes no ranking, except inside Calmar's CAGR).
PBO_MEASURES = ("sharpe", "sortino", "mean", "total_return", "cagr", "volatility",
                "max_drawdown", "calmar")
_COMBO_CELLS = 2_000_000  # combinations x trials evaluated at once (bounds the memory)


@dataclass(frozen=True)
class PBOResult:
    # mean over the row alignments of the share of splits whose logit is <= 0
    pbo: float
    pbo_min: float  # the lowest and highest share over the alignments
    pbo_max: float
    # per alignment (index j = j oldest rows dropped): splits with logit <= 0
    overfit_counts: list[int]
    metric: str  # the performance measure that picks and ranks the trials
    n_splits: int  # S, the number of blocks
    n_combinations: int  # C(S, S/2) splits per alignment
    n_trials: int
    n_rows: int  # T
    block_rows: int  # T // S
    rows_left_over: int  # T mod S: rows no block can hold, dropped at the start and/or end
    logits: list[float]  # every split of every alignment
    # share of splits in which the IS winner's compounded OOS return is negative
    prob_oos_loss: float
    # slope of OOS on IS performance of the selected trial across the splits
    degradation_slope: float

    def to_dict(self, include_logits: bool = False) -> dict[str, Any]:
        """The report's view: PBO to 3 decimals (a split's resolution is 1/C(S, S/2); the
        choice of rows moves it by more), exact counts alongside."""
        d = asdict(self)
        if not include_logits:
            d.pop("logits")
        else:
            d["logits"] = [None if not math.isfinite(x) else x for x in self.logits]
        for k in ("pbo", "pbo_min", "pbo_max"):
            d[k] = round(d[k], 3)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}


def _block_stats(blocks: np.ndarray, drawdown: bool) -> dict[str, np.ndarray]:
    """Per block and trial (``S x N`` each) the additive pieces every measure is built from.

    ``g`` is the log growth ``sum log(1 + r)``; for drawdowns, with ``c_t`` the cumulative log
    growth inside the block: ``hi = max(0, max c_t)``, ``lo = min c_t`` and ``dd`` = the
    deepest fall below the block's own running peak (its start counting as a peak).
    """
    with np.errstate(divide="ignore"):
        logs = np.log1p(np.maximum(blocks, -1.0))  # a -100 % bar is -inf: ruin
    st = {
        "s1": blocks.sum(axis=1),
        "s2": (blocks**2).sum(axis=1),
        "neg2": (np.minimum(blocks, 0.0) ** 2).sum(axis=1),
        "g": logs.sum(axis=1),
    }
    if drawdown:
        cum = np.cumsum(logs, axis=1)
        run = np.maximum.accumulate(np.maximum(cum, 0.0), axis=1)
        st["hi"], st["lo"], st["dd"] = run[:, -1], cum.min(axis=1), (cum - run).min(axis=1)
    return st


def _aggregate(st: dict[str, np.ndarray], idx: np.ndarray, drawdown: bool) -> dict[str, Any]:
    """The blocks ``idx`` (combinations x blocks, ascending = time order) put end to end.

    Every trial's sums are accumulated block by block in the same order, so two trials with
    the same returns on these rows get bit-identical statistics (exact ties stay ties).
    """
    acc = {k: st[k][idx[:, 0]].copy() for k in ("s1", "s2", "neg2", "g")}
    for j in range(1, idx.shape[1]):
        for k in acc:
            acc[k] += st[k][idx[:, j]]
    if drawdown:  # compose the drawdown of the concatenated curve (log levels)
        level = np.zeros_like(acc["g"])
        peak = np.zeros_like(level)
        dd = np.zeros_like(level)
        for j in range(idx.shape[1]):
            b = idx[:, j]
            dd = np.minimum(dd, np.minimum(level - peak + st["lo"][b], st["dd"][b]))
            peak = np.maximum(peak, level + st["hi"][b])
            level = level + st["g"][b]
        acc["dd"] = dd
    return acc


def _performance(a: dict[str, Any], count: int, metric: str,
                 periods_per_year: float | None) -> np.ndarray:
    """Per trial performance, higher = better; undefined ratios score 0, as the optimizer's
    objective does."""
    mean = a["s1"] / count
    if metric == "mean":
        return mean
    if metric in ("total_return", "cagr"):  # monotone in the log growth over equal row counts
        return a["g"]
    if metric == "max_drawdown":  # log of 1 + drawdown: closer to 0 is better
        return a["dd"]
    sd = np.sqrt(np.maximum(a["s2"] - count * mean**2, 0.0) / (count - 1))
    if metric == "volatility":
        return -sd
    if metric == "sharpe":
        num, den = mean, sd
    elif metric == "sortino":
        num, den = mean, np.sqrt(a["neg2"] / count)
    else:  # calmar = cagr / |max drawdown|
        assert periods_per_year is not None
        num = np.expm1(a["g"] * (periods_per_year / count))
        den = -np.expm1(a["dd"])
    # a variance from sums is never exactly 0 for a constant non-zero series: tolerate rounding
    ok = den > 1e-9 * np.abs(num)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def probability_of_backtest_overfitting(
    returns_matrix: Any, n_splits: int = 16, metric: str = "sharpe", *,
    periods_per_year: float | None = None,
) -> PBOResult:
    """PBO by combinatorially symmetric cross-validation (see the module docstring).

    ``returns_matrix``: ``T x N`` array (rows = time, columns = trials) of per-period returns
    on a common time grid (NaN treated as 0: flat). ``n_splits`` (S) must be even.
    ``metric``: the performance measure that selects the in-sample winner and ranks it out of
    sample (:data:`PBO_MEASURES`; ``calmar`` needs ``periods_per_year``).

    When S does not divide T, the ``T mod S`` rows that fill no block can be dropped at the
    start, at the end or some of each; PBO is computed for every such alignment and ``pbo`` is
    their mean (``pbo_min``/``pbo_max`` their range).
    """
    m = np.asarray(returns_matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError("returns_matrix must be 2-D (time x trials)")
    m = np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
    t, n = m.shape
    if n < 2:
        raise ValueError("PBO needs at least 2 trials")
    if n_splits < 2 or n_splits % 2:
        raise ValueError("n_splits must be an even number >= 2")
    block = t // n_splits
    if block < 2:
        raise ValueError(f"{t} rows are too few for {n_splits} blocks of at least 2 rows")
    if metric not in PBO_MEASURES:
        raise ValueError(f"metric must be one of {', '.join(PBO_MEASURES)}")
    if metric == "calmar" and not (periods_per_year and periods_per_year > 0):
        raise ValueError("metric 'calmar' needs periods_per_year (365 daily, 8760 hourly)")
    half = n_splits // 2
    combos = np.array(list(itertools.combinations(range(n_splits), half)), dtype=np.intp)
    others = np.array([[b for b in range(n_splits) if b not in set(c)] for c in combos.tolist()],
                      dtype=np.intp)
    count = half * block
    drawdown = metric in ("max_drawdown", "calmar")
    step = max(1, _COMBO_CELLS // n)
    left = t - block * n_splits
    counts: list[int] = []
    logits, is_sel, oos_sel, oos_loss = [], [], [], []
    for offset in range(left + 1):
        st = _block_stats(m[offset: offset + block * n_splits].reshape(n_splits, block, n),
                          drawdown)
        overfit = 0
        for c0 in range(0, len(combos), step):
            a_is = _aggregate(st, combos[c0: c0 + step], drawdown)
            a_oos = _aggregate(st, others[c0: c0 + step], drawdown)
            p_is = _performance(a_is, count, metric, periods_per_year)
            p_oos = _performance(a_oos, count, metric, periods_per_year)
            rows = np.arange(p_is.shape[0])
            best = np.argmax(p_is, axis=1)  # ties: the lowest trial number wins
            sel = p_oos[rows, best]
            # twice the average rank (1 = worst .. N = best) of the winner out of sample: a
            # group of e tied trials above b worse ones shares the rank b + (e + 1) / 2
            below = (p_oos < sel[:, None]).sum(axis=1)
            tied = (p_oos == sel[:, None]).sum(axis=1)
            rank2 = 2 * below + tied + 1
            overfit += int(np.sum(rank2 <= n + 1))  # logit <= 0, decided in integers
            w = rank2 / (2.0 * (n + 1))
            logits.append(np.log(w / (1.0 - w)))
            is_sel.append(p_is[rows, best])
            oos_sel.append(sel)
            oos_loss.append(a_oos["g"][rows, best] < 0)
        counts.append(overfit)
    n_comb = len(combos)
    shares = np.asarray(counts, dtype=float) / n_comb
    is_arr, oos_arr = np.concatenate(is_sel), np.concatenate(oos_sel)
    finite = np.isfinite(is_arr) & np.isfinite(oos_arr)
    slope = float("nan")
    if finite.sum() >= 2 and np.ptp(is_arr[finite]) > 0:
        slope = float(np.polyfit(is_arr[finite], oos_arr[finite], 1)[0])
    return PBOResult(
        pbo=float(shares.mean()),
        pbo_min=float(shares.min()),
        pbo_max=float(shares.max()),
        overfit_counts=counts,
        metric=metric,
        n_splits=n_splits,
        n_combinations=n_comb,
        n_trials=n,
        n_rows=t,
        block_rows=block,
        rows_left_over=left,
        logits=[float(x) for x in np.concatenate(logits)],
        prob_oos_loss=float(np.mean(np.concatenate(oos_loss))),
        degradation_slope=slope,
    )
