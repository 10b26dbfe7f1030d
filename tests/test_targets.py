"""Training targets (train.target) and the blur applied before embedding (embed.blur_sigma)."""

from __future__ import annotations

import numpy as np
import pytest

from neurovision.errors import DataError
from neurovision.targets import (
    build_targets,
    concept_mean_targets,
    concept_words,
    prompts,
    text_targets,
    unique_in_order,
)


def test_concept_words_and_prompts():
    assert concept_words("00001_aardvark") == "aardvark"
    assert concept_words("01654_zucchini") == "zucchini"
    assert concept_words("00007_red_star") == "red star"
    assert concept_words("00123_ice_cream_cone") == "ice cream cone"
    assert prompts(["00001_aardvark", "00002_red_star"]) == ["a photo of a aardvark",
                                                             "a photo of a red star"]
    assert unique_in_order(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_concept_mean_against_brute_force():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(7, 3)).astype(np.float32)
    concepts = ["b", "a", "b", "c", "a", "b", "c"]
    out = concept_mean_targets(emb, concepts)
    for i, c in enumerate(concepts):
        ref = np.mean([emb[j] for j, cj in enumerate(concepts) if cj == c], axis=0)
        np.testing.assert_allclose(out[i], ref, rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == emb.shape


def test_text_targets_follow_each_rows_concept():
    text = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = text_targets(text, ["x", "y", "z"], ["z", "x", "z", "y"])
    np.testing.assert_array_equal(out, text[[2, 0, 2, 1]])
    with pytest.raises(DataError, match="no text embedding for 1 training concept"):
        text_targets(text, ["x", "y", "z"], ["x", "w"])


def test_build_targets():
    emb = np.eye(4, dtype=np.float32)
    concepts = ["a", "a", "b", "b"]
    np.testing.assert_array_equal(build_targets("image", emb, concepts), emb)
    np.testing.assert_allclose(build_targets("concept_mean", emb, concepts)[0],
                               [0.5, 0.5, 0, 0])
    text = np.array([[1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float32)
    out = build_targets("text", emb, concepts, text, ["b", "a"])
    np.testing.assert_array_equal(out, text[[1, 1, 0, 0]])
    with pytest.raises(DataError, match="dims"):
        build_targets("text", emb, concepts, text[:, :2], ["b", "a"])
    with pytest.raises(ValueError):
        build_targets("nope", emb, concepts)


