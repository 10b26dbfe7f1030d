"""Zero-shot retrieval: cosine ranking of a gallery and the field's metrics.

Conventions: ``scores[i, j]`` is the similarity of query i (the decoded EEG of test image
i) to gallery item j; the true match of query i is gallery item i.  Ties are broken at
random *in expectation*: a metric is the exact expected value over random tie-breaking,
so a constant predictor scores exactly chance (the mean and median rank included, from
:func:`expected_ranks`).  :func:`ranks` and :func:`top_k_indices` give one concrete list
instead, ties in gallery order, as the per-trial records show it.
"""

from __future__ import annotations

from math import comb

import numpy as np

#: The n-way tasks reported in the literature, by metric key.
N_WAYS = {"two_way": 2, "four_way": 4, "ten_way": 10, "fifty_way": 50}
TOP_KS = {"top1": 1, "top5": 5, "top10": 10}


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Scale each vector along ``axis`` to unit Euclidean norm (zero vectors stay zero)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, eps)


def cosine_scores(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(n_queries, n_gallery) cosine similarities."""
    return l2_normalize(queries.astype(np.float64)) @ l2_normalize(gallery.astype(np.float64)).T


def _greater_equal(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: how many other items score above, and how many tie with, the true item."""
    true = np.diag(scores)[:, None]
    greater = (scores > true).sum(axis=1)
    ties = (scores == true).sum(axis=1) - 1
    return greater, ties


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of the true item in a stable descending sort (ties by gallery index).

    This is the position at which the true item appears in :func:`top_k_indices`.
    """
    n = scores.shape[0]
    true = np.diag(scores)[:, None]
    idx = np.arange(scores.shape[1])[None, :]
    before = (scores > true) | ((scores == true) & (idx < np.arange(n)[:, None]))
    return before.sum(axis=1) + 1


def expected_ranks(scores: np.ndarray) -> np.ndarray:
    """Expected 1-based rank of the true item over random tie-breaking: one more than the
    items scoring above it, plus half of those tying with it."""
    greater, ties = _greater_equal(scores)
    return greater + 1 + ties / 2


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """(n_queries, k) gallery indices, best first; ties in gallery-index order."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def top_k_hits(scores: np.ndarray, k: int) -> np.ndarray:
    """Per query: the probability that its true item is among the k best (1 or 0 unless
    it ties with others at the k-th place)."""
    greater, ties = _greater_equal(scores)
    # The true item's position is uniform on greater+1 .. greater+ties+1.
    return np.clip((k - greater) / (ties + 1), 0.0, 1.0)


def top_k_accuracy(scores: np.ndarray, k: int) -> float:
    """Expected fraction of queries whose true item is among the k best."""
    return float(top_k_hits(scores, k).mean())


def top_k_curve(scores: np.ndarray) -> np.ndarray:
    """Top-K accuracy for K = 1 .. n_gallery."""
    greater, ties = _greater_equal(scores)
    ks = np.arange(1, scores.shape[1] + 1)[:, None]
    return np.clip((ks - greater[None]) / (ties[None] + 1), 0.0, 1.0).mean(axis=1)


def n_way_accuracy(scores: np.ndarray, n_way: int) -> float:
    """Exact expected n-way accuracy: the true item beats n-1 distractors drawn uniformly
    without replacement from the other gallery items (ties won with probability
    1/(1 + tied distractors)).  This is the limit of averaging over random draws."""
    return float(n_way_hits(scores, n_way).mean())


def n_way_hits(scores: np.ndarray, n_way: int) -> np.ndarray:
    """Per query: its probability of winning the n-way task of :func:`n_way_accuracy`."""
    m = scores.shape[1]
    if not 2 <= n_way <= m:
        raise ValueError(f"n_way must be in [2, {m}], got {n_way}")
    greater, ties = _greater_equal(scores)
    others = m - 1
    total = comb(others, n_way - 1)
    acc = np.zeros(len(greater))
    for i, (g, e) in enumerate(zip(greater, ties)):
        lower = others - g - e
        p = 0.0
        for j in range(0, min(e, n_way - 1) + 1):  # j tied distractors drawn, none greater
            p += comb(e, j) * comb(lower, n_way - 1 - j) / (j + 1)
        acc[i] = p / total
    return acc


def chance_levels(n_gallery: int) -> dict:
    """``<metric>_chance`` for every metric of :func:`retrieval_metrics` with ``n_gallery``
    gallery items (what a decoder that knows nothing scores)."""
    out: dict[str, float | None] = {}
    for key, k in TOP_KS.items():
        out[f"{key}_chance"] = min(1.0, k / n_gallery)
    for key, n in N_WAYS.items():
        out[f"{key}_chance"] = 1.0 / n if n <= n_gallery else None
    out["mean_rank_chance"] = (n_gallery + 1) / 2
    out["median_rank_chance"] = (n_gallery + 1) / 2
    return out


def retrieval_metrics(scores: np.ndarray) -> dict:
    """All summary metrics of one subject, with chance levels; keys are stable."""
    n_queries, n_gallery = scores.shape
    if n_queries != n_gallery:
        raise ValueError(f"expected a square score matrix (query i matches item i), got "
                         f"{scores.shape}")
    r = expected_ranks(scores)
    out: dict[str, float | int | None] = {}
    for key, k in TOP_KS.items():
        out[key] = top_k_accuracy(scores, k) if k <= n_gallery else None
    for key, n in N_WAYS.items():
        out[key] = n_way_accuracy(scores, n) if n <= n_gallery else None
    out["mean_rank"] = float(r.mean())
    out["median_rank"] = float(np.median(r))
    out["n_test"] = int(n_gallery)
    out.update(chance_levels(n_gallery))
    return out
