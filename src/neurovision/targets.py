"""What the mapper learns to predict for each training image (``train.target``).

- ``image``: the image's own embedding.
- ``concept_mean``: the mean embedding of the training images of the image's concept.
- ``text``: the OpenCLIP text embedding of a prompt naming the image's concept
  (:data:`PROMPT`, e.g. "a photo of a red star"), in the same space as the image embeddings.

Every target lives in the space of the image embeddings the test gallery is scored in;
retrieval is always against the test *images*.  Only training images and training concepts
are used here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from neurovision.errors import DataError

log = logging.getLogger(__name__)

#: The prompt that names a concept for its text embedding.
PROMPT = "a photo of a {}"


def concept_words(concept: str) -> str:
    """``"00001_aardvark"`` -> ``"aardvark"``, ``"00007_red_star"`` -> ``"red star"``."""
    return re.sub(r"^\d+_", "", concept).replace("_", " ").strip()


def unique_in_order(items: Sequence[str]) -> list[str]:
    """Distinct items in order of first appearance."""
    return list(dict.fromkeys(items))


def prompts(concepts: Sequence[str], template: str = PROMPT) -> list[str]:
    return [template.format(concept_words(c)) for c in concepts]


def concept_mean_targets(embeddings: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
    """Row i: the mean of the rows of ``embeddings`` whose concept equals ``concepts[i]``."""
    concepts = np.asarray(concepts)
    if len(concepts) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(concepts)} concepts")
    uniq, inverse = np.unique(concepts, return_inverse=True)
    sums = np.zeros((len(uniq), embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, embeddings)
    means = sums / np.bincount(inverse, minlength=len(uniq))[:, None]
    return means[inverse].astype(embeddings.dtype)


def text_targets(text: np.ndarray, text_concepts: Sequence[str], concepts: Sequence[str],
                 source: str = "text embeddings") -> np.ndarray:
    """Row i: the text embedding of ``concepts[i]`` (``text[j]`` belongs to
    ``text_concepts[j]``)."""
    index = {c: j for j, c in enumerate(text_concepts)}
    missing = [c for c in unique_in_order(concepts) if c not in index]
    if missing:
        raise DataError(f"{source}: no text embedding for {len(missing)} training concept(s), "
                        f"e.g. {missing[:3]}; rerun embed_text (dvc repro)")
    return text[[index[c] for c in concepts]]


def build_targets(kind: str, image_embeddings: np.ndarray, concepts: Sequence[str],
                  text: np.ndarray | None = None, text_concepts: Sequence[str] | None = None
                  ) -> np.ndarray:
    """Targets (n_images, d) of the training images for ``train.target`` = ``kind``.

    ``image_embeddings[i]`` and ``concepts[i]`` describe training image i; ``text`` (already
    in the image-embedding space, e.g. PCA-projected) is needed for ``kind == "text"``.
    """
    if kind == "image":
        return image_embeddings
    if kind == "concept_mean":
        return concept_mean_targets(image_embeddings, concepts)
    if kind == "text":
        if text is None or text_concepts is None:
            raise ValueError("train.target 'text' needs the text embeddings")
        if text.shape[1] != image_embeddings.shape[1]:
            raise DataError(f"text embeddings have {text.shape[1]} dims, the image targets "
                            f"{image_embeddings.shape[1]}; both must come from the same model "
                            f"and PCA")
        return text_targets(text, text_concepts, concepts)
    raise ValueError(f"unknown target {kind!r}")
