import itertools

import numpy as np
import pytest

from neurovision.retrieval import (
    cosine_scores,
    expected_ranks,
    l2_normalize,
    n_way_accuracy,
    ranks,
    retrieval_metrics,
    top_k_accuracy,
    top_k_curve,
    top_k_indices,
)


def brute_rank(scores):
    # position of the true item in a stable descending sort
    return np.array([list(np.argsort(-scores[i], kind="stable")).index(i) + 1
                     for i in range(len(scores))])


def brute_n_way(scores, n):
    """Enumerate every set of n-1 distractors; ties are won with probability 1/(1+ties)."""
    m = scores.shape[1]
    accs = []
    for i in range(len(scores)):
        others = [j for j in range(m) if j != i]
        wins = []
        for combo in itertools.combinations(others, n - 1):
            d = scores[i, list(combo)]
            if (d > scores[i, i]).any():
                wins.append(0.0)
            else:
                wins.append(1.0 / (1 + (d == scores[i, i]).sum()))
        accs.append(np.mean(wins))
    return float(np.mean(accs))


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(9, 9)) + np.eye(9) * 0.8
    return s


def test_cosine_scores_match_definition():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    expected = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    np.testing.assert_allclose(cosine_scores(a, b), expected)
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(a), axis=1), 1.0)


def test_topk_against_brute_force(scores):
    r = brute_rank(scores)
    np.testing.assert_array_equal(ranks(scores), r)
    for k in range(1, 10):
        assert top_k_accuracy(scores, k) == pytest.approx(np.mean(r <= k))
    np.testing.assert_allclose(top_k_curve(scores), [np.mean(r <= k) for k in range(1, 10)])
    top = top_k_indices(scores, 3)
    for i in range(9):
        assert list(top[i]) == list(np.argsort(-scores[i], kind="stable")[:3])


@pytest.mark.parametrize("n", [2, 3, 4, 9])
def test_n_way_against_brute_force(scores, n):
    assert n_way_accuracy(scores, n) == pytest.approx(brute_n_way(scores, n))


def test_ties_score_chance():
    const = np.zeros((10, 10))
    assert top_k_accuracy(const, 1) == pytest.approx(0.1)
    assert top_k_accuracy(const, 5) == pytest.approx(0.5)
    assert n_way_accuracy(const, 2) == pytest.approx(0.5)
    assert n_way_accuracy(const, 4) == pytest.approx(0.25)
    tied = np.round(np.random.default_rng(3).normal(size=(6, 6)), 0)
    for n in (2, 3, 5):
        assert n_way_accuracy(tied, n) == pytest.approx(brute_n_way(tied, n))


def test_metrics_keys_and_perfect_decoder():
    m = retrieval_metrics(np.eye(60))
    for key in ("top1", "top5", "top10", "two_way", "four_way", "ten_way", "fifty_way",
                "mean_rank", "median_rank", "n_test"):
        assert key in m
    assert m["top1"] == 1.0 and m["fifty_way"] == 1.0 and m["mean_rank"] == 1.0
    assert m["top5_chance"] == pytest.approx(5 / 60) and m["fifty_way_chance"] == 0.02
    small = retrieval_metrics(np.eye(8))
    assert small["fifty_way"] is None and small["top10"] is None


def _tied(seed: int, n: int = 6) -> np.ndarray:
    """Scores with many ties: small integers."""
    s = np.random.default_rng(seed).integers(0, 3, size=(n, n)).astype(float)
    s[0] = 1.0  # a row tied everywhere
    return s


