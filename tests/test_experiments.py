"""Reading DVC experiments: ``dvc exp show --json`` parsed into Experiment records."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from neurovision import experiments
from neurovision.errors import DataError, NeurovisionError
from neurovision.experiments import (
    SUBJECT_FILE,
    SUMMARY_FILE,
    load_experiments,
    parse_exp_show,
)


def row(rev, name, params, metrics, exps=None):
    """One revision as ``dvc exp show --json`` (DVC 3) prints it, trimmed."""
    return {"rev": rev, "name": name, "error": None, "experiments": exps,
            "data": {"rev": rev, "params": {"params.yaml": {"data": params}},
                     "metrics": {p: {"data": d} for p, d in metrics.items()}}}


def subject_file(s: int) -> str:
    return f"metrics/subjects/sub-{s}/retrieval.json"


EXP_SHOW = [
    row("workspace", None, {"train": {"mapper": "pls"}},
        {SUMMARY_FILE: {"top1": 0.375, "subjects": [1]}, subject_file(1): {"top1": 0.375}}),
    row("b7dcbfe7d5e0aaaa", "main", {"train": {"mapper": "ridge"}}, {}, exps=[
        {"name": "pls-exp", "executor": None, "revs": [
            row("b303bfc69e35bbbb", "pls-exp", {"train": {"mapper": "pls", "seed": 1}},
                {SUMMARY_FILE: {"top1": 0.4, "subjects": [1, 2]},
                 subject_file(1): {"top1": 0.3}, subject_file(2): {"top1": 0.5},
                 subject_file(3): {"top1": 0.9}})]},  # sub-3: a stale file, not run
        {"name": "only-subjects", "revs": [
            row("c1c1c1c1", None, {}, {subject_file(2): {"top1": 0.2}})]},
        {"name": "failed", "revs": [row("d2d2d2d2", "failed", {}, {})]}]),
]


def test_every_revision_with_metrics_becomes_a_record():
    exps = parse_exp_show(EXP_SHOW)
    assert [(e.name, e.rev) for e in exps] == [
        ("workspace", "workspace"), ("pls-exp", "b303bfc69e35bbbb"),
        ("only-subjects", "c1c1c1c1")]  # main and failed: no metrics
    ws, pls, subj = exps
    assert ws.is_workspace and not pls.is_workspace
    assert pls.params == {"train": {"mapper": "pls", "seed": 1}}
    assert pls.summary == {"top1": 0.4, "subjects": [1, 2]}
    assert pls.per_subject == {1: {"top1": 0.3}, 2: {"top1": 0.5}}  # only those it ran
    assert subj.summary == {} and subj.per_subject == {2: {"top1": 0.2}}
    assert ws.per_subject == {1: {"top1": 0.375}}


def test_a_revision_listed_twice_is_kept_once_and_unnamed_ones_get_a_short_rev():
    twice = [*EXP_SHOW, row("b303bfc69e35bbbb", "again", {}, {SUMMARY_FILE: {"top1": 0.4}})]
    assert [e.name for e in parse_exp_show(twice)].count("pls-exp") == 1
    assert "again" not in [e.name for e in parse_exp_show(twice)]
    (e,) = parse_exp_show([row("0123456789abcdef", None, {}, {SUMMARY_FILE: {"top1": 0.1}})])
    assert e.name == "0123456"
    assert parse_exp_show([]) == []


def test_not_exp_show_output_is_refused_with_its_source():
    with pytest.raises(DataError, match=r"x\.json: expected a list of revisions .*got dict"):
        parse_exp_show({"rev": "workspace"}, source="x.json")
    with pytest.raises(DataError, match="got list"):
        parse_exp_show([1, 2])


def test_the_metric_files_are_those_dvc_yaml_declares():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    declared = [next(iter(m)) if isinstance(m, dict) else m
                for spec in stages.values() for m in spec.get("do", spec).get("metrics", [])]
    assert SUMMARY_FILE in declared
    per_subject = [m.replace("${item}", "7") for m in declared if "${item}" in m]
    assert any(SUBJECT_FILE.search(m) and SUBJECT_FILE.search(m).group(1) == "7"
               for m in per_subject), declared


# --------------------------------------------------------------------------------------
# Running dvc exp show


def _git_dvc_repo(path: Path) -> Path:
    """A tiny git + DVC project with one stage declaring the summary and subject metrics."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    run = lambda *cmd: subprocess.run(cmd, cwd=path, check=True, capture_output=True,  # noqa: E731
                                      text=True, env=env)
    path.mkdir()
    run("git", "init", "-q")
    run("git", "config", "user.email", "test@example.invalid")
    run("git", "config", "user.name", "neurovision tests")
    run(str(Path(sys.executable).parent / "dvc"), "init", "-q")
    (path / "params.yaml").write_text("train:\n  mapper: ridge\n  seed: 0\n")
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": "true", "params": ["train"],
        "metrics": [{SUMMARY_FILE: {"cache": False}},
                    {subject_file(1): {"cache": False}}]}}}))
    (path / "metrics/subjects/sub-1").mkdir(parents=True)
    (path / SUMMARY_FILE).write_text(json.dumps({"top1": 0.25, "subjects": [1]}))
    (path / subject_file(1)).write_text(json.dumps({"top1": 0.25, "top5": 0.5}))
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    (path / "params.yaml").write_text("train:\n  mapper: pls\n  seed: 0\n")
    (path / subject_file(1)).write_text(json.dumps({"top1": 0.75, "top5": 1.0}))
    return path


