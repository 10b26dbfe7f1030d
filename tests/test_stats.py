"""Intervals and paired tests, against simulation, exact sums and exhaustive enumeration."""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from scipy import stats as sps

from neurovision.retrieval import top_k_hits
from neurovision.stats import (
    clopper_pearson,
    mcnemar_exact,
    paired_sign_test,
    percentile_bootstrap,
    sign_test,
    t_interval,
)


def simulated_scores(n: int, hit_rate: float, rng: np.random.Generator) -> np.ndarray:
    """A retrieval score matrix whose true image (the diagonal) is ranked first with
    probability ``hit_rate`` and last otherwise, independently per trial."""
    scores = rng.normal(size=(n, n))
    hit = rng.random(n) < hit_rate
    scores[np.arange(n), np.arange(n)] = np.where(hit, scores.max(axis=1) + 1,
                                                  scores.min(axis=1) - 1)
    return scores


def test_bootstrap_interval_covers_the_true_hit_rate_95_percent_of_the_time():
    """1,000 simulated subjects (100 test images, true top-1 rate 0.255), one bootstrap
    each with its own seed.  Tolerance 0.03: the count of covering intervals is binomial
    with sd sqrt(0.95 * 0.05 / 1000) = 0.007, so 0.03 allows 2.9 sd of simulation noise
    plus up to 1 point for the percentile bootstrap's own error on 100 Bernoulli trials
    (its coverage moves with n and p on a lattice, like any interval of a binomial
    proportion).  A 90 % or a 99 % interval lands outside (0.90, 0.99)."""
    n, rate, sims = 100, 0.255, 1000
    rng = np.random.default_rng(0)
    covered = 0
    for seed in range(sims):
        hits = top_k_hits(simulated_scores(n, rate, rng), 1)
        low, high = percentile_bootstrap(hits, resamples=1000, seed=seed)
        covered += bool(low <= rate <= high)
    assert abs(covered / sims - 0.95) <= 0.03, covered / sims


def test_bootstrap_is_the_percentile_of_resampled_means_and_is_seeded():
    """Against a by-hand bootstrap with the same resample indices, which scipy draws as
    ``rng.integers(0, n, (batch, n))``; rows share indices; the seed decides them."""
    rng = np.random.default_rng(3)
    values = rng.random((2, 30))
    low, high = percentile_bootstrap(values, resamples=400, seed=7)
    idx = np.random.default_rng(7).integers(0, 30, (400, 30))
    means = values[:, idx].mean(axis=-1)
    assert low == pytest.approx(np.percentile(means, 2.5, axis=-1))
    assert high == pytest.approx(np.percentile(means, 97.5, axis=-1))
    one_low, one_high = percentile_bootstrap(values[1], resamples=400, seed=7)
    # the same resamples for every row (equal up to the last bits of a sum)
    assert (one_low, one_high) == pytest.approx((low[1], high[1]), rel=1e-12)
    again = percentile_bootstrap(values, resamples=400, seed=7)
    other = percentile_bootstrap(values, resamples=400, seed=8)
    assert np.array_equal(again[0], low) and not np.array_equal(other[0], low)
    with pytest.raises(ValueError, match=r"per-trial values, got shape \(2, 3, 4\)"):
        percentile_bootstrap(np.zeros((2, 3, 4)), resamples=100, seed=0)


def test_bootstrap_confidence_level_is_the_percentiles_it_names():
    rng = np.random.default_rng(5)
    values = rng.random(25)
    low, high = percentile_bootstrap(values, resamples=300, seed=2, confidence=0.5)
    means = values[np.random.default_rng(2).integers(0, 25, (300, 25))].mean(axis=-1)
    assert (low, high) == pytest.approx((np.percentile(means, 25), np.percentile(means, 75)))


def test_a_row_without_spread_gets_its_value_exactly_as_both_bounds():
    """0.1 thirty times: the mean of any resample is 0.10000000000000005, not 0.1, so only
    the exact shortcut returns 0.1; the other row is bootstrapped as usual."""
    rng = np.random.default_rng(4)
    varying = rng.random(30)
    values = np.stack([np.full(30, 0.1), varying])
    assert np.mean(np.full(30, 0.1)) != 0.1  # what makes this test able to fail
    low, high = percentile_bootstrap(values, resamples=200, seed=1)
    assert low[0] == 0.1 and high[0] == 0.1
    alone = percentile_bootstrap(varying, resamples=200, seed=1)
    assert (low[1], high[1]) == pytest.approx(tuple(map(float, alone)), rel=1e-12)
    assert low[1] < high[1]
    assert percentile_bootstrap(np.full((2, 30), 0.1), resamples=200, seed=1)[1].tolist() == [
        0.1, 0.1]


