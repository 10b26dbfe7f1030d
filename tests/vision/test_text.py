"""Text embeddings: one per text, in order, L2-normalised, batching changes nothing."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from neurovision.vision.encoder import load_encoder
from neurovision.vision.text import embed_texts

MODEL = "ViT-S-32"


@pytest.fixture(scope="module")
def model():
    return load_encoder(MODEL, "none", seed=0).model


def test_each_text_alone_against_encode_text(model):
    texts = ["a photo of a red star", "a photo of a blue ring", "a photo of a cat"]
    got = embed_texts(model, MODEL, texts, batch_size=2, progress=False)
    tokenizer = open_clip.get_tokenizer(MODEL)
    with torch.no_grad():
        ref = np.stack([model.encode_text(tokenizer([t]))[0].numpy() for t in texts])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, rtol=1e-6)
    assert not np.allclose(got[0], got[1])
    again = embed_texts(model, MODEL, texts[::-1], batch_size=3, progress=False)
    np.testing.assert_allclose(again[::-1], got, atol=1e-5)