def test_real_dvc_exp_show_is_parsed(tmp_path):
    repo = _git_dvc_repo(tmp_path / "repo")
    exps = load_experiments(repo)
    by_name = {e.name: e for e in exps}
    ws = by_name["workspace"]
    assert ws.params == {"train": {"mapper": "pls", "seed": 0}}
    assert ws.per_subject == {1: {"top1": 0.75, "top5": 1.0}}
    assert ws.summary == {"top1": 0.25}  # DVC leaves lists (here: subjects) out
    (base,) = [e for e in exps if not e.is_workspace]
    assert re.fullmatch(r"[0-9a-f]{40}", base.rev)
    assert base.params == {"train": {"mapper": "ridge", "seed": 0}}
    assert base.per_subject == {1: {"top1": 0.25, "top5": 0.5}}


def test_dvc_failures_become_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(NeurovisionError, match=f"dvc exp show failed in {tmp_path}: .+"):
        experiments.exp_show(tmp_path)  # not a git repository
    with pytest.raises(NeurovisionError, match=r"dvc exp show failed in .*timed out"):
        experiments.exp_show(tmp_path, timeout=0.001)

    def prints(text):
        return lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=text, stderr="")

    monkeypatch.setattr(experiments.subprocess, "run", prints("no json here"))
    with pytest.raises(NeurovisionError, match="printed no JSON"):
        experiments.exp_show(tmp_path)
    monkeypatch.setattr(experiments.subprocess, "run", prints(json.dumps(EXP_SHOW)))
    assert experiments.exp_show(tmp_path) == EXP_SHOW
    assert next(e.name for e in load_experiments(tmp_path)) == "workspace"


# --------------------------------------------------------------------------------------
# Per-trial files of a run: the workspace, a git revision or an experiment


WRITE_RESULTS = """\
import json, pathlib, yaml
shift = yaml.safe_load(open("params.yaml"))["train"]["seed"]
out = pathlib.Path("metrics")
(out / "subjects/sub-1").mkdir(parents=True, exist_ok=True)
(out / "details.json").write_text(json.dumps({"subjects": [1], "shift": shift}))
(out / "subjects/sub-1/details.json").write_text(json.dumps({"top1": 0.5}))
(out / "subjects/sub-1/trials.json").write_text(json.dumps(
    [{"trial": i, "file": f"{i}.jpg", "rank": i + 1 + shift} for i in range(3)]))
"""


def _dvc_outputs_repo(path: Path) -> Path:
    """A git + DVC project whose one stage writes the files compare reads, as cached
    outputs (as evaluate@N and summarize write them), committed once."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = str(Path(sys.executable).parent / "dvc")
    run = lambda *cmd: subprocess.run(cmd, cwd=path, check=True, capture_output=True,  # noqa: E731
                                      text=True, env=env)
    path.mkdir()
    run("git", "init", "-q")
    run("git", "config", "user.email", "test@example.invalid")
    run("git", "config", "user.name", "neurovision tests")
    run(dvc, "init", "-q")
    (path / "params.yaml").write_text("train:\n  seed: 0\n")
    (path / "write.py").write_text(WRITE_RESULTS)
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": f"{sys.executable} write.py", "deps": ["write.py"], "params": ["train"],
        "outs": ["metrics"]}}}))
    run(dvc, "repro", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    run(dvc, "exp", "run", "-q", "-n", "shifted", "-S", "train.seed=2")
    return path


def test_results_of_a_revision_an_experiment_and_the_workspace(tmp_path):
    repo = _dvc_outputs_repo(tmp_path / "repo")
    ranks = {ref: [t["rank"] for t in experiments.load_results(ref, repo).trials[1]]
             for ref in ("HEAD", "shifted", "workspace")}
    # dvc exp run leaves the experiment's outputs in the workspace
    assert ranks == {"HEAD": [1, 2, 3], "shifted": [3, 4, 5], "workspace": [3, 4, 5]}
    res = experiments.load_results("shifted", repo)
    assert res.ref == "shifted" and res.summary == {"subjects": [1], "shift": 2}
    assert res.metrics == {1: {"top1": 0.5}}
    with pytest.raises(NeurovisionError, match=r"^nosuch: not an experiment, a git revision "
                                               r"or 'workspace' in .*repo"):
        experiments.load_results("nosuch", repo)


def test_missing_or_bad_result_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"^metrics/details\.json \(.*\): not found or not "
                                        r"readable \(expected the outputs of a finished run"):
        experiments.load_results("workspace", tmp_path)
    (tmp_path / "metrics/subjects/sub-2").mkdir(parents=True)
    (tmp_path / "metrics/details.json").write_text(json.dumps({"subjects": []}))
    with pytest.raises(DataError, match=r"details\.json .*expected a 'subjects' list, got \[\]"):
        experiments.load_results("workspace", tmp_path)
    (tmp_path / "metrics/details.json").write_text(json.dumps({"subjects": [2]}))
    (tmp_path / "metrics/subjects/sub-2/details.json").write_text("{}")
    (tmp_path / "metrics/subjects/sub-2/trials.json").write_text("{broken")
    with pytest.raises(DataError, match=r"sub-2/trials\.json \(.*\): expected JSON"):
        experiments.load_results("workspace", tmp_path)
    (tmp_path / "metrics/subjects/sub-2/trials.json").write_text(json.dumps([{"trial": 0}]))
    with pytest.raises(DataError, match=r"sub-2/trials\.json .*a 'rank' each"):
        experiments.load_results("workspace", tmp_path)