def brute_expected_rank(scores):
    """The true item's rank averaged over every ordering of the tied items (all orders of
    the whole row, stable-sorted by score: ties end up in every order equally often)."""
    n = scores.shape[1]
    out = []
    for i in range(len(scores)):
        positions = []
        for perm in itertools.permutations(range(n)):
            order = sorted(perm, key=lambda j: -scores[i, j])  # stable: ties in perm order
            positions.append(order.index(i) + 1)
        out.append(np.mean(positions))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ties_against_brute_force(seed):
    s = _tied(seed)
    exp = brute_expected_rank(s)
    np.testing.assert_allclose(expected_ranks(s), exp)
    # a concrete ranking: the stable descending sort, ties in gallery order
    np.testing.assert_array_equal(ranks(s), brute_rank(s))
    for i in range(len(s)):
        assert list(top_k_indices(s, 6)[i]) == sorted(range(6), key=lambda j: (-s[i, j], j))
    # top-k accuracy is the expectation over tie orders too
    n = s.shape[1]
    for k in range(1, n + 1):
        hits = []
        for i in range(len(s)):
            orders = [sorted(p, key=lambda j: -s[i, j]) for p in itertools.permutations(range(n))]
            hits.append(np.mean([o.index(i) < k for o in orders]))
        assert top_k_accuracy(s, k) == pytest.approx(np.mean(hits))
    m = retrieval_metrics(s)
    assert m["mean_rank"] == pytest.approx(exp.mean())
    assert m["median_rank"] == pytest.approx(np.median(exp))


@pytest.mark.parametrize("n", [5, 12, 60])
def test_a_constant_predictor_scores_chance_on_every_metric(n):
    m = retrieval_metrics(np.full((n, n), 0.3))
    for key in ("top1", "top5", "top10", "two_way", "four_way", "ten_way", "fifty_way",
                "mean_rank", "median_rank"):
        if m[key] is not None:
            assert m[key] == pytest.approx(m[f"{key}_chance"]), key
    np.testing.assert_allclose(expected_ranks(np.zeros((n, n))), (n + 1) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_curve_with_ties_is_the_expectation_over_tie_orders(seed):
    s = _tied(seed)
    np.testing.assert_allclose(top_k_curve(s), [top_k_accuracy(s, k) for k in range(1, 7)])
    # row 0 ties everywhere: its true item is in the top k with probability k / 6
    np.testing.assert_allclose(top_k_curve(s[:1, :]), np.arange(1, 7) / 6)


def test_ranks_with_more_gallery_items_than_queries():
    # extra distractors in the gallery: query i still matches gallery item i
    s = np.random.default_rng(4).normal(size=(3, 7))
    s[1, 5] = s[1, 1]  # a tie after the true item: the true item keeps the lower index
    np.testing.assert_array_equal(ranks(s), brute_rank(s))


@pytest.mark.parametrize("n_way", [1, 10])
def test_n_way_outside_the_gallery_is_refused_with_the_range(n_way):
    with pytest.raises(ValueError, match=rf"n_way must be in \[2, 9\], got {n_way}"):
        n_way_accuracy(np.eye(9), n_way)


def test_metrics_refuse_a_non_square_matrix_naming_its_shape():
    with pytest.raises(ValueError, match=r"expected a square score matrix .* got \(3, 4\)"):
        retrieval_metrics(np.zeros((3, 4)))


@pytest.mark.parametrize("n", [5, 8, 10, 50])
def test_metrics_exist_exactly_when_the_gallery_is_large_enough(n):
    """A k or n-way no larger than the gallery is reported (a perfect decoder scores 1), a
    larger one is null, and so is its chance; top-k chance is k / n, at most 1."""
    m = retrieval_metrics(np.eye(n))
    assert m["n_test"] == n
    for key, k in {"top1": 1, "top5": 5, "top10": 10}.items():
        assert m[key] == (1.0 if k <= n else None), key
        assert m[f"{key}_chance"] == min(1.0, k / n), key
    for key, k in {"two_way": 2, "four_way": 4, "ten_way": 10, "fifty_way": 50}.items():
        assert m[key] == (1.0 if k <= n else None), key
        assert m[f"{key}_chance"] == (1.0 / k if k <= n else None), key
    assert m["mean_rank"] == m["median_rank"] == 1.0
    assert m["mean_rank_chance"] == m["median_rank_chance"] == (n + 1) / 2
