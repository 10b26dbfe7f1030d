"""Several subjects, both protocols, and the experiment workflow, through the real dvc CLI."""

import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def set_subjects(root, subjects):
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["subjects"] = subjects
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("subjects"))
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1, 2, 3], "local_dir": None,
                       "demo": TINY_DEMO},
                 pca={"n_components": 16}, train={"pls": {"n_components": 8}})
    return root


def test_three_subjects_one_embedding_then_add_a_fourth(project):
    out = dvc(project, "repro").stdout
    per_subject = {"download", "preprocess", "erp", "trainset", "train", "evaluate"}
    every_stage = set(dvc(project, "stage", "list", "--name-only").stdout.split())
    assert {f"{stage}@{s}" for stage in per_subject for s in (1, 2, 3)} <= every_stage
    assert not {s for s in every_stage if "@4" in s}
    assert ran(out) == every_stage
    assert out.count("Running stage 'embed'") == 1

    summary = json.loads((project / "metrics/details.json").read_text())
    subs = [json.loads((project / f"metrics/subjects/sub-{s}/details.json").read_text())
            for s in (1, 2, 3)]
    assert summary["subjects"] == [1, 2, 3] and summary["n_subjects"] == 3
    for key in ("top1", "top5", "two_way", "mean_rank"):
        vals = [m[key] for m in subs]
        assert summary[key] == pytest.approx(sum(vals) / 3)
        mean = sum(vals) / 3
        sd = (sum((v - mean) ** 2 for v in vals) / 2) ** 0.5
        assert summary[f"{key}_sd"] == pytest.approx(sd)
    assert len({m["top1"] for m in subs} | {m["mean_rank"] for m in subs}) > 1  # subjects differ

    set_subjects(project, [1, 2, 3, 4])
    out = dvc(project, "repro").stdout
    # subject 4's stages, the pool manifest (unchanged under intra, so trainset@1-3 stay
    # up to date) and the stages that gather every subject's results
    assert ran(out) == {"check", "download@4", "preprocess@4", "erp@4", "pool", "trainset@4",
                        "train@4", "evaluate@4", "summarize"} | ({"bundle"} & ran(out))
    assert json.loads((project / "metrics/retrieval.json").read_text())["n_subjects"] == 4


def test_inter_subject_protocol(project):
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "four subjects")
    out = dvc(project, "exp", "run", "-S", "train.protocol=inter").stdout
    assert "Running stage 'embed'" not in out and "Running stage 'erp@1'" not in out
    for s in (1, 2, 3, 4):
        info = json.loads((project / f"data/trainsets/sub-{s}/info.json").read_text())
        assert info["protocol"] == "inter"
        assert info["training_subjects"] == [o for o in (1, 2, 3, 4) if o != s]
        m = json.loads((project / f"metrics/subjects/sub-{s}/details.json").read_text())
        assert m["protocol"] == "inter" and 0 <= m["top1"] <= 1
    summary = json.loads((project / "metrics/details.json").read_text())
    assert summary["protocol"] == "inter" and summary["n_subjects"] == 4
    # back to the committed intra baseline for the next test
    git(project, "checkout", "--", "params.yaml")
    dvc(project, "checkout", "--force")


def test_queue_sweep_compare_and_plots(project, tmp_path):
    dvc(project, "exp", "run", "--queue", "-S", "train.mapper=ridge,pls")
    dvc(project, "queue", "start")
    deadline = time.time() + 900
    while time.time() < deadline:
        status = dvc(project, "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert status.count("Success") >= 2, status
    names = re.findall(r"^\w+\s+(\S+)\s+.*Success", status, flags=re.M)
    assert len(names) >= 2
    for name in names[-2:]:
        log = dvc(project, "queue", "logs", name).stdout
        # only train, evaluate and summarize run in a mapper sweep
        assert set(re.findall(r"Running stage '([^'@]+)", log)) <= {
            "check", "train", "evaluate", "summarize", "bundle"}, log

    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    exps = [rev for row in shown for e in (row.get("experiments") or []) for rev in e["revs"]]
    by_name = {rev["name"]: rev for rev in exps}
    mappers = {by_name[n]["data"]["params"]["params.yaml"]["data"]["train"]["mapper"]
               for n in names[-2:]}
    assert mappers == {"ridge", "pls"}
    for n in names[-2:]:
        assert by_name[n]["data"]["metrics"]["metrics/retrieval.json"]["data"]["top1"] is not None

    # the README's restricted view: experiment, mapper, protocol, summary top-1 / top-5 only
    table = dvc(project, "exp", "show", "--md", "--drop", ".*", "--keep",
                r"Experiment|train\.mapper|train\.protocol|^metrics/retrieval\.json:(top1|top5)$"
                ).stdout
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Experiment", "metrics/retrieval.json:top1", "metrics/retrieval.json:top5",
                      "train.mapper", "train.protocol"]
    assert all(n in table for n in names[-2:])

    a, b = names[-2:]
    diff = dvc(project, "metrics", "diff", a, b).stdout
    assert "metrics/retrieval.json" in diff and "top1" in diff

    dvc(project, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    for title in ("Top-K accuracy, subject 1", "Rank of the true image, subject 1",
                  "Top-1 accuracy per subject"):
        assert title in html
    dvc(project, "plots", "diff", a, b, "-o", str(tmp_path / "pdiff"))
    assert "Top-1 accuracy per subject" in (tmp_path / "pdiff" / "index.html").read_text()

    # the paper-style results table from dvc exp show
    env_py = sys.executable
    proc = subprocess.run([env_py, "-m", "neurovision.cli", "table", "--exp", a, b], cwd=project,
                          capture_output=True, text=True,
                          env={"PATH": f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin",
                               "PYTHONPATH": str(project / "src")})
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.strip().splitlines()
    assert rows[0].startswith("| subject |") and a in rows[0] and b in rows[0]
    assert [r.split(" |")[0] for r in rows[2:6]] == ["| sub-01", "| sub-02", "| sub-03",
                                                     "| sub-04"]
    assert rows[6].startswith("| mean ± sd |")
