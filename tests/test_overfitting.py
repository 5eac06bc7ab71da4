"""Deflated Sharpe Ratio and PBO against hand computations and known-answer synthetic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flushback.backtests import overfitting as of


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
