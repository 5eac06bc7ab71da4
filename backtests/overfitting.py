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
rows are cut into ``S`` (even) contiguous blocks of equal size. For each of the ``C(S, S/2)``
ways of choosing ``S/2`` blocks as the in-sample set (the rest, in the same time order, is
out-of-sample): pick ``n*`` = the column with the best in-sample performance, find its rank
``r`` (1 = worst .. N = best) among all columns out-of-sample, set ``w = r / (N + 1)`` and the
logit ``lambda = ln(w / (1 - w))``. PBO is the fraction of splits with ``lambda <= 0``: how
often the in-sample winner ends up at or below the out-of-sample median.
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


@dataclass(frozen=True)
class PBOResult:
    pbo: float
    n_splits: int  # S, the number of blocks
    n_combinations: int
    n_trials: int
    logits: list[float]
    # probability that the IS winner loses money OOS (performance < 0)
    prob_oos_loss: float
    # slope of OOS on IS performance of the selected trial across the combinations
    degradation_slope: float

    def to_dict(self, include_logits: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not include_logits:
            d.pop("logits")
        else:
            d["logits"] = [None if not math.isfinite(x) else x for x in self.logits]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}


def _perf_from_sums(s1: np.ndarray, s2: np.ndarray, count: int, metric: str) -> np.ndarray:
    """Per-trial performance from the sums and sums of squares of ``count`` returns."""
    mean = s1 / count
    if metric == "mean":
        return mean
    var = np.maximum(s2 - count * mean**2, 0.0) / (count - 1)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, 0.0))
        return np.where(sd > 1e-15 * np.maximum(np.abs(mean), 1e-300), mean / sd, flat)


def probability_of_backtest_overfitting(
    returns_matrix: Any, n_splits: int = 16, metric: str = "sharpe"
) -> PBOResult:
    """PBO by combinatorially symmetric cross-validation (see the module docstring).

    ``returns_matrix``: ``T x N`` array (rows = time, columns = trials) of per-period returns
    on a common time grid (NaN treated as 0: flat). ``n_splits`` (S) must be even; trailing
    rows that do not fill a block are dropped. ``metric``: "sharpe" or "mean".
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
    if metric not in ("sharpe", "mean"):
        raise ValueError("metric must be 'sharpe' or 'mean'")
    m = m[: block * n_splits].reshape(n_splits, block, n)
    # per-block sums make each combination O(S N) instead of O(T N)
    s1 = m.sum(axis=1)
    s2 = (m**2).sum(axis=1)
    tot1, tot2 = s1.sum(axis=0), s2.sum(axis=0)
    half = n_splits // 2
    logits: list[float] = []
    is_sel: list[float] = []
    oos_sel: list[float] = []
    for combo in itertools.combinations(range(n_splits), half):
        idx = list(combo)
        is1, is2 = s1[idx].sum(axis=0), s2[idx].sum(axis=0)
        is_perf = _perf_from_sums(is1, is2, half * block, metric)
        oos_perf = _perf_from_sums(tot1 - is1, tot2 - is2, (n_splits - half) * block, metric)
        best = int(np.argmax(is_perf))  # ties: the lowest trial number wins
        # rank 1..N of the IS winner among all trials OOS (ties share the average rank)
        rank = float(stats.rankdata(oos_perf, method="average")[best])
        w = rank / (n + 1.0)
        logits.append(math.log(w / (1.0 - w)))
        is_sel.append(float(is_perf[best]))
        oos_sel.append(float(oos_perf[best]))
    lg = np.asarray(logits)
    oos_arr = np.asarray(oos_sel)
    is_arr = np.asarray(is_sel)
    finite = np.isfinite(is_arr) & np.isfinite(oos_arr)
    slope = float("nan")
    if finite.sum() >= 2 and np.ptp(is_arr[finite]) > 0:
        slope = float(np.polyfit(is_arr[finite], oos_arr[finite], 1)[0])
    return PBOResult(
        pbo=float(np.mean(lg <= 0)),
        n_splits=n_splits,
        n_combinations=len(logits),
        n_trials=n,
        logits=[float(x) for x in lg],
        prob_oos_loss=float(np.mean(oos_arr < 0)),
        degradation_slope=slope,
    )