@pytest.mark.parametrize("values, want", [([0.3], 0.3), ([[0.2], [0.7]], [0.2, 0.7])])
def test_one_trial_is_its_own_interval(values, want):
    low, high = percentile_bootstrap(np.array(values), resamples=100, seed=0)
    assert np.array_equal(low, want) and np.array_equal(high, want)
    ints = percentile_bootstrap(np.array([1]), resamples=100, seed=0)
    assert ints[0].dtype == ints[1].dtype == np.float64  # bounds are floats whatever came in
    with pytest.raises(ValueError, match=r"per-trial values, got shape \(2, 0\)"):
        percentile_bootstrap(np.zeros((2, 0)), resamples=100, seed=0)


@pytest.mark.parametrize("n", [1, 7, 40])
def test_clopper_pearson_is_the_exact_binomial_interval(n):
    for k in range(n + 1):
        want = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
        assert clopper_pearson(k, n) == pytest.approx((want.low, want.high), abs=1e-12)
    assert clopper_pearson(0, n)[0] == 0.0 and clopper_pearson(n, n)[1] == 1.0
    with pytest.raises(ValueError, match="0 <= hits <= n"):
        clopper_pearson(n + 1, n)


def test_clopper_pearson_covers_at_least_95_percent_for_every_rate():
    """Exact coverage: the binomial probability of the counts whose interval holds p."""
    n = 50
    bounds = [clopper_pearson(k, n) for k in range(n + 1)]
    for p in np.linspace(0.001, 0.999, 211):
        cover = sum(sps.binom.pmf(k, n, p) for k, (lo, hi) in enumerate(bounds) if lo <= p <= hi)
        assert cover >= 0.95 - 1e-9, p


def test_t_interval_of_the_mean():
    values = [0.1, 0.2, 0.6]
    mean, sd = np.mean(values), np.std(values, ddof=1)
    t975 = 4.302652729911275  # Student t, 2 degrees of freedom, 97.5th percentile
    assert t_interval(values) == pytest.approx((mean - t975 * sd / np.sqrt(3),
                                                mean + t975 * sd / np.sqrt(3)))
    assert t_interval(values, bounds=(0.2, 0.5)) == (0.2, 0.5)
    assert t_interval([0.3]) is None
    assert t_interval([0.2, 0.2]) == (0.2, 0.2)


def brute_two_sided(k: int, m: int) -> Fraction:
    """Exact two-sided binomial p (p = 1/2): the splits at most as likely as k of m."""
    return sum((Fraction(comb(m, j), 2 ** m) for j in range(m + 1) if comb(m, j) <= comb(m, k)),
               Fraction(0))


@pytest.mark.parametrize("n11, n00", [(0, 0), (3, 5)])
def test_mcnemar_is_the_exact_binomial_on_the_discordant_pairs(n11, n00):
    for n10, n01 in itertools.product(range(9), repeat=2):
        a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00, dtype=bool)
        b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00, dtype=bool)
        perm = np.random.default_rng(n10 * 9 + n01).permutation(len(a))
        want = 1.0 if n10 + n01 == 0 else float(brute_two_sided(n10, n10 + n01))
        assert mcnemar_exact(a[perm], b[perm]) == pytest.approx(want, rel=1e-9), (n10, n01)
    with pytest.raises(ValueError, match="one shape"):
        mcnemar_exact([True], [True, False])


def test_mcnemar_reads_zeros_and_ones_as_misses_and_hits():
    a, b = np.array([1, 1, 1, 0, 1]), np.array([0, 0, 0, 0, 1])
    assert mcnemar_exact(a, b) == mcnemar_exact(b, a) == pytest.approx(2 / 8)
    assert mcnemar_exact(a.astype(bool), b.astype(bool)) == mcnemar_exact(a, b)
    assert mcnemar_exact(a.astype(float), b.astype(float)) == mcnemar_exact(a, b)  # from JSON


def test_sign_test_on_ranks_equals_exhaustive_enumeration_of_swapped_pairs():
    """Under the null each trial's two ranks are exchangeable: enumerate all 2^n swaps and
    count those whose sign statistic is at least as far from 0 as the observed one."""
    rng = np.random.default_rng(1)
    for case in range(25):
        n = int(rng.integers(1, 11))
        a = rng.integers(1, 5, n)
        b = rng.integers(1, 5, n)  # small ranks: many equal pairs
        observed = abs(int((a > b).sum()) - int((b > a).sum()))
        extreme = 0
        for swap in itertools.product((False, True), repeat=n):
            s = np.array(swap)
            x, y = np.where(s, b, a), np.where(s, a, b)
            extreme += abs(int((x > y).sum()) - int((y > x).sum())) >= observed
        n_a, n_b, p = paired_sign_test(a, b)
        assert (n_a, n_b) == (int((a > b).sum()), int((b > a).sum()))
        assert p == pytest.approx(extreme / 2 ** n, rel=1e-9), (case, a, b)
    with pytest.raises(ValueError, match=r"paired values of one shape, got \(2,\) and \(3,\)"):
        paired_sign_test([1, 2], [1, 2, 3])


def test_sign_test_edges():
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(0, 10) == sign_test(10, 0) == pytest.approx(2 / 1024)
