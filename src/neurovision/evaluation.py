"""What the evaluate and summarize stages write, computed from a subject's score matrix.

Pure functions: the stages load their inputs, call these and write the results.
``scores[i, j]`` is the cosine similarity of test trial i's decoded EEG to gallery image j,
and trial i's true image is gallery image i (see :mod:`neurovision.retrieval`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from neurovision.retrieval import (
    N_WAYS,
    TOP_KS,
    expected_ranks,
    n_way_hits,
    ranks,
    retrieval_metrics,
    top_k_curve,
    top_k_hits,
    top_k_indices,
)
from neurovision.stats import clopper_pearson, percentile_bootstrap, t_interval

#: Keys of a subject's metrics that describe the run, not a score.
DESCRIPTIVE = ("subject", "protocol", "mapper", "layer", "ci_method")
#: What ``retrieval.json`` (the file DVC shows as metrics) keeps of a subject's or the
#: summary's metrics: the scores people compare.  ``details.json`` holds all of them.
HEADLINE = ("layer", "top1", "top1_ci_low", "top1_ci_high", "top5", "top5_ci_low",
            "top5_ci_high", "top10", "two_way", "mean_rank", "n_test", "n_subjects",
            "top1_sd", "top5_sd", "ideal_top1")
#: Metrics that get a 95 % interval (``<key>_ci_low``, ``<key>_ci_high``).
INTERVAL_KEYS = (*TOP_KS, *N_WAYS, "mean_rank")
#: Suffixes of the interval keys: bootstrap or t (``_ci_``), Clopper-Pearson (``_exact_``).
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high", "_exact_low", "_exact_high")
#: ``ci_method`` of a subject's and of a several-subject summary's ``_ci_`` keys.
BOOTSTRAP = "percentile bootstrap over test images"
T_OVER_SUBJECTS = "t over subjects"
#: At most this many bars in the rank histogram.
RANK_BINS = 20


def subject_metrics(scores: np.ndarray, *, subject: int, protocol: str, mapper: str,
                    ceiling: dict | None = None) -> dict:
    """A subject's ``retrieval.json``: the retrieval metrics with their chance levels, and
    (demo only) the ideal observer's top-1 / top-5 from ``ceiling`` with the achieved
    fraction of its top-1."""
    metrics = {"subject": subject, "protocol": protocol, "mapper": mapper,
               **retrieval_metrics(scores)}
    if ceiling and ceiling.get("top1") is not None:
        metrics["ideal_top1"] = ceiling["top1"]
        metrics["ideal_top5"] = ceiling["top5"]
        metrics["top1_of_ideal"] = metrics["top1"] / ceiling["top1"] if ceiling["top1"] else None
    return metrics


def per_trial_values(scores: np.ndarray) -> dict[str, np.ndarray]:
    """Each :data:`INTERVAL_KEYS` metric's value per test trial (the metric is their mean):
    top-k and n-way hits as expectations over tied scores, and the expected rank."""
    n = scores.shape[1]
    out = {key: top_k_hits(scores, k) for key, k in TOP_KS.items() if k <= n}
    out.update({key: n_way_hits(scores, w) for key, w in N_WAYS.items() if w <= n})
    out["mean_rank"] = expected_ranks(scores)
    return out


def subject_intervals(scores: np.ndarray, *, resamples: int, seed: int) -> dict:
    """95 % intervals of a subject's metrics, over its test images.

    ``<key>_ci_low`` / ``<key>_ci_high``: percentile bootstrap, ``resamples`` resamples of
    the test trials (the same for every metric) drawn with ``seed``.  ``<key>_exact_low`` /
    ``<key>_exact_high`` (top-k only): Clopper-Pearson on the number of hits.
    """
    values = per_trial_values(scores)
    low, high = percentile_bootstrap(np.stack(list(values.values())), resamples=resamples,
                                     seed=seed)
    out: dict = {"ci_method": BOOTSTRAP}
    for key, lo, hi in zip(values, low, high):
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(lo), float(hi)
    for key in TOP_KS:
        if key in values:
            out[f"{key}_exact_low"], out[f"{key}_exact_high"] = clopper_pearson(
                float(values[key].sum()), len(values[key]))
    return out


def layer_metrics(info: dict) -> dict:
    """What a subject's metrics say of the layer its mapper used (the train stage's info):
    ``layer`` (a name, or names joined by ``+`` when fused) and, for ``train.layer:
    select``, each candidate's validation top-1 as ``val_top1_<layer>``."""
    layer = info["layer"]
    out: dict = {"layer": "+".join(layer) if isinstance(layer, list) else layer}
    for name, score in (info.get("val_top1") or {}).items():
        out[f"val_top1_{name}"] = score
    return out


