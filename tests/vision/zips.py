"""Small image zips in the release's layout, for the vision tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg(seed: int) -> bytes:
    """A seeded 40 x 40 random RGB image as JPEG bytes."""
    arr = np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_zip(folder: Path, seeds: list[int]) -> list[str]:
    """``folder/test_images.zip`` with one image per seed; returns the member names."""
    names = [f"test_images/{i:05d}_c/img_{i}.jpg" for i in range(len(seeds))]
    with zipfile.ZipFile(folder / "test_images.zip", "w") as zf:
        for name, seed in zip(names, seeds):
            zf.writestr(name, jpeg(seed))
    return names
