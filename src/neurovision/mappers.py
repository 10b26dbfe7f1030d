"""EEG -> embedding mappers: scikit-learn estimators chosen by ``train.mapper``."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import joblib
from sklearn.base import BaseEstimator
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor

from neurovision.align import AlignMapper
from neurovision.contrastive import ContrastiveMapper
from neurovision.io import atomic_path
from neurovision.params import TrainParams


def build_mapper(p: TrainParams) -> BaseEstimator:
    """An unfitted estimator for ``p.mapper`` with its own params section, seeded."""
    if p.mapper == "ridge":
        return Ridge(alpha=p.ridge.alpha)
    if p.mapper == "pls":
        return PLSRegression(n_components=p.pls.n_components, scale=False)
    if p.mapper == "mlp":
        m = p.mlp
        # Early stopping on a held-out fraction of the training rows (never test data).
        return MLPRegressor(hidden_layer_sizes=m.hidden_sizes, alpha=m.alpha,
                            learning_rate_init=m.learning_rate, batch_size=m.batch_size,
                            max_iter=m.max_iter, early_stopping=True,
                            validation_fraction=p.val_fraction, n_iter_no_change=m.patience,
                            random_state=p.seed)
    if p.mapper in ("contrastive", "align"):
        c = getattr(p, p.mapper)
        # Early stopping on a held-out share of the training concepts (never test data).
        cls = ContrastiveMapper if p.mapper == "contrastive" else AlignMapper
        return cls(dim=c.dim, dropout=c.dropout, batch_size=c.batch_size,
                                 learning_rate=c.learning_rate, weight_decay=c.weight_decay,
                                 epochs=c.epochs, patience=c.patience,
                                 temperature=c.temperature, val_fraction=p.val_fraction,
                                 device=c.device, threads=c.threads, random_state=p.seed)
    raise ValueError(f"unknown mapper {p.mapper!r}")


class _EpochBar(io.TextIOBase):
    """Stands in for stdout while an ``MLPRegressor(verbose=True)`` fits: each
    "Iteration N, loss = ..." line it prints advances a progress bar instead."""

    def __init__(self, total: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="mlp", unit="epoch")

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("Iteration "):
                self.bar.update(1)
                self.bar.set_postfix_str(line.split(",", 1)[-1].strip(), refresh=False)
        return len(text)


def fit_mapper(mapper: BaseEstimator, x, y, groups: Optional[Sequence] = None,
               progress: bool = True) -> BaseEstimator:
    """Fit ``mapper``; ``groups`` (each row's training concept) reaches the mappers whose
    validation split is by concept (contrastive); the others ignore it.  The MLP shows its
    epochs as a progress bar (scikit-learn reports them only as printed lines)."""
    if isinstance(mapper, ContrastiveMapper):
        return mapper.fit(x, y, groups=groups)
    if isinstance(mapper, MLPRegressor) and progress:
        bar = _EpochBar(mapper.max_iter)
        try:
            with contextlib.redirect_stdout(bar):
                return mapper.set_params(verbose=True).fit(x, y)
        finally:
            mapper.set_params(verbose=False)
            bar.bar.close()
    return mapper.fit(x, y)


def save_mapper(mapper: BaseEstimator, path: str | Path) -> None:
    """Write a fitted mapper to ``path`` (joblib), atomically."""
    with atomic_path(path) as tmp:
        joblib.dump(mapper, tmp)


def load_mapper(path: str | Path) -> BaseEstimator:
    """A mapper written by :func:`save_mapper` (the train stage's own output).

    Unpickling runs the code of the mapper's classes (this module, the contrastive mapper,
    scikit-learn): a stage that loads a mapper imports this module, so its DVC deps name
    that code.
    """
    return joblib.load(path)
