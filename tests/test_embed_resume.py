"""Resumable embedding: a SIGKILLed embed stage resumes with byte-identical output, and the
chunk cache's keys change exactly when something that determines the numbers changes."""

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
from PIL import Image

from conftest import ROOT, write_params
from neurovision import demo
from neurovision.embed import (Encoder, ImageSource, chunk_config, chunk_key, embed_images,
                               load_encoder, precision_fidelity, torch_threads, usable_cpus)
from neurovision.params import DemoParams

MODEL = "ViT-S-32"  # the smallest OpenCLIP ViT: keeps these tests quick
ONE = dict(batch_size=2, progress=False, threads=1)  # 1 thread: quick on a busy machine too
OUTPUTS = ("train.npy", "test.npy", "provenance.json")


# --------------------------------------------------------------------------------------
# The stage, killed mid-run


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


# --------------------------------------------------------------------------------------
# The cache in the library: reuse, and invalidation by content


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


def test_cache_reuses_chunks_and_recomputes_only_a_changed_image(tmp_path, encoder, monkeypatch):
    names = _write_zip(tmp_path, [0, 1, 2, 3, 4])
    src = ImageSource(tmp_path, "test")
    cache = tmp_path / "cache"
    kw = dict(**ONE, chunk_size=2, cache_dir=cache)
    plain = embed_images(encoder, src, names, **ONE)
    first = embed_images(encoder, src, names, **kw)
    assert first.tobytes() == plain.tobytes()  # chunking changes nothing
    files = _chunks(cache)
    assert len(files) == 3  # chunks of 2, 2 and 1 image(s)

    # Everything cached: the model is not even prepared.
    import neurovision.embed as embed_mod
    def no_model(*args, **kwargs):
        raise AssertionError("the model ran although every chunk was cached")
    with monkeypatch.context() as m:
        m.setattr(embed_mod, "inference_model", no_model)
        again = embed_images(encoder, ImageSource(tmp_path, "test"), names, **kw)
    assert again.tobytes() == first.tobytes()

    # Image 3 changes content under the same name: only its chunk (images 2-3) is redone.
    _write_zip(tmp_path, [0, 1, 2, 99, 4])
    changed = embed_images(encoder, ImageSource(tmp_path, "test"), names, **kw)
    new_files = set(_chunks(cache)) - set(files)
    assert len(new_files) == 1
    assert np.array_equal(np.delete(changed, 3, axis=0), np.delete(first, 3, axis=0))
    assert not np.allclose(changed[3], first[3])
    fresh = embed_images(encoder, ImageSource(tmp_path, "test"), names, **ONE)
    assert changed.tobytes() == fresh.tobytes()


def test_corrupt_chunk_is_recomputed(tmp_path, encoder, caplog):
    names = _write_zip(tmp_path, [5, 6, 7])
    src = ImageSource(tmp_path, "test")
    kw = dict(**ONE, chunk_size=2, cache_dir=tmp_path / "cache")
    first = embed_images(encoder, src, names, **kw)
    victim = sorted((tmp_path / "cache").glob("*.npy"))[0]
    victim.write_bytes(b"not an npy file")
    again = embed_images(encoder, src, names, **kw)
    assert again.tobytes() == first.tobytes()
    assert "recomputing unreadable chunk" in caplog.text


def _fake(**kw) -> Encoder:
    base = dict(model=None, preprocess="Compose(Resize(224), CenterCrop(224))", name="ViT-B-32",
                pretrained="none", seed=0)
    return Encoder(**{**base, **kw})


def test_chunk_key_changes_with_model_weights_transform_blur_and_file(tmp_path):
    members, prints = ["test_images/a/1.jpg", "test_images/b/2.jpg"], ["crc32:1:10", "crc32:2:10"]
    key = lambda enc=None, m=members, f=prints, **kw: chunk_key(
        chunk_config(enc or _fake(), **kw), m, f)
    base = key()
    assert key() == base  # deterministic
    ckpt = tmp_path / "weights.pt"
    ckpt.write_bytes(b"weights one")
    with_ckpt = key(_fake(pretrained=str(ckpt), seed=None))
    ckpt.write_bytes(b"weights two")
    variants = {
        "model": key(_fake(name="RN50")),
        "tag": key(_fake(pretrained="openai", seed=None)),
        "seed": key(_fake(seed=1)),
        "transform": key(_fake(preprocess="Compose(Resize(256), CenterCrop(224))")),
        "blur": key(blur_sigma=2.0),
        "precision": key(precision="int8"),
        "batch size": key(batch_size=32),
        "file content": key(f=["crc32:1:10", "crc32:3:10"]),
        "file name": key(m=["test_images/a/1.jpg", "test_images/b/3.jpg"]),
        "checkpoint content": key(_fake(pretrained=str(ckpt), seed=None)),
    }
    for what, k in variants.items():
        assert k != base, what
    assert variants["checkpoint content"] != with_ckpt
    assert len(set(variants.values())) == len(variants)
    # A transform whose repr holds an object address gives the same key in every process.
    make = lambda: (lambda img: img)
    one, two = make(), make()
    assert repr(one) != repr(two)
    assert key(_fake(preprocess=one)) == key(_fake(preprocess=two))


