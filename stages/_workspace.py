"""Imported first by every stage script: puts this workspace's ``src/`` first on sys.path.

DVC decides what to rerun from the hashes of this workspace's files (each stage's deps), so a
stage must run this workspace's library, not whichever ``neurovision`` happens to be
installed (an editable install of another clone, say), also in the temporary workspaces of
``dvc exp run --queue`` and ``--temp``.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
if sys.path[:1] != [SRC]:
    sys.path.insert(0, SRC)
