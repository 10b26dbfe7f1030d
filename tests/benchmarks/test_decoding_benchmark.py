"""The decoding benchmark (benchmarks/decoding.py) end to end on a tiny simulated dataset."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import ROOT, write_params


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_decoding",
                                                  ROOT / "benchmarks" / "decoding.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["n_train_concepts=30", "train_images_per_concept=3", "n_test=12", "test_reps=8",
        "image_size=32"]


def test_prints_one_table_and_caches_the_embeddings(bench, tmp_path, capsys, monkeypatch):
    params = write_params(tmp_path / "params.yaml", pca={"n_components": 8},
                          train={"contrastive": {"epochs": 5, "patience": 2, "batch_size": 32,
                                                 "threads": 1}})
    argv = ["--params", str(params), "--noise", "1", "3", "--mappers", "ridge", "contrastive",
            "--image-size", "32", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "rows.json"), "--demo", *TINY]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| noise | mapper | top-1 | top-5 | ideal top-1")
    assert len(lines) == 2 + 3 * 2  # header, rule, (noise 1, 3, none) x 2 mappers
    assert "Machine:" in out
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [(r["noise"], r["mapper"]) for r in rows] == [
        (1.0, "ridge"), (1.0, "contrastive"), (3.0, "ridge"), (3.0, "contrastive"),
        (None, "ridge"), (None, "contrastive")]
    for r in rows:
        assert 0 <= r["top1"] <= r["top5"] <= 1 and r["fit_s"] >= 0
        assert r["n_test"] == 12
    # the ideal observer is better with less noise, and perfect without
    assert rows[0]["ideal_top1"] >= rows[2]["ideal_top1"]
    assert rows[4]["ideal_top1"] == 1.0
    assert len(list((tmp_path / "cache").glob("targets-*.npz"))) == 1

    # a second run reuses the cached embeddings instead of embedding again
    def no_embedding(*args, **kwargs):
        raise AssertionError("embedded again despite the cache")

    monkeypatch.setattr(bench, "embed_images", no_embedding)
    assert bench.main([*argv[:-len(TINY) - 1], "--no-noise-free", "--demo", *TINY]) == 0
    rows2 = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [r["top1"] for r in rows2] == [r["top1"] for r in rows[:4]]  # seeded: same numbers


def test_a_mapper_with_an_image_tower_is_scored_through_it(bench):
    """The benchmark ranks the gallery as evaluate does: an align mapper's predictions live
    in its shared space, so the test images must pass through its image tower first."""
    import numpy as np

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(20, 6))
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]

    class TwoTowers:  # decodes each trial perfectly, into a rotated shared space
        def predict(self, x):
            return x @ rotation

        def transform_images(self, y):
            return y @ rotation

    assert bench.score(TwoTowers(), feats, feats)["top1"] == 1.0

    class OneTower:  # predicts image features themselves: no image tower
        def predict(self, x):
            return x

    assert bench.score(OneTower(), feats, feats)["top1"] == 1.0
