"""The README's Guarantees section points only at tests that exist, and docs/guarantees.md
lists exactly the rows of the bad-input table."""

from __future__ import annotations

import re
import subprocess
import sys

from test_bad_inputs import ROWS

from conftest import ROOT


def guarantees_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Guarantees\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_every_guarantee_points_to_a_test_that_exists():
    section = guarantees_section()
    rows = [line for line in section.splitlines()
            if line.startswith("| ") and not line.startswith(("| promise", "| ---"))]
    assert len(rows) >= 8
    ids = []
    for row in rows:
        found = re.findall(r"`(tests/[\w/]+\.py::[\w\[\]\-]+)`", row)
        assert found, f"a guarantee without a test: {row[:80]}"
        ids += found
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *sorted(set(ids))],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    collected = set(proc.stdout.split())
    for node in ids:
        assert node in collected or any(c.startswith(f"{node}[") for c in collected), node


def test_docs_list_every_row_of_the_bad_input_table():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    listed = re.findall(r"^\| [\w@]+ \| `([\w-]+)` \|", text, flags=re.M)
    assert sorted(listed) == sorted(r.id for r in ROWS)
