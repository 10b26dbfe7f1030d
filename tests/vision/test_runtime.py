"""torch thread settings: set for the embedding loop, restored afterwards, and what they
change in the result."""

import os

import numpy as np
import pytest
from zips import write_zip

from neurovision.images import ImageSource
from neurovision.vision.embed import embed_images
from neurovision.vision.encoder import load_encoder
from neurovision.vision.runtime import torch_threads, usable_cpus

MODEL = "ViT-S-32"  # the smallest OpenCLIP ViT: keeps these tests quick


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(MODEL, "none", seed=0)


def test_workers_do_not_change_the_bytes_threads_only_the_last_bits(tmp_path, encoder):
    import torch

    names = write_zip(tmp_path, [10, 11, 12, 13])
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


