"""DVC stage evaluate@N: decode subject N's test EEG and rank the test-image gallery.

Writes the subject's metrics (details.json: every metric with its chance level;
retrieval.json: the headline scores DVC shows), the top-K accuracy curve (topk.csv), the
histogram of the true image's rank (ranks.csv) and one record per test trial (trials.json).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

import numpy as np

from neurovision.errors import DataError
from neurovision.evaluation import (
    headline,
    layer_metrics,
    rank_histogram,
    subject_intervals,
    subject_metrics,
    topk_rows,
    trial_records,
)
from neurovision.io import load_json, load_npy, save_csv, save_json, save_npy
from neurovision.mappers import load_mapper
from neurovision.release import load_metadata
from neurovision.retrieval import cosine_scores, ranks
from neurovision.select import fuse
from neurovision.select import gallery as select_gallery
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.evaluate")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--model", required=True, help="model file written by train@N")
    ap.add_argument("--info", required=True, help="JSON written by train@N: the layer(s)")
    ap.add_argument("--features", required=True, help="the subject's test ERP features")
    ap.add_argument("--gallery", required=True,
                    help="directory of <layer>.npy: the test images' features")
    ap.add_argument("--metadata", required=True, help="image_metadata.npy")
    ap.add_argument("--ceiling", required=True, help="JSON written by download@N")
    ap.add_argument("--out", required=True, help="directory for this subject's results")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.evaluate
    x = load_npy(args.features)
    info = load_json(args.info)
    layers = info["layer"] if isinstance(info["layer"], list) else [info["layer"]]
    test_paths = [Path(args.gallery) / f"{layer}.npy" for layer in layers]
    features = [load_npy(path) for path in test_paths]
    gallery = fuse(features) if info["fused"] else features[0]
    meta = load_metadata(args.metadata)
    if not (len(x) == len(gallery) == len(meta["test_img_files"])):
        raise DataError(f"{args.features}: {len(x)} test ERPs, {test_paths[0]}: {len(gallery)} "
                        f"test embeddings, {args.metadata}: {len(meta['test_img_files'])} test "
                        f"images; expected the same number")
    mapper = load_mapper(args.model)
    n_in = getattr(mapper, "n_features_in_", None)
    if n_in is not None and x.shape[1] != n_in:
        raise DataError(f"{args.features}: expected {n_in} features per trial (what "
                        f"{args.model} was trained on), got {x.shape[1]}; rerun dvc repro")
    width = getattr(mapper, "n_targets_", None) if hasattr(mapper, "transform_images") else None
    if width is not None and gallery.shape[1] != width:
        raise DataError(f"{test_paths[0]}: expected {width} dimensions (what the image tower "
                        f"of {args.model} was trained on), got {gallery.shape[1]}; rerun dvc "
                        f"repro")
    gallery = select_gallery(mapper, gallery)  # through the image tower, if the mapper has one
    pred = np.asarray(mapper.predict(x), dtype=np.float64)
    if pred.shape[1] != gallery.shape[1]:
        raise DataError(f"{test_paths[0]}: expected {pred.shape[1]} dimensions (the outputs of "
                        f"{args.model}), got {gallery.shape[1]}; rerun dvc repro")
    scores = cosine_scores(pred, gallery)
    metrics = subject_metrics(scores, subject=args.subject, protocol=params.train.protocol,
                              mapper=params.train.mapper, ceiling=load_json(args.ceiling))
    metrics.update(layer_metrics(info))
    metrics.update(subject_intervals(scores, resamples=p.bootstrap, seed=p.seed))
    out = Path(args.out)
    save_npy(out / "gallery.npy", np.asarray(gallery, dtype=np.float32))  # what was ranked
    save_json(out / "trials.json", trial_records(scores, meta["test_img_files"],
                                                 meta["test_img_concepts"], p.top_k))
    save_csv(out / "topk.csv", ["k", "accuracy", "chance"], topk_rows(scores))
    save_csv(out / "ranks.csv", ["rank", "count"], rank_histogram(ranks(scores), len(scores)))
    save_json(out / "details.json", metrics)
    save_json(out / "retrieval.json", headline(metrics))
    log.info("subject %d: top1 %.3f (95%% CI %.3f-%.3f, chance %.3f), top5 %.3f (chance %.3f), "
             "mean rank %.1f", args.subject, metrics["top1"], metrics["top1_ci_low"],
             metrics["top1_ci_high"], metrics["top1_chance"], metrics["top5"],
             metrics["top5_chance"], metrics["mean_rank"])


if __name__ == "__main__":
    sys.exit(run(main))
