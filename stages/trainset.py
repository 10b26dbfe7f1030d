"""DVC stage trainset@N: the training rows of subject N's mapper under train.protocol.

intra: subject N's own training ERPs; inter: those of every other subject in data.subjects
(leave-one-subject-out).  Reads training features only, never test data.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from neurovision.io import atomic_dir, save_json, save_npy
from neurovision.protocol import stack_training_set, training_subjects
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.trainset")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--features", required=True, help="directory of sub-K.npy training ERPs")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    params = params_from(args)
    subjects = training_subjects(args.subject, params.data.subjects, params.train.protocol)
    x, rows, subj = stack_training_set(args.features, subjects)
    with atomic_dir(args.out) as tmp:
        save_npy(tmp / "X.npy", x)
        save_npy(tmp / "image_index.npy", rows.astype(np.int64))
        save_npy(tmp / "subject.npy", subj.astype(np.int64))
        save_json(tmp / "info.json", {"subject": args.subject,
                                      "protocol": params.train.protocol,
                                      "training_subjects": subjects, "n_rows": int(len(x))})
    log.info("subject %d (%s): %d training rows from subjects %s", args.subject,
             params.train.protocol, len(x), subjects)


if __name__ == "__main__":
    sys.exit(run(main))
