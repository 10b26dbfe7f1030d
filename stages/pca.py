"""DVC stage pca: PCA fitted on the training embeddings only, applied to both splits."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

import joblib
import numpy as np

from neurovision.errors import DataError
from neurovision.io import atomic_path, load_npy, save_npy
from neurovision.stage import params_from, parser, run
from neurovision.train_fit import pca_project

log = logging.getLogger("neurovision.pca")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--embeds", required=True, help="directory with train.npy and test.npy")
    ap.add_argument("--out-train", required=True)
    ap.add_argument("--out-test", required=True)
    ap.add_argument("--model", required=True, help="joblib file for the fitted PCA")
    args = ap.parse_args(argv)
    p = params_from(args).pca
    train = load_npy(Path(args.embeds) / "train.npy")
    test_path = Path(args.embeds) / "test.npy"
    test = load_npy(test_path)
    try:
        out_train, out_test, pca = pca_project(train, test, p.n_components)
    except DataError as exc:
        raise DataError(f"{test_path}: {exc}") from None
    if pca is None:
        log.info("pca.n_components is null: using the full %d-d embeddings", train.shape[1])
    else:
        log.info("PCA: %d components keep %.1f%% of the training variance", p.n_components,
                 100 * pca.explained_variance_ratio_.sum())
    save_npy(args.out_train, np.asarray(out_train, dtype=np.float32))
    save_npy(args.out_test, np.asarray(out_test, dtype=np.float32))
    with atomic_path(args.model) as tmp:
        joblib.dump(pca, tmp)


if __name__ == "__main__":
    sys.exit(run(main))
