"""The embedding loop: batched, multi-process decoding, resumable from the chunk cache."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageFilter

from neurovision.errors import DataError
from neurovision.images import ImageSource
from neurovision.retrieval import l2_normalize
from neurovision.vision.cache import ChunkCache, chunk_config, chunk_key
from neurovision.vision.encoder import PRECISIONS, Encoder, inference_model
from neurovision.vision.features import (
    FINAL,
    FORWARD_CLASS_TOKEN,
    FORWARD_ENCODE_IMAGE,
    Tap,
    _class_token_vit,
    forward_path,
    run_blocks,
)
from neurovision.vision.runtime import torch_threads, usable_cpus

log = logging.getLogger(__name__)


class _Dataset:
    """torch Dataset: decode + preprocess image i (runs in DataLoader workers)."""

    def __init__(self, source: ImageSource, members: Sequence[str], preprocess: Any,
                 blur_sigma: float = 0.0):
        self.source, self.members, self.preprocess = source, list(members), preprocess
        self.blur_sigma = blur_sigma  # part of every cache key (see chunk_config)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int):
        name = self.members[i]
        img = self.source.image(name)
        if self.blur_sigma > 0:  # embed.blur_sigma: the blur prior, in stored-image pixels
            img = img.filter(ImageFilter.GaussianBlur(self.blur_sigma))
        return self.preprocess(img)


def embed_layers(encoder: Encoder, source: ImageSource, members: Sequence[str],
                 taps: Sequence[Tap], batch_size: int = 64, num_workers: int = 0,
                 progress: bool = True, *, threads: int | None = None,
                 precision: str = "float32", blur_sigma: float = 0.0,
                 cache_dir: str | Path | None = None, chunk_size: int = 512,
                 report: dict | None = None) -> dict[str, np.ndarray]:
    """L2-normalised float32 features (n_images, width) of every tap, in ``members`` order.

    Images are read straight from the source and decoded + preprocessed in ``num_workers``
    worker processes (0: in this process) while this process runs batches of ``batch_size``
    through the model once for all taps (:func:`neurovision.vision.features.run_blocks`)
    under ``torch.inference_mode`` with ``threads`` intra-op threads (None: all usable
    CPUs; the previous setting is restored afterwards).  A ``precision`` other than float32
    is lossy and logged; :func:`precision_fidelity` measures the loss.

    With ``cache_dir``, the images are processed in chunks of ``chunk_size`` consecutive
    members; each finished chunk of each tap is stored under :func:`chunk_key` and found
    chunks are not recomputed (a layer added later costs only its own pass, which stops at
    its block), so an interrupted run resumes where it stopped, and its result is
    byte-identical to an uninterrupted run's (batches never straddle chunks, so every image
    is encoded in the same batch either way).

    The final embedding takes the fastest exact path available (:func:`forward_path`); the
    path taken enters its cache keys and, with ``report``, is stored in
    ``report["forward"]``.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    if precision not in PRECISIONS:
        raise DataError(f"params: embed.precision: expected one of {list(PRECISIONS)}, got "
                        f"{precision!r}")
    members = list(members)
    source.check(members)
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"{chunk_size=} and {batch_size=} must be >= 1")
    taps = list(taps)
    bounds = [(s, min(s + chunk_size, len(members))) for s in range(0, len(members), chunk_size)]
    n_threads = usable_cpus() if threads is None else threads
    cache = ChunkCache(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.sweep()
        prints = source.fingerprints(members)

    def lookup(tap: Tap, forward: str) -> tuple[list | None, list]:
        """Chunk keys of ``tap`` and its chunks already in the cache (None: missing)."""
        if cache is None:
            return None, [None] * len(bounds)
        config = chunk_config(encoder, precision=precision, blur_sigma=blur_sigma,
                              batch_size=batch_size, threads=n_threads,
                              forward=forward if tap.block is None else tap.describe())
        keys = [chunk_key(config, members[s:e], prints[s:e]) for s, e in bounds]
        return keys, [cache.load(keys[i], e - s) for i, (s, e) in enumerate(bounds)]

    # The path the model's structure calls for; the probe below confirms it before use.
    forward = (FORWARD_CLASS_TOKEN if _class_token_vit(encoder.model) else FORWARD_ENCODE_IMAGE)
    keys, parts = {}, {}
    for tap in taps:
        keys[tap.name], parts[tap.name] = lookup(tap, forward)
    if any(p is None for tap in taps for p in parts[tap.name]):
        with torch_threads(threads), torch.inference_mode():
            model, dtype = inference_model(encoder, precision)
            path = forward_path(encoder.model)
        if path != forward:
            forward = path
            for tap in taps:
                if tap.block is None:
                    keys[tap.name], parts[tap.name] = lookup(tap, forward)
    if report is not None:
        report["forward"] = forward
    # per chunk, the taps it still lacks; batches never straddle a chunk boundary
    missing = [[t for t in taps if parts[t.name][i] is None] for i in range(len(bounds))]
    n_hit = sum(len(taps) - len(m) for m in missing)
    if cache is not None and n_hit:
        log.info("embed: %d of %d chunks found in the cache %s", n_hit,
                 len(bounds) * len(taps), cache.root)
    batches, owner = [], []
    for i, (s, e) in enumerate(bounds):
        if missing[i]:
            for b in range(s, e, batch_size):
                batches.append(list(range(b, min(b + batch_size, e))))
                owner.append(i)
    done = len(members) - sum(len(b) for b in batches)
    if batches:
        if precision != "float32":
            log.warning("embed: %s inference: faster, not exact (see precision_fidelity)",
                        precision)
        wanted = sorted({t.name for m in missing for t in m},
                        key=[t.name for t in taps].index)
        log.info("embed: %d images, layers %s (%s), final embedding: %s",
                 len(members) - done, wanted,
                 "; ".join(t.describe() for t in taps if t.name in wanted), forward)
        loader = DataLoader(_Dataset(source, members, encoder.preprocess, blur_sigma),
                            batch_sampler=batches, num_workers=min(num_workers, len(batches)))
        pending: dict[str, list[np.ndarray]] = {}
        with torch_threads(threads), torch.inference_mode(), \
                tqdm(total=len(members), initial=done, unit="img", desc="embed",
                     disable=not progress) as bar:
            for b, batch in enumerate(loader):
                chunk = owner[b]
                out = run_blocks(model, batch.to(dtype), missing[chunk],
                                 class_token=forward == FORWARD_CLASS_TOKEN)
                for name, value in out.items():
                    pending.setdefault(name, []).append(value.float().cpu().numpy())
                bar.update(len(batch))
                if b + 1 == len(batches) or owner[b + 1] != chunk:
                    for name, pieces in pending.items():
                        parts[name][chunk] = np.concatenate(pieces, axis=0)
                        if cache is not None:
                            cache.save(keys[name][chunk], parts[name][chunk])
                    pending = {}
    return {t.name: l2_normalize(np.concatenate(parts[t.name], axis=0)).astype(np.float32)
            for t in taps}


def embed_images(encoder: Encoder, source: ImageSource, members: Sequence[str],
                 batch_size: int = 64, num_workers: int = 0, progress: bool = True,
                 **kwargs: Any) -> np.ndarray:
    """The final embeddings alone (see :func:`embed_layers`)."""
    final = Tap(FINAL, None, 0, None)
    return embed_layers(encoder, source, members, [final], batch_size, num_workers, progress,
                        **kwargs)[FINAL]


def precision_fidelity(encoder: Encoder, source: ImageSource, members: Sequence[str],
                       precision: str, *, n_images: int = 32, batch_size: int = 16,
                       threads: int | None = None, blur_sigma: float = 0.0) -> dict:
    """How close ``precision`` embeddings are to float32 ones, on the first ``n_images``.

    Returns the minimum and mean cosine similarity and the maximum absolute difference
    between the two (L2-normalised) embeddings of each image.
    """
    probe = list(members)[:n_images]
    kw = dict(progress=False, threads=threads, blur_sigma=blur_sigma)
    ref = embed_images(encoder, source, probe, batch_size, **kw).astype(np.float64)
    low = embed_images(encoder, source, probe, batch_size, precision=precision,
                       **kw).astype(np.float64)
    cos = (ref * low).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(low, axis=1))
    return {"precision": precision, "n_images": len(probe),
            "min_cosine_to_float32": round(float(cos.min()), 6),
            "mean_cosine_to_float32": round(float(cos.mean()), 6),
            "max_abs_diff_to_float32": round(float(np.abs(ref - low).max()), 6)}
