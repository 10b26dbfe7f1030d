"""Which layer's image features a mapper learns: one, several fused, or the best of them on
held-out *training* concepts (``train.layer: select``), never on test data.

The criterion is the one the contrastive mapper stops on: the validation top-1 of the
held-out concepts' images in galleries of :func:`neurovision.contrastive.val_gallery_size`
validation targets, computed exactly (:func:`neurovision.contrastive.expected_top1`).  The
held-out concepts are those of :func:`neurovision.contrastive.group_split` with
``train.val_fraction`` and ``train.seed``: the contrastive and align mappers hold out the
same concepts for their own early stopping, so their validation top-1 (``val_top1_``) is
the criterion itself, read from a fit on all training rows; a regression mapper is fitted
on the other concepts, scored on the held-out ones, and the chosen layer's is refitted on
all training rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from neurovision.contrastive import (
    ContrastiveMapper,
    expected_top1,
    group_split,
    val_gallery_size,
)
from neurovision.retrieval import cosine_scores, l2_normalize

log = logging.getLogger(__name__)


def fuse(features: Sequence[np.ndarray]) -> np.ndarray:
    """Several layers' features of the same images as one vector each: every layer
    L2-normalised (so each weighs the same), then concatenated."""
    if len({len(f) for f in features}) != 1:
        raise ValueError(f"expected the same images in every layer, got "
                         f"{[len(f) for f in features]} rows")
    return np.concatenate([l2_normalize(np.asarray(f, dtype=np.float64)) for f in features],
                          axis=1).astype(np.float32)


def gallery(mapper: BaseEstimator, features: np.ndarray) -> np.ndarray:
    """The test images as the mapper ranks them: through its image tower if it has one."""
    transform = getattr(mapper, "transform_images", None)
    return transform(features) if transform is not None else features


def validation_top1(mapper: BaseEstimator, x_val: np.ndarray, y_val: np.ndarray) -> float:
    """Expected top-1 of validation rows among their distinct targets (galleries of
    :func:`val_gallery_size` of them), ``mapper`` fitted without these rows."""
    _, first, label = np.unique(y_val, axis=0, return_index=True, return_inverse=True)
    targets = gallery(mapper, y_val[first])
    scores = cosine_scores(np.asarray(mapper.predict(x_val), dtype=np.float64), targets)
    return expected_top1(scores, label.ravel(), val_gallery_size(len(first)))


def select_layer(make: Callable[[], BaseEstimator],
                 fit: Callable[[BaseEstimator, np.ndarray, np.ndarray, np.ndarray],
                               BaseEstimator],
                 x: np.ndarray, targets: dict[str, np.ndarray], groups: np.ndarray, *,
                 val_fraction: float, seed: int) -> tuple[str, BaseEstimator, dict[str, float]]:
    """The layer (a key of ``targets``, in order) whose validation top-1 is highest (ties:
    the earlier), its mapper fitted on all rows, and every candidate's score.

    ``make()`` builds an unfitted mapper; ``fit(mapper, x, y, groups)`` fits it.
    """
    tr, va = group_split(groups, val_fraction, seed)
    scores: dict[str, float] = {}
    fitted: dict[str, BaseEstimator] = {}
    for name, y in targets.items():
        mapper = make()
        if isinstance(mapper, ContrastiveMapper):  # holds out the same concepts itself
            fitted[name] = fit(mapper, x, y, groups)
            scores[name] = float(fitted[name].val_top1_)
        else:
            fit(mapper, x[tr], y[tr], groups[tr])
            scores[name] = validation_top1(mapper, x[va], y[va])
        log.info("select: layer %s: validation top-1 %.4f", name, scores[name])
    chosen = max(scores, key=lambda n: (scores[n], -list(targets).index(n)))
    mapper = fitted.get(chosen) or fit(make(), x, targets[chosen], groups)
    return chosen, mapper, scores