def headline(metrics: dict) -> dict:
    """The :data:`HEADLINE` keys of ``metrics`` that it has (a null value is left out)."""
    return {k: metrics[k] for k in HEADLINE if metrics.get(k) is not None}


def trial_records(scores: np.ndarray, files: Sequence[str], concepts: Sequence[str],
                  top_k: int) -> list[dict]:
    """``trials.json``: per test trial its image, the rank of the true image, its score and
    the ``top_k`` best gallery indices with their scores (best first, ties by index)."""
    n = len(scores)
    k = min(top_k, scores.shape[1])
    top = top_k_indices(scores, k)
    r = ranks(scores)
    return [{"trial": i, "concept": concepts[i], "file": files[i], "rank": int(r[i]),
             "true_score": float(scores[i, i]),
             "top_indices": [int(j) for j in top[i]],
             "top_scores": [float(scores[i, j]) for j in top[i]]} for i in range(n)]


def topk_rows(scores: np.ndarray) -> list[list]:
    """``topk.csv`` rows ``[k, accuracy, chance]`` for k = 1 .. n_gallery."""
    n = scores.shape[1]
    return [[k, float(a), k / n] for k, a in enumerate(top_k_curve(scores), start=1)]


def rank_histogram(r: np.ndarray, n_gallery: int, n_bins: int = RANK_BINS) -> list[list]:
    """``ranks.csv`` rows ``[bin label, count]``: the true image's ranks ``r`` (1-based)
    counted in at most ``n_bins`` near-equal bins of 1 .. n_gallery, labelled
    ``"001-005"`` and so on."""
    edges = np.unique(np.linspace(0, n_gallery, min(n_gallery, n_bins) + 1).round().astype(int))
    r = np.asarray(r)
    return [[f"{lo + 1:03d}-{hi:03d}", int(((r > lo) & (r <= hi)).sum())]
            for lo, hi in itertools.pairwise(edges)]


def summarize(per_subject: list[dict]) -> dict:
    """``metrics/retrieval.json``: the mean over subjects under each metric's own key, its
    sample sd as ``<key>_sd`` (0 for one subject), the subjects, and the run's protocol and
    mapper.  A metric that is null for any subject is null.

    Intervals: with several subjects, ``<key>_ci_low`` / ``<key>_ci_high`` are the 95 %
    t interval of the mean over subjects, cut to the metric's range (accuracies [0, 1],
    mean rank [1, n_test]); with one subject, its own intervals.
    """
    first = per_subject[0]
    out: dict = {k: first[k] for k in ("protocol", "mapper") if k in first}
    layers = list(dict.fromkeys(m["layer"] for m in per_subject if "layer" in m))
    if layers:  # one layer for all, or (train.layer: select) each subject's own
        out["layer"] = layers[0] if len(layers) == 1 else ",".join(
            f"sub-{m['subject']}:{m['layer']}" for m in per_subject)
    out["n_subjects"] = len(per_subject)
    out["subjects"] = [m["subject"] for m in per_subject]
    for key, value in first.items():
        if key in DESCRIPTIVE or key.endswith(INTERVAL_SUFFIXES):
            continue
        values = [m.get(key) for m in per_subject]
        if value is None or any(v is None for v in values):
            out[key] = None
            continue
        arr = np.asarray(values, dtype=float)
        if key == "n_test":
            out[key] = int(arr.max())
            continue
        out[key] = float(arr.mean())
        if not key.endswith("_chance"):
            out[f"{key}_sd"] = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    out.update(_summary_intervals(per_subject))
    return out


def _summary_intervals(per_subject: list[dict]) -> dict:
    if len(per_subject) == 1:
        return {k: v for k, v in per_subject[0].items()
                if k == "ci_method" or k.endswith(INTERVAL_SUFFIXES)}
    out: dict = {"ci_method": T_OVER_SUBJECTS}
    for key in INTERVAL_KEYS:
        if key not in per_subject[0]:
            continue
        values = [m.get(key) for m in per_subject]
        if any(v is None for v in values):
            low = high = None
        else:  # cut to the range of the metric: [0, 1], ranks [1, n_test] (or [1, inf))
            n_test = max(m.get("n_test") or 0 for m in per_subject)
            bounds = (1.0, float(n_test) if n_test else np.inf) if key == "mean_rank" else (
                0.0, 1.0)
            low, high = t_interval(values, bounds=bounds)
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = low, high
    return out


def per_subject_rows(per_subject: list[dict]) -> list[list]:
    """``per_subject.csv`` rows ``[sub-NN, top1, top5, top1_chance]`` (the top-1 bars)."""
    return [[f"sub-{m['subject']:02d}", m["top1"], m["top5"], m["top1_chance"]]
            for m in per_subject]
