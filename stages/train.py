"""DVC stage train@N: fit the mapper named by train.mapper from EEG to image embeddings.

Inputs are training data only: the subject's training set, the training-image embeddings,
the training concepts (image_metadata.npy: for concept targets and the concept-wise
validation split), the training concepts' text embeddings and the PCA fitted on training
images.  train.target picks what the mapper predicts (neurovision.targets).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

import joblib
import numpy as np

from neurovision.errors import DataError, ParamError
from neurovision.io import load_json, load_npy
from neurovision.mappers import build_mapper, fit_mapper, save_mapper
from neurovision.release import load_metadata
from neurovision.stage import params_from, parser, run
from neurovision.targets import build_targets
from neurovision.vision.runtime import prefer_sleeping_openmp_threads

log = logging.getLogger("neurovision.train")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--trainset", required=True, help="directory written by trainset@N")
    ap.add_argument("--targets", required=True, help="training-image embeddings (n_images, d)")
    ap.add_argument("--metadata", required=True,
                    help="image_metadata.npy (only the training concepts are used)")
    ap.add_argument("--text", required=True,
                    help="directory written by embed_text (training concepts' text embeddings)")
    ap.add_argument("--pca-model", required=True,
                    help="joblib file written by pca (fitted on training images; null = none)")
    ap.add_argument("--out", required=True, help="joblib file for the fitted mapper")
    args = ap.parse_args(argv)
    # contrastive: idle OpenMP threads must sleep, not spin (README "Decoding quality");
    # this must run before torch is imported
    prefer_sleeping_openmp_threads()
    p = params_from(args).train
    x = load_npy(Path(args.trainset) / "X.npy")
    rows = load_npy(Path(args.trainset) / "image_index.npy")
    targets = load_npy(args.targets)
    if rows.max() + 1 != len(targets):
        raise DataError(f"{args.targets}: expected {rows.max() + 1} training-image embeddings "
                        f"(one per training image of the EEG in {args.trainset}), got "
                        f"{len(targets)}; embed and EEG must come from the same release")
    concepts = load_metadata(args.metadata)["train_img_concepts"]
    if len(concepts) != len(targets):
        raise DataError(f"{args.metadata}: {len(concepts)} training images, {args.targets}: "
                        f"{len(targets)} embeddings; expected the same number")
    text = text_concepts = None
    if p.target == "text":
        text = load_npy(Path(args.text) / "train.npy")
        text_concepts = load_json(Path(args.text) / "provenance.json")["concepts"]
        pca = joblib.load(args.pca_model)  # our own output, written by the pca stage
        if pca is not None:
            if text.shape[1] != pca.n_features_in_:
                raise DataError(f"{args.text}: text embeddings have {text.shape[1]} dims, the "
                                f"image embeddings {pca.n_features_in_}; expected the same "
                                f"OpenCLIP model for both (rerun dvc repro)")
            text = pca.transform(text).astype(np.float32)
    y = build_targets(p.target, targets, concepts, text, text_concepts)[rows]
    groups = np.asarray(concepts)[rows]  # each row's training concept
    if p.mapper == "pls" and p.pls.n_components > min(x.shape[1], y.shape[1]):
        raise ParamError(f"params: train.pls.n_components: expected at most "
                         f"{min(x.shape[1], y.shape[1])} (features {x.shape[1]}, targets "
                         f"{y.shape[1]}), got {p.pls.n_components}")
    if p.mapper == "contrastive":
        from neurovision.contrastive import device_problem

        problem = device_problem(p.contrastive.device)
        if problem:
            raise ParamError(f"params: train.contrastive.device: expected a device torch can "
                             f"use here (e.g. 'cpu'), got {p.contrastive.device!r}: {problem}")
    mapper = build_mapper(p)
    t0 = time.perf_counter()
    fit_mapper(mapper, x, y, groups=groups)
    log.info("subject %d: fitted %s on %d rows x %d features -> %d %s targets in %.1f s",
             args.subject, p.mapper, x.shape[0], x.shape[1], y.shape[1], p.target,
             time.perf_counter() - t0)
    save_mapper(mapper, args.out)


if __name__ == "__main__":
    sys.exit(run(main))
