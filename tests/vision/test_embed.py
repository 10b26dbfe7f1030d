"""Resumable embedding: a SIGKILLed embed stage resumes with byte-identical output, and the
chunk cache's keys change exactly when something that determines the numbers changes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import ROOT, write_params
from neurovision import demo
from neurovision.errors import DataError
from neurovision.images import ImageSource
from neurovision.params import DemoParams
from neurovision.vision.embed import _Dataset, embed_images
from neurovision.vision.encoder import load_encoder

MODEL = "ViT-S-32"  # the smallest OpenCLIP ViT: keeps these tests quick


OUTPUTS = ("final/train.npy", "final/test.npy", "provenance.json")


def _stage_cmd(root: Path, out: str, cache: str) -> list[str]:
    return [sys.executable, str(ROOT / "stages" / "embed.py"), "--params",
            str(root / "params.yaml"), "--images", str(root / "images"), "--out",
            str(root / out), "--cache-dir", str(root / cache)]


def _env(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    demo.write_images(root / "images", DemoParams(n_train_concepts=8, train_images_per_concept=2,
                                                  n_test=4, image_size=32))
    write_params(root / "params.yaml", embed={
        "model": MODEL, "pretrained": "none", "seed": 0, "batch_size": 2, "num_workers": 1,
        "threads": None, "precision": "float32", "chunk_size": 2})
    return root


def _chunks(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")} if cache.is_dir() else {}


def test_killed_stage_resumes_with_identical_output(stage_dir):
    root = stage_dir
    n_chunks = 16 // 2 + 4 // 2  # training and test images, 2 per chunk
    # An uninterrupted run, with its own cache.
    ref = subprocess.run(_stage_cmd(root, "ref", "cache_ref"), env=_env(root),
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    assert len(_chunks(root / "cache_ref")) == n_chunks

    # The same, SIGKILLed (with its decoding worker: the whole process group) as soon as the
    # first chunk is on disk.
    cache = root / "cache"
    proc = subprocess.Popen(_stage_cmd(root, "out", "cache"), env=_env(root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    while not _chunks(cache) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the stage finished before it could be killed"
    before = _chunks(cache)
    assert 1 <= len(before) < n_chunks
    assert not (root / "out").exists()  # nothing half-written in the output's place

    resumed = subprocess.run(_stage_cmd(root, "out", "cache"), env=_env(root),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "found in the cache" in resumed.stderr
    after = _chunks(cache)
    assert len(after) == n_chunks
    assert {k: after[k] for k in before} == before  # finished chunks were reused, not redone
    for name in OUTPUTS:
        assert (root / "out" / name).read_bytes() == (root / "ref" / name).read_bytes(), name


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("ViT-B-32", "none", seed=0)


def test_embeddings_follow_member_order_and_are_normalised(tmp_path, encoder):
    rng = np.random.default_rng(0)
    names = [f"test_images/c{i}/img{i}.jpg" for i in range(5)]
    with zipfile.ZipFile(tmp_path / "test_images.zip", "w") as zf:
        for name in names:
            arr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "JPEG")
            zf.writestr(name, buf.getvalue())
    src = ImageSource(tmp_path, "test")
    fwd = embed_images(encoder, src, names, batch_size=2, progress=False)
    rev = embed_images(encoder, src, names[::-1], batch_size=3, progress=False)
    assert fwd.dtype == np.float32 and fwd.shape == (5, 512)
    np.testing.assert_allclose(np.linalg.norm(fwd, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(fwd[::-1], rev, atol=1e-5)
    assert not np.allclose(fwd[0], fwd[1])
    with pytest.raises(DataError, match="missing"):
        src.check([*names, "test_images/nope/x.jpg"])


@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_blur_is_applied_before_the_transform(tmp_path, sigma):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    with zipfile.ZipFile(tmp_path / "training_images.zip", "w") as zf:
        zf.writestr("training_images/00001_a/a_01.png", buf.getvalue())
    ds = _Dataset(ImageSource(tmp_path, "train"), ["training_images/00001_a/a_01.png"],
                  preprocess=np.asarray, blur_sigma=sigma)
    expected = img.filter(ImageFilter.GaussianBlur(sigma)) if sigma else img
    np.testing.assert_array_equal(ds[0], np.asarray(expected))
    if sigma:  # blurring a noise image lowers its variance
        assert ds[0].astype(float).std() < 0.7 * np.asarray(img).astype(float).std()
