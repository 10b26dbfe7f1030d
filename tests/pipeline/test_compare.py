"""`neurovision compare` on two queued experiments, through the real dvc CLI."""

import json
import subprocess
import sys

import pytest
from dvc.api import read as dvc_read  # (conftest's `dvc` runs the command line)

from conftest import TINY_DEMO, copy_project, dvc, write_params
from test_report import expected_compare_rows, parse_markdown

pytestmark = pytest.mark.integration

SUBJECTS = [1, 2]


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_compare_two_queued_experiments(tmp_path):
    root = copy_project(tmp_path / "project")
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": SUBJECTS, "local_dir": None,
                       "demo": TINY_DEMO},
                 pca={"n_components": 16}, train={"pls": {"n_components": 8}})
    dvc(root, "repro")  # the shared stages once, so the experiments reuse them
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline")
    dvc(root, "exp", "run", "--queue", "-n", "ridge-lo", "-S", "train.ridge.alpha=10")
    dvc(root, "exp", "run", "--queue", "-n", "pls-8", "-S", "train.mapper=pls")
    dvc(root, "exp", "run", "--run-all")

    proc = subprocess.run([sys.executable, "-m", "neurovision.cli", "compare", "ridge-lo",
                           "pls-8"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    header, rows, notes = parse_markdown(proc.stdout)
    assert header[1:4] == ["ridge-lo top-1 %", "pls-8 top-1 %",
                           "pls-8 - ridge-lo, points (95 % CI)"]

    # brute force, from each experiment's trials read through dvc.api
    ranks = {name: {s: [t["rank"] for t in json.loads(dvc_read(
        f"metrics/subjects/sub-{s}/trials.json", repo=str(root), rev=name))]
        for s in SUBJECTS} for name in ("ridge-lo", "pls-8")}
    assert ranks["ridge-lo"] != ranks["pls-8"]
    assert rows == expected_compare_rows(ranks["ridge-lo"], ranks["pls-8"], k=1)
    assert notes[0].startswith("pls-8 vs ridge-lo: top-1 higher in ")

    # the scores are the experiments' own top-1 (no tied cosines), which dvc exp show
    # lists with their 95 % intervals
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    by_name = {rev["name"]: rev["data"]["metrics"] for row in shown
               for e in (row.get("experiments") or []) for rev in e["revs"]}
    for col, name in ((1, "ridge-lo"), (2, "pls-8")):
        for row, s in zip(rows, SUBJECTS):
            m = by_name[name][f"metrics/subjects/sub-{s}/retrieval.json"]["data"]
            assert row[col] == f"{100 * m['top1']:.1f}"
            assert m["top1_ci_low"] <= m["top1"] <= m["top1_ci_high"]
        assert {"top1_ci_low", "top1_ci_high", "top5_ci_low", "top5_ci_high"} <= set(
            by_name[name]["metrics/retrieval.json"]["data"])
