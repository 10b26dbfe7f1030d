"""torch thread settings: set for the embedding loop, restored afterwards, and what they
change in the result."""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurovision.images import ImageSource
from neurovision.vision.embed import embed_images
from neurovision.vision.encoder import load_encoder
from neurovision.vision.runtime import torch_threads, usable_cpus

MODEL = "ViT-S-32"  # the smallest OpenCLIP ViT: keeps these tests quick


def _jpeg(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write_zip(folder: Path, seeds: list[int]) -> list[str]:
    names = [f"test_images/{i:05d}_c/img_{i}.jpg" for i in range(len(seeds))]
    with zipfile.ZipFile(folder / "test_images.zip", "w") as zf:
        for name, seed in zip(names, seeds):
            zf.writestr(name, _jpeg(seed))
    return names


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(MODEL, "none", seed=0)


def test_workers_do_not_change_the_bytes_threads_only_the_last_bits(tmp_path, encoder):
    import torch

    names = _write_zip(tmp_path, [10, 11, 12, 13])
    src = ImageSource(tmp_path, "test")
    before = torch.get_num_threads()
    ref = embed_images(encoder, src, names, batch_size=2, progress=False, threads=2)
    workers = embed_images(encoder, src, names, batch_size=2, progress=False, threads=2,
                           num_workers=2)
    assert workers.tobytes() == ref.tobytes()
    # another thread count may split reductions differently (on some CPUs): float rounding
    # only, which is why the thread count is part of the embed cache's key
    one = embed_images(encoder, src, names, batch_size=2, progress=False, threads=1)
    assert np.abs(one - ref).max() < 1e-6
    assert torch.get_num_threads() == before  # restored
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)


