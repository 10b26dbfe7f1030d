"""DVC stage evaluate@N: decode subject N's test EEG and rank the test-image gallery.

Writes the subject's metrics (retrieval.json), the top-K accuracy curve (topk.csv), the
histogram of the true image's rank (ranks.csv) and one record per test trial (trials.json).
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import joblib
import numpy as np

from neurovision.embed import load_metadata
from neurovision.errors import DataError
from neurovision.io import atomic_path, load_json, load_npy, save_json
from neurovision.retrieval import cosine_scores, ranks, retrieval_metrics, top_k_curve, top_k_indices
from neurovision.stage import params_from, parser, run

log = logging.getLogger("neurovision.evaluate")


def write_csv(path: str | Path, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subject", type=int, required=True)
    ap.add_argument("--model", required=True, help="joblib file written by train@N")
    ap.add_argument("--features", required=True, help="the subject's test ERP features")
    ap.add_argument("--gallery", required=True, help="test-image embeddings (n_test, d)")
    ap.add_argument("--metadata", required=True, help="image_metadata.npy")
    ap.add_argument("--ceiling", required=True, help="JSON written by download@N")
    ap.add_argument("--out", required=True, help="directory for this subject's results")
    args = ap.parse_args(argv)
    params = params_from(args)
    p = params.evaluate
    x = load_npy(args.features)
    gallery = load_npy(args.gallery)
    meta = load_metadata(args.metadata)
    if not (len(x) == len(gallery) == len(meta["test_img_files"])):
        raise DataError(f"{args.features}: {len(x)} test ERPs, {args.gallery}: {len(gallery)} "
                        f"test embeddings, {args.metadata}: {len(meta['test_img_files'])} test "
                        f"images; expected the same number")
    mapper = joblib.load(args.model)  # our own output, written by train@N
    n_in = getattr(mapper, "n_features_in_", None)
    if n_in is not None and x.shape[1] != n_in:
        raise DataError(f"{args.features}: expected {n_in} features per trial (what "
                        f"{args.model} was trained on), got {x.shape[1]}; rerun dvc repro")
    pred = np.asarray(mapper.predict(x), dtype=np.float64)
    if pred.shape[1] != gallery.shape[1]:
        raise DataError(f"{args.gallery}: expected {pred.shape[1]} dimensions (the outputs of "
                        f"{args.model}), got {gallery.shape[1]}; rerun dvc repro")
    scores = cosine_scores(pred, gallery)
    metrics = {"subject": args.subject, "protocol": params.train.protocol,
               "mapper": params.train.mapper, **retrieval_metrics(scores)}
    ceiling = load_json(args.ceiling)
    if ceiling.get("top1") is not None:
        metrics["ideal_top1"] = ceiling["top1"]
        metrics["ideal_top5"] = ceiling["top5"]
        metrics["top1_of_ideal"] = metrics["top1"] / ceiling["top1"] if ceiling["top1"] else None

    out = Path(args.out)
    n = len(x)
    k = min(p.top_k, n)
    top = top_k_indices(scores, k)
    r = ranks(scores)
    trials = [{"trial": i, "concept": meta["test_img_concepts"][i],
               "file": meta["test_img_files"][i], "rank": int(r[i]),
               "true_score": float(scores[i, i]),
               "top_indices": [int(j) for j in top[i]],
               "top_scores": [float(scores[i, j]) for j in top[i]]} for i in range(n)]
    save_json(out / "trials.json", trials)
    curve = top_k_curve(scores)
    write_csv(out / "topk.csv", ["k", "accuracy", "chance"],
              [[i + 1, float(a), (i + 1) / n] for i, a in enumerate(curve)])
    edges = np.unique(np.linspace(0, n, min(n, 20) + 1).round().astype(int))
    counts = [int(((r > lo) & (r <= hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:])]
    write_csv(out / "ranks.csv", ["rank", "count"],
              [[f"{lo + 1:03d}-{hi:03d}", c] for lo, hi, c in zip(edges[:-1], edges[1:], counts)])
    save_json(out / "retrieval.json", metrics)
    log.info("subject %d: top1 %.3f (chance %.3f), top5 %.3f (chance %.3f), mean rank %.1f",
             args.subject, metrics["top1"], metrics["top1_chance"], metrics["top5"],
             metrics["top5_chance"], metrics["mean_rank"])


if __name__ == "__main__":
    sys.exit(run(main))
