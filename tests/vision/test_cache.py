"""Resumable embedding: a SIGKILLed embed stage resumes with byte-identical output, and the
chunk cache's keys change exactly when something that determines the numbers changes."""

from pathlib import Path

import numpy as np
import pytest
from zips import jpeg, write_zip

from neurovision.images import ImageSource
from neurovision.vision.cache import chunk_config, chunk_key
from neurovision.vision.embed import embed_images
from neurovision.vision.encoder import Encoder, load_encoder

MODEL = "ViT-S-32"  # the smallest OpenCLIP ViT: keeps these tests quick


ONE = dict(batch_size=2, progress=False, threads=1)  # 1 thread: quick on a busy machine too


def _chunks(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")} if cache.is_dir() else {}


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(MODEL, "none", seed=0)


def test_cache_reuses_chunks_and_recomputes_only_a_changed_image(tmp_path, encoder, monkeypatch):
    names = write_zip(tmp_path, [0, 1, 2, 3, 4])
    src = ImageSource(tmp_path, "test")
    cache = tmp_path / "cache"
    kw = dict(**ONE, chunk_size=2, cache_dir=cache)
    plain = embed_images(encoder, src, names, **ONE)
    first = embed_images(encoder, src, names, **kw)
    assert first.tobytes() == plain.tobytes()  # chunking changes nothing
    files = _chunks(cache)
    assert len(files) == 3  # chunks of 2, 2 and 1 image(s)

    # Everything cached: the model is not even prepared.
    import neurovision.vision.embed as embed_mod
    def no_model(*args, **kwargs):
        raise AssertionError("the model ran although every chunk was cached")
    with monkeypatch.context() as m:
        m.setattr(embed_mod, "inference_model", no_model)
        again = embed_images(encoder, ImageSource(tmp_path, "test"), names, **kw)
    assert again.tobytes() == first.tobytes()

    # Image 3 changes content under the same name: only its chunk (images 2-3) is redone.
    write_zip(tmp_path, [0, 1, 2, 99, 4])
    changed = embed_images(encoder, ImageSource(tmp_path, "test"), names, **kw)
    new_files = set(_chunks(cache)) - set(files)
    assert len(new_files) == 1
    assert np.array_equal(np.delete(changed, 3, axis=0), np.delete(first, 3, axis=0))
    assert not np.allclose(changed[3], first[3])
    fresh = embed_images(encoder, ImageSource(tmp_path, "test"), names, **ONE)
    assert changed.tobytes() == fresh.tobytes()


def test_corrupt_chunk_is_recomputed(tmp_path, encoder, caplog):
    names = write_zip(tmp_path, [5, 6, 7])
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
    """...and precision, batch size, thread count, forward path and image name/content."""
    members, prints = ["test_images/a/1.jpg", "test_images/b/2.jpg"], ["crc32:1:10", "crc32:2:10"]
    def key(enc=None, m=members, f=prints, **kw):
        return chunk_key(
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
        "threads": key(threads=2),
        "file content": key(f=["crc32:1:10", "crc32:3:10"]),
        "file name": key(m=["test_images/a/1.jpg", "test_images/b/3.jpg"]),
        "checkpoint content": key(_fake(pretrained=str(ckpt), seed=None)),
    }
    for what, k in variants.items():
        assert k != base, what
    assert variants["checkpoint content"] != with_ckpt
    assert len(set(variants.values())) == len(variants)
    # A transform whose repr holds an object address gives the same key in every process.
    def make():
        return (lambda img: img)
    one, two = make(), make()
    assert repr(one) != repr(two)
    assert key(_fake(preprocess=one)) == key(_fake(preprocess=two))


def test_fingerprints_follow_content_in_zips_and_folders(tmp_path):
    names = write_zip(tmp_path, [0, 1])
    z = ImageSource(tmp_path, "test").fingerprints(names)
    folder = tmp_path / "loose"
    for name, seed in zip(names, [0, 2]):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(jpeg(seed))
    d = ImageSource(folder, "test").fingerprints(names)
    assert z[0] != z[1] and z[0].startswith("crc32:")
    assert d[0] != d[1] and d[0].startswith("sha256:")
    assert d[0] == ImageSource(folder, "test").fingerprints(names[:1])[0]


