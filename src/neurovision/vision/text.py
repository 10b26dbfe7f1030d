"""OpenCLIP text embeddings (the targets of ``train.target: text``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurovision.retrieval import l2_normalize


def embed_texts(model: Any, model_name: str, texts: Sequence[str], batch_size: int = 256,
                progress: bool = True) -> np.ndarray:
    """L2-normalised float32 OpenCLIP text embeddings (n_texts, dim), in ``texts`` order."""
    import open_clip
    import torch
    from tqdm.auto import tqdm

    tokenizer = open_clip.get_tokenizer(model_name)
    out = []
    with torch.inference_mode(), tqdm(total=len(texts), unit="text", desc="embed_text",
                                      disable=not progress) as bar:
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[start:start + batch_size]))
            out.append(model.encode_text(tokens).float().cpu().numpy())
            bar.update(len(tokens))
    return l2_normalize(np.concatenate(out, axis=0)).astype(np.float32)
