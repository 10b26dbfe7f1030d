"""The README is executed: its shell blocks run in order, as written, in a temporary copy of
the project (a git repository with one commit, like a fresh clone).

A block may carry a visible marker on the line above its fence:
``<!-- readme-test: skip (REASON) -->`` for the few that need the network, a server that
runs until stopped, or a benchmark's minutes, and ``<!-- readme-test: run "CMD" instead
(REASON) -->`` for the install command (this test runs in an installed environment).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, copy_project, project_cache

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
MARKER = re.compile(r"<!-- readme-test: (?P<what>skip|run \"(?P<cmd>[^\"]+)\" instead) "
                    r"\((?P<why>[^)]+)\) -->\n$")


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    marker: str | None  # None (run as written), "skip", or the command to run instead
    why: str | None


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for m in FENCE.finditer(text):
        if m.group(1) not in ("bash", "sh", "shell"):
            continue
        before = text[:m.start()]
        previous = before.splitlines(keepends=True)[-1] if before else ""
        found = MARKER.fullmatch(previous)
        assert found or "readme-test" not in previous, f"unreadable marker: {previous!r}"
        marker = None
        if found:
            marker = "skip" if found["what"] == "skip" else found["cmd"]
        blocks.append(Block(before.count("\n") + 1, m.group(2), marker,
                            found["why"] if found else None))
    return blocks


def test_markers_are_few_and_say_why():
    blocks = readme_blocks((ROOT / "README.md").read_text())
    marked = [b for b in blocks if b.marker]
    assert len([b for b in blocks if b.marker != "skip"]) >= 6  # the walk-through runs
    assert all(b.why and len(b.why) > 10 for b in marked)
    # the two quickstart commands come first; the first is replaced, the second skipped
    assert blocks[0].marker == "dvc repro" and "dvc repro" in blocks[0].code
    assert blocks[1].marker == "skip" and "pytest" in blocks[1].code


def test_ci_runs_exactly_the_readmes_test_command():
    command = [line for line in readme_blocks((ROOT / "README.md").read_text())[1].code
               .splitlines() if line and not line.startswith("#")]
    assert len(command) == 1
    assert command[0] in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.integration
def test_the_readme_runs_as_written(tmp_path):
    root = copy_project(tmp_path / "clone", keep_lock=True)  # as a fresh clone of main
    for args in (("add", "-A"), ("commit", "-qm", "a fresh clone")):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               NEUROVISION_CACHE=str(project_cache(root)))  # not the user's cache
    report = []
    for block in readme_blocks((ROOT / "README.md").read_text()):
        if block.marker == "skip":
            continue
        code = block.code if block.marker is None else block.marker
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=root, env=env,
                              capture_output=True, text=True)
        report.append(f"README.md:{block.line}: {time.perf_counter() - t0:.0f} s")
        assert proc.returncode == 0, (f"README.md line {block.line} failed "
                                      f"({proc.returncode}):\n{code}\n--- stdout\n"
                                      f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    print("\n".join(report))
    # the walk-through leaves the committed baseline in the workspace
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                            text=True).stdout
    assert not [line for line in status.splitlines() if not line.startswith("??")], status
