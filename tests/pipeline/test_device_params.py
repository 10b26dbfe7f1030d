"""embed.device and the trainable mappers' device, through ``dvc repro`` / ``dvc exp run``:
``auto`` without a GPU embeds on the CPU and says so, ``cpu`` gives the same bytes, and a
device the machine lacks fails in the check stage with one line naming the parameter,
before DVC deletes any output.

CUDA_VISIBLE_DEVICES="" hides any GPU from torch, so these hold on a GPU machine too.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration

SMALL = {**TINY_DEMO, "n_train_concepts": 10, "n_test": 8, "test_reps": 4, "image_size": 32}
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}
OUTPUTS = ("data", "embeds", "models", "metrics")


def snapshot(root, folders=OUTPUTS) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted((root / folder).rglob("*")) if p.is_file()
            and not p.relative_to(root).as_posix().startswith("data/params/")}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def restore(root) -> None:
    """Back to the committed baseline (params, lock and outputs)."""
    git(root, "checkout", "--", "params.yaml", "dvc.lock")
    dvc(root, "checkout", "--force")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("devices"))
    write_params(root / "params.yaml", data={"source": "demo", "subjects": [1], "local_dir": None,
                                             "demo": SMALL},
                 pca={"n_components": 8}, embed={"batch_size": 8, "device": "auto"},
                 train={"mapper": "align", "align": {"epochs": 3, "patience": 3,
                                                     "batch_size": 32, "device": "auto"}})
    proc = dvc(root, "repro", env=NO_GPU)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline on auto")
    return root, proc.stdout + proc.stderr


def test_auto_without_a_gpu_runs_on_the_cpu_and_says_so(project):
    root, log = project
    assert "INFO neurovision.devices: embed.device auto: no CUDA device here, using cpu" in log
    assert ("INFO neurovision.devices: train.align.device auto: no CUDA device here, using cpu"
            in log)
    prov = json.loads((root / "embeds/clip/provenance.json").read_text())
    assert prov["device"] == "cpu" and prov["precision"] == "float32"


def test_cpu_gives_the_bytes_auto_gave(project, tmp_path):
    root, _ = project
    before = snapshot(root, ("embeds", "models", "metrics"))
    fresh = tmp_path / "fresh-cache"  # nothing cached: the images are embedded again
    try:
        out = dvc(root, "exp", "run", "-S", "embed.device=cpu", "-S", "train.align.device=cpu",
                  env={**NO_GPU, "NEUROVISION_CACHE": str(fresh)}).stdout
        assert {"embed", "train@1"} <= ran(out)
        assert list((fresh / "embed").glob("*.npy")), "the embed stage did not compute"
        # the same embeddings: DVC finds pca's inputs unchanged and does not rerun it
        assert "pca" not in ran(out)
        assert snapshot(root, ("embeds", "models", "metrics")) == before
    finally:
        restore(root)


@pytest.mark.parametrize("setting, line", [
    ("embed.device=cuda", "params: embed.device: 'cuda' cannot be used here: torch finds no "
     "CUDA device on this machine (set embed.device: cpu, or auto to use a GPU when there "
     "is one)"),
    ("train.align.device=cuda:1", "params: train.align.device: 'cuda:1' cannot be used here: "
     "torch finds no CUDA device on this machine (set train.align.device: cpu, or auto to "
     "use a GPU when there is one)"),
    ("embed.precision=float16", "params: embed.precision: 'float16' does not run on cpu "
     "(embed.device); expected one of ['float32', 'bfloat16', 'int8'] there"),
])
def test_a_device_this_machine_lacks_fails_at_once_and_keeps_every_output(project, setting,
                                                                         line):
    root, _ = project
    before = snapshot(root)
    try:
        proc = dvc(root, "exp", "run", "-S", setting, check=False, env=NO_GPU)
        assert proc.returncode != 0
        log = proc.stdout + proc.stderr
        errors = [x for x in log.splitlines() if x.startswith("ERROR neurovision")]
        assert errors == [f"ERROR neurovision: {line}"], log
        assert ran(proc.stdout) == {"check"}  # nothing else started, nothing was deleted
        assert snapshot(root) == before
    finally:
        restore(root)