def test_fingerprints_follow_content_in_zips_and_folders(tmp_path):
    names = _write_zip(tmp_path, [0, 1])
    z = ImageSource(tmp_path, "test").fingerprints(names)
    folder = tmp_path / "loose"
    for name, seed in zip(names, [0, 2]):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(_jpeg(seed))
    d = ImageSource(folder, "test").fingerprints(names)
    assert z[0] != z[1] and z[0].startswith("crc32:")
    assert d[0] != d[1] and d[0].startswith("sha256:")
    assert d[0] == ImageSource(folder, "test").fingerprints(names[:1])[0]


# --------------------------------------------------------------------------------------
# Threads, workers and precision


def test_threads_and_workers_do_not_change_the_result(tmp_path, encoder):
    import torch

    names = _write_zip(tmp_path, [10, 11, 12, 13])
    src = ImageSource(tmp_path, "test")
    before = torch.get_num_threads()
    ref = embed_images(encoder, src, names, batch_size=2, progress=False)
    one = embed_images(encoder, src, names, batch_size=2, progress=False, threads=1,
                       num_workers=2)
    assert one.tobytes() == ref.tobytes()
    assert torch.get_num_threads() == before  # restored
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_reduced_precision_is_measured_and_leaves_float32_alone(tmp_path, encoder, precision,
                                                                caplog):
    names = _write_zip(tmp_path, [20, 21, 22])
    src = ImageSource(tmp_path, "test")
    ref = embed_images(encoder, src, names, **ONE)
    low = embed_images(encoder, src, names, **ONE, precision=precision)
    assert f"{precision} inference" in caplog.text  # never silent
    cos = (ref.astype(np.float64) * low).sum(axis=1)
    assert 0.99 < cos.min() and not np.array_equal(low, ref)
    fid = precision_fidelity(encoder, src, names[:2], precision, batch_size=2, threads=1)
    assert fid["n_images"] == 2
    assert fid["min_cosine_to_float32"] == pytest.approx(cos[:2].min(), abs=1e-6)
    assert fid["max_abs_diff_to_float32"] == pytest.approx(np.abs(ref - low)[:2].max(), abs=1e-6)
    again = embed_images(encoder, src, names, **ONE)
    assert again.tobytes() == ref.tobytes()  # the float32 model was not modified


# --------------------------------------------------------------------------------------
# Compiled forward pass (embed.compile)


def test_compiled_forward_matches_eager_pads_and_is_cached_apart(tmp_path, encoder):
    names = _write_zip(tmp_path, [30, 31, 32, 33, 34])  # batches of 4 and 1 (padded to 4)
    src = ImageSource(tmp_path, "test")
    cache = tmp_path / "cache"
    kw = dict(batch_size=4, progress=False, cache_dir=cache)
    eager_report, compiled_report = {}, {}
    eager = embed_images(encoder, src, names, **kw, report=eager_report)
    compiled = embed_images(encoder, src, names, **kw, compile=True, report=compiled_report)
    assert "compiled" not in eager_report["forward"]
    assert compiled_report["forward"].endswith("compiled (torch.compile, inductor, frozen "
                                               "weights, batch 4)")
    assert np.abs(compiled - eager).max() < 1e-5
    assert len(_chunks(cache)) == 2  # one chunk per forward path: never mixed
    fn = encoder.compiled[(eager_report["forward"], 4)]
    again = embed_images(encoder, src, names[::-1], batch_size=4, progress=False, compile=True)
    assert encoder.compiled[(eager_report["forward"], 4)] is fn  # compiled once per process
    assert np.abs(again[::-1] - compiled).max() < 1e-5  # padding/batch position: no effect


def test_compile_failure_falls_back_to_eager(tmp_path, encoder, monkeypatch, caplog):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")
    monkeypatch.setattr(torch, "compile", broken)
    names = _write_zip(tmp_path, [40, 41])
    src = ImageSource(tmp_path, "test")
    report = {}
    got = embed_images(encoder, src, names, batch_size=64, progress=False, compile=True,
                       cache_dir=tmp_path / "cache", report=report)
    assert "torch.compile failed" in caplog.text and "no C++ compiler" in caplog.text
    assert "compiled" not in report["forward"]
    assert got.tobytes() == embed_images(encoder, src, names, batch_size=64,
                                         progress=False).tobytes()


def test_embed_compile_auto_follows_the_number_of_images():
    from neurovision.embed import COMPILE_MIN_IMAGES, resolve_compile
    from neurovision.errors import DataError

    assert resolve_compile("auto", 16_740) and not resolve_compile("auto", 700)
    assert resolve_compile("auto", COMPILE_MIN_IMAGES)
    assert resolve_compile(True, 1) and not resolve_compile(False, 10**6)
    with pytest.raises(DataError, match="embed.compile"):
        resolve_compile("yes", 10)
