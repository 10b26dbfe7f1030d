"""The real pipeline, end to end, through the dvc command line in a temporary git repo."""

import json
import re

import pytest

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration

KEYS = ("top1", "top5", "top10", "two_way", "four_way", "ten_way", "fifty_way", "mean_rank",
        "median_rank", "n_test")


#: Stages that gather all subjects' results; they rerun whenever any subject's result changes.
#: (check reruns on every change of params.yaml: it validates the file first.)
GATHER = {"summarize", "bundle", "check"}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("project"))
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1], "local_dir": None, "demo": TINY_DEMO},
                 pca={"n_components": 16}, train={"pls": {"n_components": 8}})
    return root


def test_repro_from_scratch_then_nothing_to_do(project):
    out = dvc(project, "repro").stdout
    every_stage = set(dvc(project, "stage", "list", "--name-only").stdout.split())
    assert {"check", "download_images", "download@1", "preprocess@1", "erp@1", "embed", "pca",
            "pool", "trainset@1",
            "train@1", "evaluate@1", "summarize"} <= every_stage
    assert ran(out) == every_stage
    metrics = json.loads((project / "metrics" / "details.json").read_text())
    for key in KEYS:
        assert key in metrics
        assert key == "n_test" or f"{key}_chance" in metrics
    assert metrics["n_test"] == TINY_DEMO["n_test"] and metrics["fifty_way"] is None
    for key in ("top1", "top5", "top10", "two_way", "four_way", "ten_way"):
        assert 0 <= metrics[key] <= 1
    assert metrics["top5"] > 1.5 * metrics["top5_chance"]
    assert metrics["two_way"] > 0.65
    assert metrics["mean_rank"] < 0.7 * metrics["mean_rank_chance"]
    trials = json.loads((project / "metrics/subjects/sub-1/trials.json").read_text())
    assert len(trials) == TINY_DEMO["n_test"] and len(trials[0]["top_indices"]) == 10
    second = dvc(project, "repro").stdout
    assert ran(second) == set()
    assert "up to date" in second


def test_dag_has_the_data_flow(project):
    dag = dvc(project, "dag", "--dot").stdout
    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', dag))
    for edge in [("download_images", "embed"), ("download@1", "preprocess@1"),
                 ("preprocess@1", "erp@1"),
                 ("erp@1", "trainset@1"), ("erp@1", "pool"), ("pool", "trainset@1"),
                 ("embed", "pca"), ("pca", "train@1"), ("trainset@1", "train@1"),
                 ("train@1", "evaluate@1"), ("pca", "evaluate@1"), ("erp@1", "evaluate@1"),
                 ("evaluate@1", "summarize")]:
        assert edge in edges, (edge, sorted(edges))
    # the train stage never sees test data
    assert ("download@1", "train@1") not in edges


def test_experiment_with_another_mapper_reruns_only_train_and_evaluate(project):
    dvc(project, "repro")
    subprocess_git(project, "add", "-A")
    subprocess_git(project, "commit", "-qm", "baseline")
    out = dvc(project, "exp", "run", "-S", "train.mapper=pls").stdout
    # train and evaluate, plus the stages that gather every subject's results
    assert ran(out) == {"train@1", "evaluate@1"} | (GATHER & ran(out))
    diff = dvc(project, "metrics", "diff", "--json").stdout
    changed = json.loads(diff)["metrics/retrieval.json"]
    assert "top1" in changed and changed["top1"]["old"] is not None
    metrics = json.loads((project / "metrics" / "details.json").read_text())
    assert metrics["mapper"] == "pls"
    assert metrics["two_way"] > 0.6


def subprocess_git(cwd, *args):
    import subprocess
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_evaluate_outputs_agree_with_each_other_and_with_a_brute_force_ranking(project):
    """retrieval.json, trials.json, topk.csv and ranks.csv of evaluate@1, recomputed here from
    the saved mapper, the test features and the gallery with plain numpy."""
    import csv

    import numpy as np

    from neurovision.mappers import load_mapper

    dvc(project, "repro")
    res = project / "metrics/subjects/sub-1"
    metrics = json.loads((res / "details.json").read_text())
    assert json.loads((res / "retrieval.json").read_text()) == {
        k: metrics[k] for k in ("layer", "top1", "top1_ci_low", "top1_ci_high", "top5",
                                "top5_ci_low", "top5_ci_high", "top10", "two_way",
                                "mean_rank", "n_test", "ideal_top1")}
    trials = json.loads((res / "trials.json").read_text())
    model = load_mapper(project / "models/sub-1.skops")  # written by train@1
    pred = model.predict(np.load(project / "data/features/test/sub-1.npy"))
    gallery = np.load(project / "embeds/pca/test/final.npy").astype(np.float64)
    np.testing.assert_array_equal(np.load(res / "gallery.npy"), gallery)  # what was ranked
    pred = pred / np.linalg.norm(pred, axis=1, keepdims=True)
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    scores = pred @ gallery.T
    n = len(scores)
    rank = np.array([1 + sum(scores[i, j] > scores[i, i] for j in range(n)) for i in range(n)])
    assert [t["rank"] for t in trials] == rank.tolist()
    for t in trials:
        i = t["trial"]
        best = sorted(range(n), key=lambda j: -scores[i, j])[:len(t["top_indices"])]
        assert t["top_indices"] == best
        np.testing.assert_allclose(t["top_scores"], scores[i, best], atol=1e-6)
        np.testing.assert_allclose(t["true_score"], scores[i, i], atol=1e-6)
    # the metrics follow from the per-trial ranks (no ties among float scores)
    from_trials = np.array([t["rank"] for t in trials])
    for key, k in (("top1", 1), ("top5", 5), ("top10", 10)):
        assert metrics[key] == pytest.approx(np.mean(from_trials <= k))
    assert metrics["mean_rank"] == pytest.approx(from_trials.mean())
    assert metrics["median_rank"] == pytest.approx(np.median(from_trials))
    with open(res / "topk.csv") as f:
        topk = list(csv.DictReader(f))
    assert [int(r["k"]) for r in topk] == list(range(1, n + 1))
    for r in topk:
        k = int(r["k"])
        assert float(r["accuracy"]) == pytest.approx(np.mean(from_trials <= k))
        assert float(r["chance"]) == pytest.approx(k / n)
    with open(res / "ranks.csv") as f:
        hist = list(csv.DictReader(f))
    assert sum(int(r["count"]) for r in hist) == n
    for r in hist:
        lo, hi = (int(x) for x in r["rank"].split("-"))
        assert int(r["count"]) == int(((from_trials >= lo) & (from_trials <= hi)).sum())
