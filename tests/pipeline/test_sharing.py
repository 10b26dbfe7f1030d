"""A team's workflow, the way a user runs it: results shared through a DVC remote (push from
one clone, pull into a fresh one, nothing reruns), and experiments queued and run two at a
time, sharing the embed chunk cache outside the workspace (a mapper-only experiment embeds
nothing; one that adds a layer embeds only that layer)."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest

from conftest import TINY_DEMO, copy_project, dvc, project_cache, run_queue, write_params

pytestmark = pytest.mark.integration

SMALL = {**TINY_DEMO, "n_train_concepts": 10, "n_test": 8, "test_reps": 4, "image_size": 32}
OUTPUTS = ("data", "embeds", "models", "metrics", "bundle")


def snapshot(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for folder in OUTPUTS for p in sorted((root / folder).rglob("*")) if p.is_file()}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def git(root, *args) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def chunks(root) -> list[str]:
    return sorted(p.name for p in (project_cache(root) / "embed").glob("*.npy"))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("sharing") / "lab")
    write_params(root / "params.yaml", data={"source": "demo", "subjects": [1], "local_dir": None,
                                             "demo": SMALL},
                 pca={"n_components": 8}, embed={"batch_size": 8})
    dvc(root, "repro")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline")
    return root


def test_push_then_a_fresh_clone_pulls_every_output_and_reruns_nothing(project, tmp_path):
    remote = tmp_path / "team-remote"
    dvc(project, "remote", "add", "--default", "team", str(remote))
    git(project, "commit", "-qam", "the team's remote")
    dvc(project, "push")
    assert any(remote.rglob("*")), "nothing was pushed"

    clone = tmp_path / "colleague"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert snapshot(clone) == {}  # git carries no outputs
    dvc(clone, "pull")
    assert snapshot(clone) == snapshot(project)
    out = dvc(clone, "repro").stdout
    assert ran(out) == set() and "up to date" in out, out
    assert "up to date" in dvc(clone, "status").stdout
    assert not (project_cache(clone) / "embed").exists()  # nothing was embedded there


def test_two_queued_experiments_run_in_parallel_and_share_the_embed_cache(project):
    before = chunks(project)
    assert len(before) == 2  # the final layer: one chunk of training, one of test images
    dvc(project, "exp", "run", "--queue", "-n", "alpha-10", "-S", "train.ridge.alpha=10")
    dvc(project, "exp", "run", "--queue", "-n", "half-depth", "-S", "embed.layers=[final,0.5]",
        "-S", "train.layer=0.5")
    started, status = run_queue(project, jobs=2)
    assert "Started '2' new experiments task queue workers" in started, started
    finished = {line.split()[1]: line.split()[-1] for line in status.splitlines()
                if line.split() and line.split()[-1] in ("Success", "Failed")}
    assert finished == {"alpha-10": "Success", "half-depth": "Success"}, status

    mapper_only = dvc(project, "queue", "logs", "alpha-10").stdout
    assert {"train@1", "evaluate@1"} <= ran(mapper_only)
    assert "embed" not in ran(mapper_only) and "embed:" not in mapper_only  # embeds nothing

    layer = dvc(project, "queue", "logs", "half-depth").stdout
    assert "embed" in ran(layer)
    # per split, the final layer's chunk came from the cache the workspace run filled; only
    # the new layer was computed
    assert layer.count("embed: 1 of 2 chunks found in the cache") == 2, layer
    assert layer.count("layers ['0.5'] (block 6 of 12") == 2, layer
    after = chunks(project)
    assert set(before) < set(after) and len(after) == 4

    table = dvc(project, "exp", "show", "--csv").stdout
    assert "alpha-10" in table and "half-depth" in table
