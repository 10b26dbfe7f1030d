"""DVC stage pca: for each layer in --embeds, a PCA fitted on the training images' features
only and applied to both splits: --out-train/<layer>.npy, --out-test/<layer>.npy and
--models/<layer>.joblib (null when pca.n_components is null: the full width is kept).  The
two splits go to separate folders so that the train stage can depend on training data only."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

import joblib
import numpy as np

from neurovision.errors import DataError
from neurovision.io import atomic_dir, atomic_path, load_json, load_npy, save_npy
from neurovision.stage import params_from, parser, run
from neurovision.train_fit import pca_project

log = logging.getLogger("neurovision.pca")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--embeds", required=True,
                    help="directory written by embed: <layer>/train.npy, test.npy, provenance")
    ap.add_argument("--out-train", required=True, help="directory for <layer>.npy (training)")
    ap.add_argument("--out-test", required=True, help="directory for <layer>.npy (test)")
    ap.add_argument("--models", required=True, help="directory for <layer>.joblib")
    args = ap.parse_args(argv)
    p = params_from(args).pca
    embeds = Path(args.embeds)
    layers = list(load_json(embeds / "provenance.json").get("layers") or {})
    if not layers:
        raise DataError(f"{embeds / 'provenance.json'}: expected the layers embed wrote, got "
                        f"none; rerun dvc repro embed")
    with atomic_dir(args.out_train) as out_tr, atomic_dir(args.out_test) as out_te, \
            atomic_dir(args.models) as models:
        for layer in layers:
            train = load_npy(embeds / layer / "train.npy")
            test_path = embeds / layer / "test.npy"
            test = load_npy(test_path)
            try:
                out_train, out_test, pca = pca_project(train, test, p.n_components)
            except DataError as exc:
                raise DataError(f"{test_path}: {exc}") from None
            if pca is None:
                log.info("%s: pca.n_components is null: the full %d-d features", layer,
                         train.shape[1])
            else:
                log.info("%s: %d components keep %.1f%% of the training variance", layer,
                         p.n_components, 100 * pca.explained_variance_ratio_.sum())
            save_npy(out_tr / f"{layer}.npy", np.asarray(out_train, dtype=np.float32))
            save_npy(out_te / f"{layer}.npy", np.asarray(out_test, dtype=np.float32))
            with atomic_path(models / f"{layer}.joblib") as tmp:
                joblib.dump(pca, tmp)


if __name__ == "__main__":
    sys.exit(run(main))
