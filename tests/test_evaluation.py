"""What evaluate and summarize write, against brute-force references on small matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurovision.evaluation import (
    headline,
    per_subject_rows,
    rank_histogram,
    subject_metrics,
    summarize,
    topk_rows,
    trial_records,
)


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
    assert list(summary) == ["top1", "top5", "two_way", "mean_rank", "n_test", "n_subjects",
                             "top1_sd", "top5_sd", "ideal_top1"]
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
