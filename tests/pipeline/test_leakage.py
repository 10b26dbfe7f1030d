"""The train stage cannot see test data: its DVC deps hold none, it runs without the test
files, its outputs do not change when the test arrays do, and the contrastive mapper's
validation split holds only training concepts.

The stages run in-process exactly as dvc.yaml calls them (the commands are read from
dvc.yaml), on a tiny demo.  The OpenCLIP image embedding is replaced by fixed random
vectors to keep this fast; embed_text runs for real (random-weight text tower).

Statistics learned in earlier stages (ERP standardisation, PCA) are checked against the
training rows in tests/pipeline/test_training_only.py.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
import yaml

from conftest import ROOT, TINY_DEMO, load_stage, write_params
from neurovision.io import load_npy, load_npy_dict, save_npy, save_npy_dict
from neurovision.release import load_metadata
from neurovision.retrieval import l2_normalize

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
#: Paths that hold test-split data; the train stage must depend on none of them.
TEST_PATHS = ("data/raw/sub-", "data/features/test", "embeds/clip", "embeds/pca/test.npy",
              "data/ceiling")
FAST_CONTRASTIVE = {"batch_size": 64, "epochs": 15, "patience": 5, "threads": 1}


def stage_argv(name: str, subject: int = 1) -> list[str]:
    """The stage's argv as dvc.yaml runs it (``python stages/<name>.py ...``)."""
    spec = DVC[name]
    cmd = (spec["do"] if "foreach" in spec else spec)["cmd"].replace("${item}", str(subject))
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", f"stages/{name}.py"], argv
    return argv[2:]


def run_stage(name: str) -> None:
    load_stage(name).main(stage_argv(name))


def fake_clip(images_dir: Path, out: Path, seed: int) -> None:
    """Stand-in for the embed stage: fixed random unit vectors per image."""
    meta = load_metadata(images_dir / "image_metadata.npy")
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        n = len(meta[f"{split}_img_files"])
        save_npy(out / f"{split}.npy",
                 l2_normalize(rng.normal(size=(n, 512))).astype(np.float32))  # ViT-B-32 width


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A project directory after every stage up to trainset, pca and embed_text."""
    root = tmp_path_factory.mktemp("leakage")
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1], "local_dir": None, "demo": TINY_DEMO},
                 pca={"n_components": 8})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for name in ("download_images", "download", "erp", "pool", "trainset", "embed_text"):
            if name in DVC:
                run_stage(name)
        fake_clip(root / "data/raw/images", root / "embeds/clip", seed=0)
        run_stage("pca")
    return root


def set_train(root: Path, mapper: str, target: str) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(mapper=mapper, target=target)
    params["train"]["contrastive"].update(FAST_CONTRASTIVE)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def train_outputs(root: Path) -> dict[str, bytes]:
    outs = DVC["train"]["do"]["outs"]
    return {o: (root / o.replace("${item}", "1")).read_bytes() for o in outs}


def test_train_stage_deps_hold_no_test_data():
    deps = DVC["train"]["do"]["deps"]
    for dep in deps:
        assert not dep.startswith(TEST_PATHS), dep
    # and its command names no other input than its deps
    argv = stage_argv("train")
    inputs = [a for a in argv if "/" in a and not a.startswith("models/sub-")]
    assert set(inputs) <= {d.replace("${item}", "1") for d in deps}, inputs


@pytest.mark.parametrize("mapper, target", [("ridge", "image"), ("mlp", "concept_mean"),
                                            ("contrastive", "image"),
                                            ("contrastive", "text")])
def test_train_output_ignores_test_arrays(workdir, tmp_path, monkeypatch, mapper, target):
    """Test EEG and test embeddings replaced by other values, then deleted: the train
    stage writes the same bytes."""
    root = tmp_path / "p"
    shutil.copytree(workdir, root)
    monkeypatch.chdir(root)
    set_train(root, mapper, target)
    run_stage("train")
    before = train_outputs(root)
    # 1. different test values at the source, propagated by the upstream stages
    raw = root / "data/raw/sub-1/preprocessed_eeg_test.npy"
    d = load_npy_dict(raw)
    d["preprocessed_eeg_data"] = np.random.default_rng(1).normal(
        size=d["preprocessed_eeg_data"].shape) * 7 + 3
    save_npy_dict(raw, d)
    clip_test = load_npy(root / "embeds/clip/test.npy")
    save_npy(root / "embeds/clip/test.npy", clip_test[::-1] * -1)
    for name in ("erp", "pool", "trainset", "pca", "train"):
        if name in DVC:
            run_stage(name)
    assert not np.array_equal(load_npy(root / "embeds/pca/test.npy")[0],
                              load_npy(workdir / "embeds/pca/test.npy")[0])
    assert train_outputs(root) == before
    # 2. no test data at all
    for p in (raw, root / "data/features/test", root / "embeds/pca/test.npy",
              root / "embeds/clip/test.npy"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    run_stage("train")
    assert train_outputs(root) == before


def test_validation_split_holds_only_training_concepts(workdir, tmp_path, monkeypatch):
    root = tmp_path / "p"
    shutil.copytree(workdir, root)
    monkeypatch.chdir(root)
    set_train(root, "contrastive", "image")
    run_stage("train")
    model = joblib.load(root / "models/sub-1.joblib")
    meta = load_metadata(root / "data/raw/images/image_metadata.npy")
    train_c = meta["train_img_concepts"]
    val = set(model.val_groups_.tolist())
    assert val and val < set(train_c)
    # by identity (THINGS ids; demo concept names can repeat words across splits)
    things = dict(zip(train_c, meta["train_img_concepts_THINGS"]))
    assert not {things[c] for c in val} & set(meta["test_img_concepts_THINGS"])
    # about val_fraction of the training concepts, each with all of its images held out
    n_concepts = len(set(train_c))
    assert len(val) == round(0.1 * n_concepts)
    assert model.n_val_rows_ == sum(c in val for c in train_c)
