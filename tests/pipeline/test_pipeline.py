"""The real pipeline, end to end, through the dvc command line in a temporary git repo."""

import json
import re

import pytest

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration

KEYS = ("top1", "top5", "top10", "two_way", "four_way", "ten_way", "fifty_way", "mean_rank",
        "median_rank", "n_test")


#: Stages that gather all subjects' results; they rerun whenever any subject's result changes.
GATHER = {"summarize", "bundle"}


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
    assert {"download_images", "download@1", "erp@1", "embed", "pca", "pool", "trainset@1",
            "train@1", "evaluate@1", "summarize"} <= every_stage
    assert ran(out) == every_stage
    metrics = json.loads((project / "metrics" / "retrieval.json").read_text())
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
    for edge in [("download_images", "embed"), ("download@1", "erp@1"),
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
    metrics = json.loads((project / "metrics" / "retrieval.json").read_text())
    assert metrics["mapper"] == "pls"
    assert metrics["two_way"] > 0.6


def subprocess_git(cwd, *args):
    import subprocess
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)
