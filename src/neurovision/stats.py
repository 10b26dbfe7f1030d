"""Confidence intervals and paired tests for retrieval scores (numpy and scipy only).

Which method is used for what:

- :func:`percentile_bootstrap`: a subject's interval of every metric that is a mean over its
  test trials (top-k, n-way accuracy, mean rank), and of a paired difference between two
  runs on the same trials.  The test images are resampled with replacement; the 2.5 and
  97.5 percentiles of the resampled means are the 95 % interval.  It treats the test images
  as a sample of possible images and the trained decoder as fixed.
- :func:`clopper_pearson`: the exact binomial interval of a proportion of hits (top-k
  accuracy: the true image is among the k best, or not).  It never collapses to a point, as
  the bootstrap does when a subject has no hit at all.
- :func:`t_interval`: the mean over subjects, with Student's t on ``n_subjects - 1``
  degrees of freedom: the subjects as a sample of people.
- :func:`sign_test`: the exact two-sided binomial test (p = 1/2) on the pairs that differ.
  It is McNemar's exact test on paired hits (:func:`mcnemar_exact`), the sign test on the
  true image's rank in each trial, and the sign test on per-subject scores
  (:func:`paired_sign_test`).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: Coverage of every interval.
CONFIDENCE = 0.95
#: Resamples drawn per vectorised step of the bootstrap (memory: rows x BATCH x n floats).
BATCH = 1000


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def percentile_bootstrap(values: np.ndarray, *, resamples: int, seed: int,
                         confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of the mean of ``values`` over its last axis.

    ``values`` is (n,) or (m, n): m statistics' per-trial values for the same n trials.
    All rows are resampled with the same trial indices, so the intervals of several metrics
    come from one set of resamples, and a seed gives the same intervals on every call.
    Returns ``(low, high)``, each of shape ``values.shape[:-1]``.  A row whose values are
    all equal gets that value as both bounds, exactly (not the rounding of a sum).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim not in (1, 2) or values.shape[-1] < 1:
        raise ValueError(f"expected (n,) or (m, n) per-trial values, got shape {values.shape}")
    constant = np.all(values == values[..., :1], axis=-1)
    if constant.all():  # one trial, or no spread: nothing to resample (scipy needs two)
        return values[..., 0].copy(), values[..., 0].copy()
    res = stats.bootstrap((values,), _mean, n_resamples=resamples, batch=BATCH,
                          vectorized=True, axis=-1, confidence_level=confidence,
                          method="percentile", rng=np.random.default_rng(seed))
    low = np.where(constant, values[..., 0], res.confidence_interval.low)
    high = np.where(constant, values[..., 0], res.confidence_interval.high)
    return low, high


def clopper_pearson(hits: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion: ``hits`` of ``n`` trials.

    The bounds are the beta quantiles that invert the binomial test.  A count that is an
    expectation over tied scores (not a whole number) is passed to the same quantiles,
    which interpolate between the neighbouring whole counts.
    """
    if not 0 <= hits <= n or n < 1:
        raise ValueError(f"expected 0 <= hits <= n with n >= 1, got hits={hits}, n={n}")
    alpha = 1 - confidence
    low = 0.0 if hits == 0 else float(stats.beta.ppf(alpha / 2, hits, n - hits + 1))
    high = 1.0 if hits == n else float(stats.beta.ppf(1 - alpha / 2, hits + 1, n - hits))
    return low, high


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE,
               bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float] | None:
    """Student-t interval of the mean of ``values`` (one per subject), cut to ``bounds``
    (the range the mean can take: an accuracy's [0, 1]); None for fewer than two values
    (no spread to estimate)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return None
    mean = float(values.mean())
    sem = float(values.std(ddof=1)) / np.sqrt(n)
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return float(max(low, bounds[0])), float(min(high, bounds[1]))


def sign_test(n_plus: int, n_minus: int) -> float:
    """Exact two-sided p of ``n_plus`` against ``n_minus`` under Binomial(n, 1/2): the sum
    of the probabilities of every split at most as likely as the observed one (1 when
    nothing differs)."""
    n = int(n_plus) + int(n_minus)
    if n == 0:
        return 1.0
    return float(stats.binomtest(int(n_plus), n, 0.5).pvalue)


def mcnemar_exact(hits_a: np.ndarray, hits_b: np.ndarray) -> float:
    """McNemar's exact test of paired hits (booleans, one pair per trial): the sign test on
    the discordant trials (A hit and B missed, or the reverse)."""
    a, b = np.asarray(hits_a, dtype=bool), np.asarray(hits_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"expected paired hits of one shape, got {a.shape} and {b.shape}")
    return sign_test(int((a & ~b).sum()), int((~a & b).sum()))


def paired_sign_test(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Sign test of paired values: ``(n_a_greater, n_b_greater, p)``, equal pairs left out."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"expected paired values of one shape, got {a.shape} and {b.shape}")
    n_a, n_b = int((a > b).sum()), int((b > a).sum())
    return n_a, n_b, sign_test(n_a, n_b)
