"""Which subjects' EEG a subject's mapper is trained on, and the stacked training set."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from neurovision.errors import DataError
from neurovision.io import load_npy


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


def stack_training_set(features_dir: str | Path, subjects: Sequence[int]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of all ``subjects``' training features, with each row's image and subject."""
    xs, rows, subj = [], [], []
    n_img = None
    for s in subjects:
        x = load_npy(Path(features_dir) / f"sub-{s}.npy")
        if n_img is not None and (x.shape[0] != n_img or x.shape[1] != xs[0].shape[1]):
            raise DataError(f"{features_dir}/sub-{s}.npy: shape {x.shape} differs from "
                            f"{xs[0].shape} of subject {subjects[0]}; all subjects need the "
                            f"same images and erp settings")
        n_img = x.shape[0]
        xs.append(x)
        rows.append(np.arange(x.shape[0]))
        subj.append(np.full(x.shape[0], s))
    return np.concatenate(xs), np.concatenate(rows), np.concatenate(subj)
