"""Two towers aligned by a contrastive loss: the EEG encoder and a linear image projector.

:class:`AlignMapper` is the recipe of the strongest 2026 decoders on THINGS-EEG2 (Shallow
Alignment): the EEG side is the contrastive mapper's small encoder (one implementation,
:func:`neurovision.contrastive.build_encoder`), the image side a trainable linear projector
from a layer's image features to the shared space, both trained jointly with the symmetric
InfoNCE loss and learnable temperature, early stopping and checkpoint choice on held-out
training concepts, and the seeding of :class:`~neurovision.contrastive.ContrastiveMapper`,
whose training loop it reuses.

``predict(X)`` maps EEG rows into the shared space, ``transform_images(Y)`` maps image
features there; retrieval ranks the latter by cosine similarity to the former.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from neurovision.contrastive import ContrastiveMapper, _torch_state, build_encoder


class AlignMapper(ContrastiveMapper):
    """EEG rows and image features into one space: two towers, one contrastive loss.

    Parameters are those of :class:`~neurovision.contrastive.ContrastiveMapper`; ``dim`` is
    the width of the shared space (``None``: the image features' width).  Fitted attributes
    add ``image_state_`` (the projector's weights, as numpy arrays).
    """

    name = "align"

    def _prepare_targets(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)  # the projector takes the features as they are

    def _towers(self, n_features: int, k: int):
        from torch import nn

        d = self.dim or k
        return build_encoder(n_features, d, d, self.dropout), nn.Linear(k, d)

    def image_tower(self):
        """The fitted image projector as a torch ``nn.Linear`` on the CPU, in eval mode."""
        import torch

        check_is_fitted(self, "image_state_")
        _, tower = self._towers(self.n_features_in_, self.n_targets_)
        tower.load_state_dict({k: torch.from_numpy(v) for k, v in self.image_state_.items()})
        return tower.eval()

    def transform_images(self, Y) -> np.ndarray:
        """L2-normalised shared-space embeddings (n, dim) of image features ``Y`` (n, k)."""
        import torch
        import torch.nn.functional as F

        check_is_fitted(self, "image_state_")
        Y = check_array(Y, dtype=np.float32)  # 2-D, finite, numeric
        if Y.shape[1] != self.n_targets_:
            raise ValueError(f"expected image features with {self.n_targets_} columns (what "
                             f"the projector was fitted on), got shape {Y.shape}")
        with _torch_state(self.random_state, "cpu", self.threads), torch.no_grad():
            return F.normalize(self.image_tower()(torch.from_numpy(Y)), dim=1).numpy()
