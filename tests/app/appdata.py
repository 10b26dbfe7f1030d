"""Tiny pipeline outputs for the explorer's tests, written by the real stage scripts.

download_images, download@N, preprocess@N, erp@N, evaluate@N, summarize and bundle run
in-process on a small demo.  Only the OpenCLIP embedding and the training are replaced (too
slow for UI tests): the gallery is random unit vectors and each mapper is a ridge fitted to noisy
copies of them, so the rankings are imperfect and differ between subjects.

The fixtures ``outputs`` and ``bundle`` are session-scoped (written once for all the app's
test modules); a module uses them by importing ``outputs_fixture`` / ``bundle_fixture``.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from conftest import TINY_DEMO, load_stage, write_params
from neurovision.io import load_npy, save_json, save_npy

APP_DEMO = {**TINY_DEMO, "n_train_concepts": 12, "n_test": 12, "test_reps": 10}
TOP_K = 5


def make_outputs(root: Path, subjects: tuple[int, ...] = (1, 2), top_k: int = TOP_K) -> Path:
    """Write the pipeline's outputs (in dvc.yaml's layout) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    params = write_params(root / "params.yaml",
                          data={"source": "demo", "subjects": list(subjects), "local_dir": None,
                                "demo": APP_DEMO}, evaluate={"top_k": top_k})
    prm = ["--params", str(params)]
    load_stage("download_images").main([*prm, "--out", str(root / "data/raw/images")])
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(APP_DEMO["n_test"], 8))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    save_npy(root / "embeds/pca/test/final.npy", gallery.astype(np.float32))
    for s in subjects:
        load_stage("download").main([*prm, "--subject", str(s), "--out",
                                     str(root / f"data/raw/sub-{s}"), "--ceiling",
                                     str(root / f"data/ceiling/sub-{s}.json")])
        load_stage("preprocess").main([*prm, "--subject", str(s), "--source",
                                       str(root / f"data/raw/sub-{s}"), "--out",
                                       str(root / f"data/eeg/sub-{s}")])
        load_stage("erp").main([*prm, "--subject", str(s), "--raw", str(root / f"data/eeg/sub-{s}"),
                                "--out-train", str(root / f"data/features/train/sub-{s}.npy"),
                                "--out-test", str(root / f"data/features/test/sub-{s}.npy"),
                                "--out-info", str(root / f"data/features/info/sub-{s}.json")])
        x = load_npy(root / f"data/features/test/sub-{s}.npy")
        noisy = gallery + rng.normal(scale=0.6, size=gallery.shape)
        (root / "models").mkdir(exist_ok=True)
        joblib.dump(Ridge(alpha=1.0).fit(x, noisy), root / f"models/sub-{s}.joblib")
        save_json(root / f"models/sub-{s}.json", {"layer": "final", "fused": False})
        load_stage("evaluate").main([
            *prm, "--subject", str(s), "--model", str(root / f"models/sub-{s}.joblib"),
            "--info", str(root / f"models/sub-{s}.json"),
            "--features", str(root / f"data/features/test/sub-{s}.npy"),
            "--gallery", str(root / "embeds/pca/test"),
            "--metadata", str(root / "data/raw/images/image_metadata.npy"),
            "--ceiling", str(root / f"data/ceiling/sub-{s}.json"),
            "--out", str(root / f"metrics/subjects/sub-{s}")])
    load_stage("summarize").main([*prm, "--subjects-dir", str(root / "metrics/subjects"),
                                  "--out", str(root / "metrics/retrieval.json"),
                                  "--details", str(root / "metrics/details.json"),
                                  "--table", str(root / "metrics/per_subject.csv")])
    return root


def make_bundle(root: Path, out: Path, image_size: int = 32) -> Path:
    """Run the bundle stage on the outputs under ``root`` (the arguments of dvc.yaml)."""
    load_stage("bundle").main([
        "--params", str(root / "params.yaml"),
        "--metadata", str(root / "data/raw/images/image_metadata.npy"),
        "--images", str(root / "data/raw/images"),
        "--summary", str(root / "metrics/details.json"),
        "--results", str(root / "metrics/subjects"), "--eeg", str(root / "data/eeg"),
        "--info", str(root / "data/features/info"), "--features", str(root / "data/features/test"),
        "--models", str(root / "models"), "--image-size", str(image_size), "--out", str(out)])
    return out


def unpack_images(root: Path) -> Path:
    """Replace the project's ``test_images.zip`` by the unpacked ``test_images/`` folder
    (the release's other layout, as ``data.source: local`` brings it in)."""
    images = root / "data/raw/images"
    with zipfile.ZipFile(images / "test_images.zip") as z:
        z.extractall(images)
    (images / "test_images.zip").unlink()
    assert (images / "test_images").is_dir()
    return root


def copy_outputs(outputs: Path, dest: Path) -> Path:
    """A private copy of the shared outputs, for a test that changes them."""
    shutil.copytree(outputs, dest)
    return dest


@pytest.fixture(scope="session", name="outputs")
def outputs_fixture(tmp_path_factory) -> Path:
    """The pipeline's outputs for subjects 1 and 2 (read-only: copy before changing)."""
    return make_outputs(tmp_path_factory.mktemp("outputs"))


@pytest.fixture(scope="session", name="bundle")
def bundle_fixture(outputs, tmp_path_factory) -> Path:
    """The bundle the bundle stage writes from :func:`outputs` (read-only)."""
    return make_bundle(outputs, tmp_path_factory.mktemp("bundle") / "bundle")
