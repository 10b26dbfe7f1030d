"""DVC stage trainset@N: the training rows of subject N's mapper under train.protocol.

intra: subject N's own training ERPs; inter: those of every other subject in the pool
manifest (leave-one-subject-out), each verified against its md5.  Reads training features
only, never test data.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

import numpy as np

from neurovision.errors import DataError
from neurovision.io import atomic_dir, load_json, save_json, save_npy
from neurovision.protocol import stack_training_set, training_subjects
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.trainset")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--features", required=True, help="directory of sub-K.npy training ERPs")
    ap.add_argument("--pool", required=True, help="manifest written by the pool stage")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    params = params_from(args)
    protocol = params.train.protocol
    manifest = load_json(args.pool)
    if manifest.get("protocol") != protocol:
        raise DataError(f"{args.pool}: written for protocol {manifest.get('protocol')!r}, "
                        f"train.protocol is {protocol!r}; rerun dvc repro")
    if protocol == "intra":
        subjects = training_subjects(args.subject, params.data.subjects, protocol)
        x, rows, subj = stack_training_set(args.features, subjects)
    else:
        subjects = training_subjects(args.subject, manifest["subjects"], protocol)
        x, rows, subj = stack_training_set(args.features, subjects, manifest)
    assert protocol == "intra" or args.subject not in subjects
    with atomic_dir(args.out) as tmp:
        save_npy(Path(tmp) / "X.npy", x)
        save_npy(Path(tmp) / "image_index.npy", rows.astype(np.int64))
        save_npy(Path(tmp) / "subject.npy", subj.astype(np.int64))
        save_json(Path(tmp) / "info.json", {"subject": args.subject, "protocol": protocol,
                                            "training_subjects": subjects,
                                            "n_rows": len(x)})
    log.info("subject %d (%s): %d training rows from subjects %s", args.subject, protocol,
             len(x), subjects)


if __name__ == "__main__":
    sys.exit(run(main))
