"""Which subjects' EEG a subject's mapper is trained on, and the stacked training set.

``intra``: a subject's mapper trains on that subject's own training ERPs.
``inter``: it trains on every *other* subject's training ERPs (leave one subject out) and is
tested on the left-out subject.

The ``pool`` stage writes a small manifest (:func:`pool_manifest`): in ``intra`` mode it is a
constant, so adding a subject does not make the other subjects' stages stale; in ``inter``
mode it lists every subject's training-feature file with its md5, so any change to another
subject's features retrains everyone, and :func:`stack_training_set` verifies each file
against the manifest before using it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurovision.errors import DataError
from neurovision.io import file_hashes, load_npy


def training_subjects(subject: int, subjects: Sequence[int], protocol: str) -> list[int]:
    """``intra``: the subject itself; ``inter``: every other subject (leave-one-out)."""
    if subject not in subjects:
        raise DataError(f"subject {subject} is not in data.subjects {list(subjects)}")
    if protocol == "intra":
        return [subject]
    if protocol == "inter":
        others = [s for s in subjects if s != subject]
        if not others:
            raise DataError(f"train.protocol inter: subject {subject} has no other subject to "
                            f"train on; data.subjects is {list(subjects)}")
        return others
    raise ValueError(f"unknown protocol {protocol!r}")


def features_file(features_dir: str | Path, subject: int) -> Path:
    return Path(features_dir) / f"sub-{subject}.npy"


def md5sum(path: str | Path) -> str:
    return file_hashes(path, ("md5",))["md5"]


def pool_manifest(features_dir: str | Path, subjects: Sequence[int], protocol: str) -> dict:
    """What the ``pool`` stage writes (see the module docstring)."""
    if protocol == "intra":
        return {"protocol": "intra"}
    files = {}
    for s in subjects:
        path = features_file(features_dir, s)
        if not path.is_file():
            raise DataError(f"{path}: training features of subject {s} not found (run erp@{s})")
        files[str(s)] = md5sum(path)
    return {"protocol": protocol, "subjects": list(subjects), "md5": files}


def stack_training_set(features_dir: str | Path, subjects: Sequence[int],
                       manifest: dict | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of all ``subjects``' training features, with each row's image and subject.

    With a ``manifest`` (inter protocol) each file must match its recorded md5.
    """
    xs, rows, subj = [], [], []
    for s in subjects:
        path = features_file(features_dir, s)
        if manifest is not None:
            expected = manifest.get("md5", {}).get(str(s))
            if expected is None:
                raise DataError(f"pool manifest lists no features for subject {s}; rerun the "
                                f"pool stage (dvc repro)")
            actual = md5sum(path) if path.is_file() else "missing"
            if actual != expected:
                raise DataError(f"{path}: md5 {actual} differs from the pool manifest's "
                                f"{expected}; rerun dvc repro")
        x = load_npy(path)
        if xs and x.shape != xs[0].shape:
            raise DataError(f"{path}: shape {x.shape} differs from {xs[0].shape} of subject "
                            f"{subjects[0]}; all subjects need the same images and erp settings")
        xs.append(x)
        rows.append(np.arange(x.shape[0]))
        subj.append(np.full(x.shape[0], s))
    return np.concatenate(xs), np.concatenate(rows), np.concatenate(subj)
