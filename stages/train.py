"""DVC stage train@N: fit the mapper named by train.mapper from EEG to image features.

train.layer picks which layer's features (of embed.layers) the mapper predicts or aligns to:
one, several fused, or 'select' (the best on held-out training concepts, neurovision.select);
--info records the layer and every candidate's validation score.  Inputs are training data
only: the subject's training set, the training images' features, the training concepts
(image_metadata.npy: for concept targets and the concept-wise validation split), the training
concepts' text embeddings and the PCAs fitted on training images.  train.target picks
what the mapper predicts (neurovision.targets).
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
from neurovision.io import load_json, load_npy, save_json
from neurovision.mappers import build_mapper, fit_mapper, save_mapper
from neurovision.params import layer_name
from neurovision.release import load_metadata
from neurovision.select import fuse, select_layer
from neurovision.stage import params_from, parser, run
from neurovision.targets import build_targets
from neurovision.vision.runtime import prefer_sleeping_openmp_threads

log = logging.getLogger("neurovision.train")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--trainset", required=True, help="directory written by trainset@N")
    ap.add_argument("--targets", required=True,
                    help="directory of <layer>.npy: the training images' features")
    ap.add_argument("--metadata", required=True,
                    help="image_metadata.npy (only the training concepts are used)")
    ap.add_argument("--text", required=True,
                    help="directory written by embed_text (training concepts' text embeddings)")
    ap.add_argument("--pca-models", required=True,
                    help="directory of <layer>.joblib written by pca (fitted on training images)")
    ap.add_argument("--out", required=True, help="joblib file for the fitted mapper")
    ap.add_argument("--info", required=True, help="JSON file: the layer(s) the mapper uses")
    args = ap.parse_args(argv)
    # contrastive, align: idle OpenMP threads must sleep, not spin (README "Decoding
    # quality"); this must run before torch is imported
    prefer_sleeping_openmp_threads()
    params = params_from(args)
    p = params.train
    x = load_npy(Path(args.trainset) / "X.npy")
    rows = load_npy(Path(args.trainset) / "image_index.npy")
    concepts = load_metadata(args.metadata)["train_img_concepts"]
    extracted = [layer_name(x) for x in params.embed.layers]
    names = extracted if p.layer == "select" else p.layers()
    features = {}
    for name in names:
        path = Path(args.targets) / f"{name}.npy"
        features[name] = load_npy(path)
        if rows.max() + 1 != len(features[name]) or len(concepts) != len(features[name]):
            raise DataError(f"{path}: expected {len(concepts)} training-image features (one "
                            f"per training image of {args.metadata} and of the EEG in "
                            f"{args.trainset}), got {len(features[name])}; embed and EEG "
                            f"must come from the same release")
    text = text_concepts = None
    if p.target == "text":  # train.layer is 'final' (params.py checks)
        text = load_npy(Path(args.text) / "train.npy")
        text_concepts = load_json(Path(args.text) / "provenance.json")["concepts"]
        pca = joblib.load(Path(args.pca_models) / "final.joblib")  # our own pca stage's output
        if pca is not None:
            if text.shape[1] != pca.n_features_in_:
                raise DataError(f"{args.text}: text embeddings have {text.shape[1]} dims, the "
                                f"image embeddings {pca.n_features_in_}; expected the same "
                                f"OpenCLIP model for both (rerun dvc repro)")
            text = pca.transform(text).astype(np.float32)

    def targets_of(per_image: np.ndarray) -> np.ndarray:
        return build_targets(p.target, per_image, concepts, text, text_concepts)[rows]

    if isinstance(p.layer, tuple):  # fusion of several layers
        candidates = {"+".join(names): targets_of(fuse([features[n] for n in names]))}
    else:
        candidates = {name: targets_of(features[name]) for name in names}
    for y in candidates.values():
        if p.mapper == "pls" and p.pls.n_components > min(x.shape[1], y.shape[1]):
            raise ParamError(f"params: train.pls.n_components: expected at most "
                             f"{min(x.shape[1], y.shape[1])} (features {x.shape[1]}, targets "
                             f"{y.shape[1]}), got {p.pls.n_components}")
    if p.mapper in ("contrastive", "align"):
        from neurovision.contrastive import device_problem

        device = getattr(p, p.mapper).device
        problem = device_problem(device)
        if problem:
            raise ParamError(f"params: train.{p.mapper}.device: expected a device torch can "
                             f"use here (e.g. 'cpu'), got {device!r}: {problem}")
    groups = np.asarray(concepts)[rows]  # each row's training concept
    t0 = time.perf_counter()
    scores = None
    if p.layer == "select":
        chosen, mapper, scores = select_layer(
            lambda: build_mapper(p), lambda m, x_, y_, g: fit_mapper(m, x_, y_, groups=g),
            x, candidates, groups, val_fraction=p.val_fraction, seed=p.seed)
    else:
        ((chosen, y),) = candidates.items()
        mapper = fit_mapper(build_mapper(p), x, y, groups=groups)
    layer = names if isinstance(p.layer, tuple) else chosen
    log.info("subject %d: fitted %s on %d rows x %d features -> %s targets of layer %s in "
             "%.1f s", args.subject, p.mapper, x.shape[0], x.shape[1], p.target, layer,
             time.perf_counter() - t0)
    save_mapper(mapper, args.out)
    save_json(args.info, {"subject": args.subject, "mapper": p.mapper, "target": p.target,
                          "layer": layer, "fused": isinstance(p.layer, tuple),
                          "selected_from": scores and list(scores),
                          "val_top1": scores})


if __name__ == "__main__":
    sys.exit(run(main))
