"""What evaluate and summarize write, against brute-force references on small matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurovision.evaluation import (
    BOOTSTRAP,
    HEADLINE,
    INTERVAL_KEYS,
    T_OVER_SUBJECTS,
    headline,
    per_subject_rows,
    per_trial_values,
    rank_histogram,
    subject_intervals,
    subject_metrics,
    summarize,
    topk_rows,
    trial_records,
)
from neurovision.retrieval import chance_levels, retrieval_metrics
from neurovision.stats import clopper_pearson, percentile_bootstrap


def _scores(n: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n))


def test_trial_records_against_a_sort_of_each_row():
    scores = _scores()
    scores[2, 5] = scores[2, 2]  # a tie with the true image: the lower index ranks first
    files = [f"f{i}.jpg" for i in range(7)]
    concepts = [f"{i:05d}_c{i}" for i in range(7)]
    trials = trial_records(scores, files, concepts, top_k=3)
    assert [t["trial"] for t in trials] == list(range(7))
    for i, t in enumerate(trials):
        order = sorted(range(7), key=lambda j: (-scores[i, j], j))
        assert t["file"] == files[i] and t["concept"] == concepts[i]
        assert t["rank"] == order.index(i) + 1
        assert t["top_indices"] == order[:3]
        assert t["top_scores"] == [scores[i, j] for j in order[:3]]
        assert t["true_score"] == scores[i, i]
    assert trials[2]["rank"] == sorted(range(7), key=lambda j: (-scores[2, j], j)).index(2) + 1


def test_top_k_is_capped_by_the_gallery():
    assert len(trial_records(_scores(4), list("abcd"), list("abcd"), top_k=10)[0]
               ["top_indices"]) == 4


def test_topk_rows_are_the_curve_with_its_chance():
    scores = _scores(6, seed=1)
    rows = topk_rows(scores)
    assert [r[0] for r in rows] == list(range(1, 7))
    for k, acc, chance in rows:
        hits = [sum(scores[i] > scores[i, i]) < k for i in range(6)]  # no ties here
        assert acc == pytest.approx(np.mean(hits)) and chance == k / 6
    assert rows[-1][1] == 1.0


@pytest.mark.parametrize("n", [3, 20, 100, 200])
def test_rank_histogram_counts_every_rank_once(n):
    ranks = np.random.default_rng(n).integers(1, n + 1, size=n)
    rows = rank_histogram(ranks, n)
    assert len(rows) == min(n, 20)
    assert sum(c for _, c in rows) == n
    for label, count in rows:
        lo, hi = (int(x) for x in label.split("-"))
        assert count == int(((ranks >= lo) & (ranks <= hi)).sum())
    # the bins tile 1..n without gaps or overlaps
    bounds = [tuple(int(x) for x in label.split("-")) for label, _ in rows]
    assert bounds[0][0] == 1 and bounds[-1][1] == n
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(bounds))


def test_subject_metrics_with_and_without_a_ceiling():
    scores = np.eye(5)
    plain = subject_metrics(scores, subject=3, protocol="intra", mapper="ridge")
    assert plain["subject"] == 3 and plain["top1"] == 1.0 and "ideal_top1" not in plain
    real = subject_metrics(scores, subject=3, protocol="intra", mapper="ridge",
                           ceiling={"top1": None, "top5": None})
    assert "ideal_top1" not in real
    demo = subject_metrics(scores, subject=3, protocol="inter", mapper="pls",
                           ceiling={"top1": 0.5, "top5": 0.9})
    assert demo["ideal_top1"] == 0.5 and demo["ideal_top5"] == 0.9
    assert demo["top1_of_ideal"] == 2.0 and demo["protocol"] == "inter"


def test_summarize_means_sds_and_nulls():
    a = {"subject": 1, "protocol": "intra", "mapper": "ridge", "top1": 0.2, "top1_chance": 0.01,
         "fifty_way": None, "n_test": 100}
    b = {"subject": 2, "protocol": "intra", "mapper": "ridge", "top1": 0.4, "top1_chance": 0.01,
         "fifty_way": None, "n_test": 100}
    out = summarize([a, b])
    assert out["subjects"] == [1, 2] and out["n_subjects"] == 2
    assert out["top1"] == pytest.approx(0.3)
    assert out["top1_sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert out["top1_chance"] == 0.01 and "top1_chance_sd" not in out
    assert out["fifty_way"] is None and out["n_test"] == 100
    assert out["protocol"] == "intra" and "subject" not in out
    assert summarize([a])["top1_sd"] == 0.0


def test_per_subject_rows():
    m = {"subject": 3, "top1": 0.1, "top5": 0.3, "top1_chance": 0.01}
    assert per_subject_rows([m]) == [["sub-03", 0.1, 0.3, 0.01]]


def test_per_trial_values_average_to_the_metrics_exactly():
    scores = _scores(60, seed=2).round(1)  # rounded: ties with the true image happen
    metrics = retrieval_metrics(scores)
    values = per_trial_values(scores)
    assert set(values) == set(INTERVAL_KEYS)
    for key, v in values.items():
        assert v.shape == (60,) and float(v.mean()) == metrics[key], key
    assert "fifty_way" not in per_trial_values(_scores(20))
    assert {"top10", "ten_way"} <= set(per_trial_values(_scores(10)))  # a gallery of exactly k
    assert not {"top10", "ten_way"} & set(per_trial_values(_scores(9)))


def test_subject_intervals_bootstrap_every_metric_and_exact_top_k():
    scores = _scores(30, seed=4)
    out = subject_intervals(scores, resamples=500, seed=3)
    values = per_trial_values(scores)
    low, high = percentile_bootstrap(np.stack(list(values.values())), resamples=500, seed=3)
    assert out["ci_method"] == BOOTSTRAP
    for key, lo, hi in zip(values, low, high):
        assert (out[f"{key}_ci_low"], out[f"{key}_ci_high"]) == (lo, hi)
    metrics = retrieval_metrics(scores)
    for key, k in (("top1", 1), ("top5", 5), ("top10", 10)):
        hits = sum(sum(scores[i] > scores[i, i]) < k for i in range(30))  # no ties here
        assert (out[f"{key}_exact_low"], out[f"{key}_exact_high"]) == clopper_pearson(hits, 30)
        assert out[f"{key}_ci_low"] <= metrics[key] <= out[f"{key}_ci_high"]
    assert not any(k.startswith(("two_way_exact", "mean_rank_exact")) for k in out)
    assert subject_intervals(scores, resamples=500, seed=3) == out  # seeded
    assert subject_intervals(scores, resamples=500, seed=4) != out


@pytest.mark.parametrize("kind", ["all tied", "one prediction for every trial"])
def test_a_constant_predictors_intervals_contain_chance(kind):
    n = 60
    rng = np.random.default_rng(5)
    # one prediction for every trial: each row ranks the gallery alike
    scores = np.zeros((n, n)) if kind == "all tied" else np.tile(rng.normal(size=n), (n, 1))
    out = subject_intervals(scores, resamples=1000, seed=0)
    chance = chance_levels(n)
    eps = 1e-12  # all tied: the interval is the point chance, up to the rounding of n-way sums
    for key in INTERVAL_KEYS:
        assert out[f"{key}_ci_low"] - eps <= chance[f"{key}_chance"] <= (
            out[f"{key}_ci_high"] + eps), key
    for key in ("top1", "top5", "top10"):
        assert out[f"{key}_exact_low"] <= chance[f"{key}_chance"] <= out[f"{key}_exact_high"]
    good = subject_intervals(np.eye(n) + rng.normal(scale=0.3, size=(n, n)), resamples=1000,
                             seed=0)
    assert good["top1_ci_low"] > chance["top1_chance"]  # a decoder is told apart from chance


def _subject(s, top1, top5=0.5, **extra):
    return {"subject": s, "protocol": "intra", "mapper": "ridge", "top1": top1,
            "top5": top5, "fifty_way": None, "top1_chance": 0.01, "n_test": 100,
            "ci_method": BOOTSTRAP, "top1_ci_low": top1 - 0.05, "top1_ci_high": top1 + 0.05,
            "top1_exact_low": top1 - 0.06, "top1_exact_high": top1 + 0.06, **extra}


def test_summary_intervals_are_t_over_subjects():
    subs = [_subject(1, 0.2), _subject(2, 0.4), _subject(3, 0.3)]
    out = summarize(subs)
    sem = np.std([0.2, 0.4, 0.3], ddof=1) / np.sqrt(3)
    t975 = 4.302652729911275  # Student t, 2 degrees of freedom
    assert out["ci_method"] == T_OVER_SUBJECTS
    assert out["top1_ci_low"] == pytest.approx(0.3 - t975 * sem)
    assert out["top1_ci_high"] == pytest.approx(0.3 + t975 * sem)
    assert out["top5_ci_low"] == out["top5_ci_high"] == 0.5  # no spread over subjects
    assert out["fifty_way_ci_low"] is None and "two_way_ci_low" not in out
    assert not [k for k in out if "_exact_" in k or k.endswith(("_ci_low_sd", "_ci_high_sd"))]
    assert "ci_method_sd" not in out


def test_summary_intervals_stay_in_the_metrics_range():
    subs = [_subject(1, 0.1, mean_rank=1.5), _subject(2, 0.9, mean_rank=90.0)]
    out = summarize(subs)  # t with 1 degree of freedom: +-12.7 standard errors
    assert (out["top1_ci_low"], out["top1_ci_high"]) == (0.0, 1.0)
    assert (out["mean_rank_ci_low"], out["mean_rank_ci_high"]) == (1.0, 100.0)


def test_summary_rank_interval_without_a_gallery_size_is_cut_at_rank_1_only():
    subs = [{k: v for k, v in _subject(s, 0.5, mean_rank=r).items() if k != "n_test"}
            for s, r in ((1, 1.5), (2, 90.0))]
    low, high = summarize(subs)["mean_rank_ci_low"], summarize(subs)["mean_rank_ci_high"]
    t = 12.706204736174707  # Student t, 1 degree of freedom
    assert low == 1.0 and high == pytest.approx(45.75 + t * np.std([1.5, 90], ddof=1) / 2 ** 0.5)


def test_summary_interval_of_a_metric_one_subject_lacks_is_null():
    """The first subject's keys decide which intervals the summary has; a subject without
    the metric (a gallery too small for it) makes that interval null, not absent."""
    subs = [_subject(1, 0.2, ten_way=0.4), _subject(2, 0.3)]
    out = summarize(subs)
    assert out["ten_way_ci_low"] is None and out["ten_way_ci_high"] is None


def test_summary_of_one_subject_keeps_its_own_intervals():
    (sub,) = subs = [_subject(4, 0.2)]
    out = summarize(subs)
    for key in ("ci_method", "top1_ci_low", "top1_ci_high", "top1_exact_low",
                "top1_exact_high"):
        assert out[key] == sub[key]


def test_headline_shows_the_top1_and_top5_intervals():
    assert {"top1_ci_low", "top1_ci_high", "top5_ci_low", "top5_ci_high"} <= set(HEADLINE)
    metrics = {**subject_metrics(np.eye(5), subject=1, protocol="intra", mapper="ridge"),
               **subject_intervals(np.eye(5), resamples=100, seed=0)}
    shown = headline(metrics)
    assert shown["top1_ci_low"] == shown["top1_ci_high"] == 1.0
    assert "top1_exact_low" not in shown and "ci_method" not in shown


def test_subject_metrics_describe_the_run_and_a_zero_ceiling_has_no_fraction():
    m = subject_metrics(np.eye(5), subject=4, protocol="inter", mapper="contrastive",
                        ceiling={"top1": 0.0, "top5": 0.2})
    assert (m["subject"], m["protocol"], m["mapper"]) == (4, "inter", "contrastive")
    assert m["ideal_top1"] == 0.0 and m["ideal_top5"] == 0.2 and m["top1_of_ideal"] is None


def test_summarize_real_subjects_against_a_loop_over_keys():
    """Every metric of subject_metrics, in its own order: the mean and the sample sd over
    subjects; n_test is the largest gallery and stays an integer."""
    rng = np.random.default_rng(5)
    per_subject = [subject_metrics(rng.normal(size=(n, n)) + 2 * np.eye(n), subject=s,
                                   protocol="inter", mapper="ridge")
                   for s, n in ((1, 12), (2, 12), (5, 10))]
    out = summarize(per_subject)
    assert (out["protocol"], out["mapper"], out["subjects"], out["n_subjects"]) == (
        "inter", "ridge", [1, 2, 5], 3)
    assert out["n_test"] == 12 and type(out["n_test"]) is int and "n_test_sd" not in out
    for key in per_subject[0]:
        if key in ("subject", "protocol", "mapper", "n_test"):
            continue
        values = [m[key] for m in per_subject]
        if any(v is None for v in values):
            assert out[key] is None, key
            continue
        assert out[key] == pytest.approx(sum(values) / 3), key
        if key.endswith("_chance"):
            assert f"{key}_sd" not in out, key
        else:
            mean = sum(values) / 3
            sd = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
            assert out[f"{key}_sd"] == pytest.approx(sd), key
    assert out["fifty_way"] is None and out["ten_way"] is not None


def test_summarize_a_metric_null_for_a_later_subject_is_null():
    a = {"subject": 1, "top1": 0.2, "ideal_top1": 0.5}
    b = {"subject": 2, "top1": 0.4, "ideal_top1": None}
    out = summarize([a, b])
    assert out["ideal_top1"] is None and "ideal_top1_sd" not in out
    assert out["top1"] == pytest.approx(0.3)


def test_headline_keeps_the_compared_scores_that_are_not_null():
    m = subject_metrics(np.eye(8), subject=1, protocol="intra", mapper="ridge",
                        ceiling={"top1": 0.5, "top5": 0.9})  # 8 images: no top10
    assert headline(m) == {"top1": 1.0, "top5": 1.0, "two_way": 1.0, "mean_rank": 1.0,
                           "n_test": 8, "ideal_top1": 0.5}
    summary = headline(summarize([m, m]))
    assert list(summary) == ["top1", "top1_ci_low", "top1_ci_high", "top5", "top5_ci_low",
                             "top5_ci_high", "two_way", "mean_rank", "n_test", "n_subjects",
                             "top1_sd", "top5_sd", "ideal_top1"]  # t intervals of 2 subjects
    assert summary["n_subjects"] == 2 and summary["top1_sd"] == 0.0


def test_layer_metrics_name_the_layer_and_each_candidates_score():
    from neurovision.evaluation import layer_metrics

    assert layer_metrics({"layer": "final", "val_top1": None}) == {"layer": "final"}
    assert layer_metrics({"layer": ["final", "0.5"]}) == {"layer": "final+0.5"}
    assert layer_metrics({"layer": "0.5", "val_top1": {"final": 0.25, "0.5": 0.375}}) == {
        "layer": "0.5", "val_top1_final": 0.25, "val_top1_0.5": 0.375}


def test_the_summary_names_one_layer_or_each_subjects():
    base = {"protocol": "intra", "mapper": "ridge", "top1": 0.5}
    same = summarize([{**base, "subject": 1, "layer": "0.5"},
                      {**base, "subject": 2, "layer": "0.5"}])
    assert same["layer"] == "0.5"
    mixed = summarize([{**base, "subject": 1, "layer": "0.5"},
                       {**base, "subject": 3, "layer": "final"},
                       {**base, "subject": 4, "layer": "0.5"}])
    assert mixed["layer"] == "sub-1:0.5,sub-3:final,sub-4:0.5"
    assert "layer" not in summarize([{**base, "subject": 1}])
    assert "layer_sd" not in mixed and mixed["top1"] == 0.5
