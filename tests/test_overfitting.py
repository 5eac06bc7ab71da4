"""Deflated Sharpe Ratio and PBO against hand computations and known-answer synthetic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flushback.backtests.optimize import overfitting as of


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_paper_example_bailey_lopez_de_prado_2014():
    # The paper's numerical example: annualized SR 2.5 over 5 years of daily data (T=1250),
    # N=100 trials with annualized-SR variance 0.5, skew -3, kurtosis 10 -> DSR ~ 0.9004.
    sr = 2.5 / math.sqrt(250)
    var = 0.5 / 250
    sr0 = of.expected_max_sharpe(100, var)
    assert sr0 == pytest.approx(0.1132, abs=5e-4)
    dsr = of.probabilistic_sharpe_ratio(sr, sr0, 1250, skew=-3.0, kurtosis_raw=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_dsr_matches_hand_computation_on_tiny_series():
    r = np.array([0.02, -0.01, 0.03, 0.0, -0.02, 0.04, 0.01, -0.005])
    t = len(r)
    mean = sum(r) / t
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (t - 1))
    m2 = sum((x - mean) ** 2 for x in r) / t
    m3 = sum((x - mean) ** 3 for x in r) / t
    m4 = sum((x - mean) ** 4 for x in r) / t
    skew = m3 / m2**1.5
    kurt = m4 / m2**2  # raw (Pearson) kurtosis
    sr = mean / sd
    trial_srs = [0.1, 0.35, -0.2, 0.05, sr]
    mu = sum(trial_srs) / 5
    var = sum((x - mu) ** 2 for x in trial_srs) / 4
    # inverse normal through scipy-free bisection on erf
    def ppf(p: float) -> float:
        lo, hi = -10.0, 10.0
        for _ in range(200):
            mid = (lo + hi) / 2
            if _phi(mid) < p:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    g = 0.5772156649015329
    sr0 = math.sqrt(var) * ((1 - g) * ppf(1 - 1 / 5) + g * ppf(1 - 1 / (5 * math.e)))
    var_term = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    expected = _phi((sr - sr0) * math.sqrt(t - 1) / math.sqrt(var_term))

    res = of.deflated_sharpe_ratio(r, n_trials=5, trial_sharpes=trial_srs)
    assert res.sharpe == pytest.approx(sr, rel=1e-12)
    assert res.kurtosis_raw == pytest.approx(kurt, rel=1e-12)
    assert res.skew == pytest.approx(skew, rel=1e-12)
    assert res.expected_max_sharpe == pytest.approx(sr0, rel=1e-9)
    assert res.dsr == pytest.approx(expected, rel=1e-9)

    # the libraries' version (excess kurtosis plugged into (k - 3)/4 form) gives another answer
    wrong_var = 1 + 0.5 * sr**2 - skew * sr + ((kurt - 3) - 3) / 4 * sr**2
    wrong = _phi((sr - sr0) * math.sqrt(t - 1) / math.sqrt(wrong_var))
    assert abs(wrong - res.dsr) > 1e-3


def test_dsr_single_trial_is_psr_against_zero_and_falls_with_more_trials():
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.02, 1000)
    one = of.deflated_sharpe_ratio(r, n_trials=1, sharpe_variance=0.001)
    assert one.expected_max_sharpe == 0.0
    many = of.deflated_sharpe_ratio(r, n_trials=1000, sharpe_variance=0.001)
    assert many.dsr < one.dsr


def test_pbo_hand_computed_two_blocks():
    # rows: block A (2 rows), block B (2 rows); columns: 3 trials; metric: mean
    m = np.array(
        [
            [1.0, 0.0, 0.5],
            [1.0, 0.0, 0.5],
            [-1.0, 0.5, 1.0],
            [-1.0, 0.5, 1.0],
        ]
    )
    res = of.probability_of_backtest_overfitting(m, n_splits=2, metric="mean")
    # IS=A: winner trial 0, OOS means (-1, .5, 1): rank 1 -> w=1/4 -> logit ln(1/3)
    # IS=B: winner trial 2, OOS means (1, 0, .5): rank 2 -> w=2/4 -> logit 0 (counts: <= 0)
    assert res.n_combinations == 2
    assert sorted(res.logits) == pytest.approx(sorted([math.log(1 / 3), 0.0]))
    assert res.pbo == 1.0


def test_pbo_hand_computed_edge_survives():
    m = np.array(
        [
            [2.0, 0.0, 1.0],
            [2.0, 0.0, 1.0],
            [3.0, 1.0, 0.0],
            [3.0, 1.0, 0.0],
        ]
    )
    res = of.probability_of_backtest_overfitting(m, n_splits=2, metric="mean")
    # trial 0 wins IS both ways and ranks 3 of 3 OOS: w = 3/4, logit ln 3 > 0 -> PBO 0
    assert res.logits == pytest.approx([math.log(3), math.log(3)])
    assert res.pbo == 0.0


def test_pbo_pure_noise_is_about_one_half_or_more():
    rng = np.random.default_rng(42)
    m = rng.normal(0.0, 0.01, size=(1600, 50))
    res = of.probability_of_backtest_overfitting(m, n_splits=16)
    assert res.n_combinations == math.comb(16, 8)
    assert 0.35 <= res.pbo <= 1.0


def test_pbo_planted_edge_is_about_zero():
    rng = np.random.default_rng(7)
    m = rng.normal(0.0, 0.01, size=(1600, 50))
    m[:, 17] += 0.004  # a real edge: Sharpe 0.4 per period in every block
    res = of.probability_of_backtest_overfitting(m, n_splits=16)
    assert res.pbo <= 0.02
    assert res.prob_oos_loss == 0.0


def test_pbo_rejects_bad_input():
    with pytest.raises(ValueError):
        of.probability_of_backtest_overfitting(np.zeros((100, 1)))
    with pytest.raises(ValueError):
        of.probability_of_backtest_overfitting(np.zeros((100, 4)), n_splits=3)


def test_pbo_matches_a_direct_implementation():
    # a second, naive implementation: concatenate the blocks and recompute from scratch
    import itertools

    rng = np.random.default_rng(3)
    m = rng.normal(0.0005, 0.01, size=(120, 7))
    s = 6
    blocks = np.split(m, s)
    logits = []
    for combo in itertools.combinations(range(s), s // 2):
        is_rows = np.concatenate([blocks[i] for i in combo])
        oos_rows = np.concatenate([blocks[i] for i in range(s) if i not in combo])
        is_sr = is_rows.mean(0) / is_rows.std(0, ddof=1)
        oos_sr = oos_rows.mean(0) / oos_rows.std(0, ddof=1)
        best = int(np.argmax(is_sr))
        rank = 1 + int((oos_sr < oos_sr[best]).sum())
        w = rank / 8
        logits.append(math.log(w / (1 - w)))
    res = of.probability_of_backtest_overfitting(m, n_splits=s)
    assert res.logits == pytest.approx(logits)
    assert res.pbo == pytest.approx(np.mean(np.array(logits) <= 0))


# --------------------------------------------------------------------------------------------
# CSCV as defined (docs/optimize.md): ties, the selection measure, every row alignment


def _naive_measure(rows: np.ndarray, metric: str, ppy: float = 365.0) -> np.ndarray:
    """Each column's performance on ``rows`` from scratch (higher = better; undefined -> 0)."""
    out = []
    for r in rows.T:
        n = len(r)
        equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
        mdd = float(np.min(equity / np.maximum.accumulate(equity) - 1.0))
        if metric == "sharpe":
            sd = r.std(ddof=1)
            v = r.mean() / sd if sd > 0 else 0.0
        elif metric == "sortino":
            dd = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
            v = r.mean() / dd if dd > 0 else 0.0
        elif metric == "total_return":
            v = equity[-1] - 1.0
        elif metric == "max_drawdown":
            v = mdd
        elif metric == "volatility":
            v = -r.std(ddof=1)
        elif metric == "calmar":
            v = (equity[-1] ** (ppy / n) - 1.0) / abs(mdd) if mdd < 0 else 0.0
        else:
            raise AssertionError(metric)
        out.append(v)
    return np.asarray(out)


