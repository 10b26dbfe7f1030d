"""OpenCLIP text embeddings (the targets of ``train.target: text``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurovision.retrieval import l2_normalize


def embed_texts(model: Any, model_name: str, texts: Sequence[str], batch_size: int = 256
                ) -> np.ndarray:
    """L2-normalised float32 OpenCLIP text embeddings (n_texts, dim), in ``texts`` order."""
    import open_clip
    import torch

    tokenizer = open_clip.get_tokenizer(model_name)
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[start:start + batch_size]))
            out.append(model.encode_text(tokens).float().cpu().numpy())
    return l2_normalize(np.concatenate(out, axis=0)).astype(np.float32)
