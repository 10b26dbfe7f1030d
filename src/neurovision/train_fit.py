"""Statistics fitted on the training split only, then applied to both splits.

The ERP standardisation (z-scores per feature) and the PCA of the image embeddings learn
from the training rows alone: the test rows are transformed with what the training rows
taught, never used to fit.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from neurovision.errors import DataError, ParamError


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both splits z-scored per feature with the training rows' mean and sd."""
    scaler = StandardScaler().fit(train)  # training rows only
    return scaler.transform(train), scaler.transform(test)


def pca_project(train: np.ndarray, test: np.ndarray, n_components: int | None
                ) -> tuple[np.ndarray, np.ndarray, PCA | None]:
    """Both splits projected on the first ``n_components`` principal components of the
    training rows (``None``: both unchanged, no model)."""
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise DataError(f"expected {train.shape[-1]} dimensions per image (the training "
                        f"split has shape {train.shape}), got shape {test.shape}")
    if n_components is None:
        return train, test, None
    limit = min(train.shape)
    if n_components > limit:
        raise ParamError(f"params: pca.n_components: expected at most {limit} (min of "
                         f"{train.shape[0]} training images and {train.shape[1]} embedding "
                         f"dims), got {n_components}")
    pca = PCA(n_components=n_components, svd_solver="full").fit(train)  # training rows only
    return pca.transform(train), pca.transform(test), pca