def _naive_cscv(m: np.ndarray, s: int, metric: str) -> tuple[list[int], list[float]]:
    """Second implementation: per alignment, concatenate the rows of each half and recompute."""
    from itertools import combinations

    from scipy.stats import rankdata

    t, n = m.shape
    q = t // s
    counts, logits = [], []
    for off in range(t - q * s + 1):
        blocks = np.split(m[off: off + q * s], s)
        count = 0
        for combo in combinations(range(s), s // 2):
            is_rows = np.concatenate([blocks[i] for i in combo])
            oos_rows = np.concatenate([blocks[i] for i in range(s) if i not in combo])
            best = int(np.argmax(_naive_measure(is_rows, metric)))
            rank = rankdata(_naive_measure(oos_rows, metric), method="average")[best]
            w = rank / (n + 1)
            logits.append(math.log(w / (1 - w)))
            count += rank <= (n + 1) / 2
        counts.append(count)
    return counts, logits


def test_pbo_exact_out_of_sample_tie_at_the_median_counts():
    # trials A and A2 differ in the first block only (a parameter that binds there alone)
    # and have the same returns in the second; B and C are clearly worse / better there
    #            A       A2      B      C
    m = np.array([
        [0.01, 0.01, -0.01, -0.05],
        [-0.005, -0.15, -0.03, -0.02],
        [0.03, 0.03, -0.02, 0.08],
        [-0.01, -0.01, -0.03, 0.07],
    ])
    res = of.probability_of_backtest_overfitting(m, n_splits=2)
    # IS = block 0: A has the only positive Sharpe and wins; OOS = block 1, where A and A2 are
    # identical: B (rank 1) < A = A2 (ranks 2 and 3, average 2.5) < C (rank 4); with N = 4 the
    # median is (N + 1) / 2 = 2.5, so w = 1/2 and the logit is exactly 0: it counts.
    # IS = block 1: C wins (Sharpe 0.075 / 0.0071); OOS = block 0: C's Sharpe -1.65 is the worst
    # (B -1.41, A2 -0.62, A +0.24): rank 1, logit ln(1/4) <= 0. PBO = 2/2.
    assert res.logits == [0.0, pytest.approx(math.log(1 / 4))]
    assert res.overfit_counts == [2]
    assert res.pbo == 1.0
    counts, logits = _naive_cscv(m, 2, "sharpe")
    assert counts == [2] and res.logits == pytest.approx(logits)


def test_pbo_ties_on_a_larger_study_match_the_definition():
    # 12 trials in 6 pairs; each pair shares its returns on the last four blocks only
    rng = np.random.default_rng(11)
    t, s = 240, 8
    base = rng.normal(0.0003, 0.01, size=(t, 6))
    m = np.repeat(base, 2, axis=1)
    m[: t // 2, 1::2] += rng.normal(0.0, 0.004, size=(t // 2, 6))
    res = of.probability_of_backtest_overfitting(m, n_splits=s)
    counts, logits = _naive_cscv(m, s, "sharpe")
    assert res.overfit_counts == counts
    assert res.logits == pytest.approx(logits)
    assert res.pbo == counts[0] / math.comb(s, s // 2)


def test_pbo_selects_and_ranks_by_the_studied_measure():
    # Sortino and Sharpe disagree: half the trials are lotteries (small steady losses, rare
    # big gains) that Sortino, which ignores upside deviation, rates higher than Sharpe does
    rng = np.random.default_rng(2)
    t, s, n = 160, 8, 10
    m = rng.normal(0.0, 0.01, size=(t, n))
    m[:, ::2] = (np.where(rng.random((t, 5)) < 0.05, 0.06, -0.002)
                 + rng.normal(0, 0.001, (t, 5)))
    by_sortino = of.probability_of_backtest_overfitting(m, n_splits=s, metric="sortino")
    by_sharpe = of.probability_of_backtest_overfitting(m, n_splits=s, metric="sharpe")
    counts, logits = _naive_cscv(m, s, "sortino")
    assert by_sortino.metric == "sortino"
    assert by_sortino.overfit_counts == counts
    assert by_sortino.logits == pytest.approx(logits)
    # the measure matters here: by Sharpe the same study reads differently
    assert by_sharpe.overfit_counts == _naive_cscv(m, s, "sharpe")[0]
    assert abs(by_sortino.pbo - by_sharpe.pbo) > 0.1


@pytest.mark.parametrize("metric", ["total_return", "max_drawdown", "calmar", "volatility"])
def test_pbo_other_measures_match_a_direct_implementation(metric):
    rng = np.random.default_rng(8)
    m = rng.normal(0.0004, 0.02, size=(83, 6))  # 83 = 6 * 13 + 5: six alignments
    res = of.probability_of_backtest_overfitting(m, n_splits=6, metric=metric,
                                                 periods_per_year=365)
    counts, logits = _naive_cscv(m, 6, metric)
    assert res.overfit_counts == counts
    assert res.logits == pytest.approx(logits)
    assert res.rows_left_over == 5 and len(counts) == 6


def test_pbo_uses_every_alignment_when_s_does_not_divide_t():
    # T = 5 rows, S = 2 blocks of 2: one row is left over, first or last
    #             A    B    C
    m = np.array([[4.0, 0.0, 1.0],
                  [0.0, 1.0, 0.0],
                  [0.0, 1.0, 0.0],
                  [2.0, 0.0, 1.0],
                  [-4.0, 0.0, 3.0]]) / 100
    res = of.probability_of_backtest_overfitting(m, n_splits=2, metric="mean")
    # drop the last row: halves {r0, r1} and {r2, r3}; A is best in both (means 2 and 1):
    #   rank 3 of 3 both ways, logits ln 3 > 0 -> 0 of 2 splits
    # drop the first row: halves {r1, r2} (A 0, B 1, C 0) and {r3, r4} (A -1, B 0, C 2):
    #   IS {r1, r2}: B wins; OOS B = 0 between A = -1 and C = 2: rank 2 = median -> counts
    #   IS {r3, r4}: C wins; OOS C = 0 ties A = 0 below B = 1: rank 1.5 -> counts; 2 of 2
    assert res.rows_left_over == 1
    assert res.overfit_counts == [0, 2]
    assert (res.pbo, res.pbo_min, res.pbo_max) == (0.5, 0.0, 1.0)
    assert res.logits == pytest.approx([math.log(3), math.log(3), 0.0, math.log(1.5 / 2.5)])
    d = res.to_dict()
    assert (d["pbo"], d["pbo_min"], d["pbo_max"]) == (0.5, 0.0, 1.0)


def test_pbo_report_rounds_to_the_precision_of_the_split():
    rng = np.random.default_rng(2)
    res = of.probability_of_backtest_overfitting(rng.normal(0, 0.01, (100, 5)), n_splits=4)
    d = res.to_dict()
    assert d["pbo"] == round(float(np.mean(res.overfit_counts)) / 6, 3)
    assert len(repr(d["pbo"])) <= 5
