"""Resumable embedding: a chunk cache keyed by everything that determines the numbers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurovision.io import file_hashes, save_npy
from neurovision.vision.encoder import Encoder
from neurovision.vision.features import FORWARD_ENCODE_IMAGE

log = logging.getLogger(__name__)

#: Bump when the meaning of a cached chunk changes.
CACHE_FORMAT = 1


def chunk_config(encoder: Encoder, *, precision: str = "float32", blur_sigma: float = 0.0,
                 batch_size: int = 64, forward: str = FORWARD_ENCODE_IMAGE,
                 threads: int = 1) -> dict:
    """What, besides the images, determines a chunk's embeddings to the last bit.

    Model, weights (tag, checkpoint content, or random-init seed), transform, blur,
    precision, batch size and torch's thread count (each can change the last bits of a
    matmul: how a reduction is split differs), ``forward`` (for the final embedding the path
    :func:`~neurovision.vision.features.forward_path` chose; for a block, which block and
    pooling) and the library versions.  The number of decoding workers does not enter: it does not
    change the result.
    """
    import open_clip
    import torch

    if encoder.pretrained.lower() == "none":
        weights = f"random-init seed={encoder.seed}"
    elif os.path.isfile(encoder.pretrained):
        weights = f"checkpoint sha256={file_hashes(encoder.pretrained)['sha256']}"
    else:
        weights = f"open_clip tag={encoder.pretrained}"
    return {"format": CACHE_FORMAT, "model": encoder.name, "weights": weights,
            # without object addresses ("<function f at 0x...>"), which change per process
            "transform": re.sub(r" at 0x[0-9a-fA-F]+", "", repr(encoder.preprocess)),
            "blur_sigma": float(blur_sigma), "precision": precision,
            "batch_size": int(batch_size), "threads": int(threads), "forward": forward,
            "torch": torch.__version__, "open_clip": open_clip.__version__}


def chunk_key(config: dict, members: Sequence[str], fingerprints: Sequence[str]) -> str:
    """Cache key of one chunk: the config plus each image's name and content fingerprint."""
    blob = json.dumps({"config": config, "images": [[m, f] for m, f in zip(members, fingerprints)]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class ChunkCache:
    """Finished chunks of raw (not yet normalised) embeddings, one ``<key>.npy`` each.

    Lives outside the DVC outputs (DVC deletes a stage's outputs before rerunning it), is
    written atomically (a killed run leaves no partial chunk), and never needs invalidating:
    a change of anything that matters changes the key.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def load(self, key: str, n_rows: int) -> np.ndarray | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            log.warning("embed cache: recomputing unreadable chunk %s (%s)", path, exc)
            return None
        if arr.dtype != np.float32 or arr.ndim != 2 or arr.shape[0] != n_rows \
                or not np.isfinite(arr).all():
            log.warning("embed cache: recomputing chunk %s (shape %s, dtype %s; expected %d "
                        "finite float32 rows)", path, arr.shape, arr.dtype, n_rows)
            return None
        return arr

    def save(self, key: str, arr: np.ndarray) -> None:
        save_npy(self.path(key), arr)

    def sweep(self, max_age_s: float = 3600.0) -> None:
        """Delete temporary files a killed run left behind (older than ``max_age_s``, so a
        concurrent run's files in progress are kept)."""
        if not self.root.is_dir():
            return
        now = time.time()
        for tmp in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > max_age_s:
                    tmp.unlink()
