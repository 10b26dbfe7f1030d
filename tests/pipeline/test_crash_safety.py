"""Crash safety: SIGKILL a stage mid-run, then `dvc repro` finishes with the same numbers.

Each test copies the project into a temporary git repository, starts the real `dvc repro`
in its own process group, waits until a stage is demonstrably mid-work, kills the whole
group (dvc, the stage, its worker processes) with SIGKILL, and checks that

- the stage's declared output does not exist: nothing partial sits where DVC would take it;
- the next `dvc repro` completes;
- the md5 of every output of every stage (as dvc.lock records them) and every metrics and
  per-trial file are identical to those of an uninterrupted run in a fresh copy;
- no temporary file of the killed writer is left anywhere.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TINY_DEMO, copy_project, dvc, project_cache, write_params

pytestmark = pytest.mark.integration

#: TINY_DEMO with fewer images (48 training, 10 test): embedding takes seconds.
DEMO = {**TINY_DEMO, "n_train_concepts": 12, "n_test": 10}

#: Makes stages/train.py write half of its model file, then wait to be killed: the kill
#: lands, deterministically, in the middle of writing the output.
PAUSE_HOOK = '''
import os, sys
_marker = os.environ.get("NEUROVISION_TEST_PAUSE_DUMP")
if _marker and sys.argv and sys.argv[0].replace(os.sep, "/").endswith("stages/train.py"):
    import pathlib, time
    _write = pathlib.Path.write_bytes

    def _half_then_pause(self, data):
        if not self.name.startswith(".sub-1.skops."):  # the model file's temporary
            return _write(self, data)
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        with open(_marker, "w") as f:
            f.write(f"{self}\\n{len(data)}")
        time.sleep(3600)

    pathlib.Path.write_bytes = _half_then_pause
'''


def configure(root: Path) -> Path:
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1], "local_dir": None, "demo": DEMO},
                 pca={"n_components": 16}, embed={"batch_size": 8},
                 train={"pls": {"n_components": 8}})
    return root


def results(root: Path) -> dict[str, object]:
    """The md5 of every stage output (from dvc.lock) and the bytes of every file under
    metrics/: what a rerun must reproduce exactly."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    out: dict[str, object] = {
        f"{stage}:{o['path']}": o["md5"]
        for stage, entry in lock["stages"].items() for o in entry.get("outs", [])}
    assert any(key.startswith("train@1:") for key in out) and len(out) > 10
    for p in sorted((root / "metrics").rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def temporaries(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.endswith((".tmp", ".old"))
                  and not p.relative_to(root).as_posix().startswith((".git/", ".dvc/")))


def start_repro(root: Path, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(root / "src"), "DVC_NO_ANALYTICS": "1",
           "NEUROVISION_CACHE": str(project_cache(root)), **(extra_env or {})}
    return subprocess.Popen([str(bindir / "dvc"), "repro"], cwd=root, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(proc: subprocess.Popen, log: Path, condition, what: str, timeout: float = 600):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        text = log.read_text(errors="replace")
        found = condition(text)
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"dvc repro ended ({proc.returncode}) before {what}:\n{text}")
        time.sleep(0.05)
    kill_group(proc)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')}")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL dvc and everything it started (the stage and its workers)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(100):  # children of the group may take a moment to be reaped
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, Path]:
    """Fresh copies of the project, all made at once (so they hold the same code)."""
    return {name: configure(copy_project(tmp_path_factory.mktemp(name)))
            for name in ("uninterrupted", "killed-embed", "killed-train")}


@pytest.fixture(scope="module")
def reference(copies) -> dict[str, object]:
    """An uninterrupted `dvc repro` from scratch."""
    dvc(copies["uninterrupted"], "repro")
    return results(copies["uninterrupted"])


def test_sigkill_during_embedding_then_repro_gives_the_same_results(copies, reference):
    root = copies["killed-embed"]
    log = root.parent / "repro.log"
    proc = start_repro(root, log)

    def mid_embedding(text: str):
        if "Running stage 'embed'" not in text:
            return None
        progress = re.findall(r"(\d+)/(\d+) \[", text.split("Running stage 'embed'")[-1])
        done = [(int(n), int(total)) for n, total in progress if 0 < int(n) < int(total)]
        temp = list((root / "embeds").glob(".clip.*.tmp"))
        return (done[-1], temp) if done and temp else None

    (n, total), temp = wait_for(proc, log, mid_embedding, "the embed stage is mid-work")
    kill_group(proc)
    assert 0 < n < total
    # the killed run was writing into a temporary directory; the output itself is absent
    assert temp and not (root / "embeds" / "clip").exists()

    dvc(root, "repro")
    assert results(root) == reference
    assert temporaries(root) == []


def test_sigkill_while_train_writes_its_model_then_repro_gives_the_same_results(
        copies, reference):
    root = copies["killed-train"]
    hook = root.parent / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    marker = root.parent / "train-is-writing"
    log = root.parent / "repro.log"
    proc = start_repro(root, log, {"NEUROVISION_TEST_PAUSE_DUMP": str(marker),
                                   "PYTHONPATH": f"{hook}{os.pathsep}{root / 'src'}"})
    wait_for(proc, log, lambda text: marker.exists() and marker.read_text().count("\n") == 1,
             "train@1 is writing its model")
    partial, full_size = marker.read_text().split("\n")
    partial = root / partial if not Path(partial).is_absolute() else Path(partial)
    assert "Running stage 'train@1'" in log.read_text(errors="replace")
    # half the model's bytes are on disk, in a temporary file next to the output
    assert partial.parent == root / "models" and partial.name.startswith(".sub-1.skops.")
    assert 0 < partial.stat().st_size < int(full_size)
    kill_group(proc)
    assert not (root / "models" / "sub-1.skops").exists()

    dvc(root, "repro")
    assert results(root) == reference
    assert temporaries(root) == []
