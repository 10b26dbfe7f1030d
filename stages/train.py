"""DVC stage train@N: fit the mapper named by train.mapper from EEG to image embeddings.

Inputs are training data only: the subject's training set and the training-image targets.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import joblib

from neurovision.errors import DataError, ParamError
from neurovision.io import atomic_path, load_npy
from neurovision.mappers import build_mapper
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.train")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--trainset", required=True, help="directory written by trainset@N")
    ap.add_argument("--targets", required=True, help="training-image targets (n_images, d)")
    ap.add_argument("--out", required=True, help="joblib file for the fitted mapper")
    args = ap.parse_args(argv)
    p = params_from(args).train
    x = load_npy(Path(args.trainset) / "X.npy")
    rows = load_npy(Path(args.trainset) / "image_index.npy")
    targets = load_npy(args.targets)
    if rows.max() >= len(targets):
        raise DataError(f"{args.targets}: {len(targets)} training images, but the EEG has "
                        f"{rows.max() + 1}; embed and EEG must come from the same release")
    y = targets[rows]
    if p.mapper == "pls" and p.pls.n_components > min(x.shape[1], y.shape[1]):
        raise ParamError(f"params: train.pls.n_components: expected at most "
                         f"{min(x.shape[1], y.shape[1])} (features {x.shape[1]}, targets "
                         f"{y.shape[1]}), got {p.pls.n_components}")
    mapper = build_mapper(p)
    t0 = time.perf_counter()
    mapper.fit(x, y)
    log.info("subject %d: fitted %s on %d rows x %d features -> %d targets in %.1f s",
             args.subject, p.mapper, x.shape[0], x.shape[1], y.shape[1],
             time.perf_counter() - t0)
    with atomic_path(args.out) as tmp:
        joblib.dump(mapper, tmp)


if __name__ == "__main__":
    sys.exit(run(main))
