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
from neurovision.io import load_npy, load_npy_dict, save_json, save_npy, save_npy_dict
from neurovision.release import load_metadata
from neurovision.retrieval import l2_normalize

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
#: Paths that hold test-split data (subject 1); the train stage must depend on none of them,
#: nothing inside them and no folder that holds them.
TEST_PATHS = ("data/raw/sub-1/preprocessed_eeg_test.npy",
              "data/eeg/sub-1/preprocessed_eeg_test.npy", "data/features/test/sub-1.npy",
              "embeds/clip/final/test.npy", "embeds/pca/test/final.npy",
              "data/ceiling/sub-1.json")


def overlaps(dep: str, path: str) -> bool:
    """``dep`` is ``path``, lies inside it, or is a folder that holds it."""
    a, b = Path(dep), Path(path)
    return a == b or b in a.parents or a in b.parents
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
    widths = {"final": 512, "0.5": 384}  # ViT-B-32's embedding, a ViT-S block's width
    for layer, width in widths.items():
        for split in ("train", "test"):
            n = len(meta[f"{split}_img_files"])
            save_npy(out / layer / f"{split}.npy",
                     l2_normalize(rng.normal(size=(n, width))).astype(np.float32))
    save_json(out / "provenance.json", {"layers": {k: {"width": w} for k, w in widths.items()}})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A project directory after every stage up to trainset, pca and embed_text."""
    root = tmp_path_factory.mktemp("leakage")
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1], "local_dir": None, "demo": TINY_DEMO},
                 pca={"n_components": 8}, embed={"layers": ["final", 0.5]})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for name in ("check", "download_images", "download", "preprocess", "erp", "pool",
                     "trainset", "embed_text"):
            if name in DVC:
                run_stage(name)
        fake_clip(root / "data/raw/images", root / "embeds/clip", seed=0)
        run_stage("pca")
    return root


def set_train(root: Path, mapper: str, target: str, layer: str | float = "final") -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(mapper=mapper, target=target, layer=layer)
    params["train"]["contrastive"].update(FAST_CONTRASTIVE)
    params["train"]["align"].update(FAST_CONTRASTIVE)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def rename_test_entries(root: Path) -> None:
    """Give the test images of image_metadata.npy other names, concepts and THINGS ids,
    none of which any training entry has."""
    path = root / "data/raw/images/image_metadata.npy"
    meta = load_npy_dict(path)
    meta = {k: (list(v) if not k.startswith("test_") else [f"held-out-{i}-{x}" for i, x in
                                                            enumerate(v)])
            for k, v in meta.items()}
    save_npy_dict(path, meta)


def train_outputs(root: Path) -> dict[str, bytes]:
    outs = DVC["train"]["do"]["outs"]
    return {o: (root / o.replace("${item}", "1")).read_bytes() for o in outs}


def test_train_stage_deps_hold_no_test_data():
    deps = DVC["train"]["do"]["deps"]
    for dep in deps:
        dep = dep.replace("${item}", "1")
        assert not any(overlaps(dep, t) for t in TEST_PATHS), dep
    # the check itself: a parent folder of test data, or the test file, would be caught
    assert overlaps("data/eeg", TEST_PATHS[1]) and overlaps("embeds/pca/test", TEST_PATHS[4])
    assert overlaps("embeds/pca", TEST_PATHS[4]) and not overlaps("embeds/pca/train", TEST_PATHS[4])
    # and its command names no other input than its deps
    argv = stage_argv("train")
    inputs = [a for a in argv if "/" in a and not a.startswith("models/sub-")]
    assert set(inputs) <= {d.replace("${item}", "1") for d in deps}, inputs


@pytest.mark.parametrize("mapper, target, layer", [
    ("ridge", "image", "final"), ("mlp", "concept_mean", "final"),
    ("contrastive", "image", "final"), ("contrastive", "text", "final"),
    ("align", "image", 0.5), ("ridge", "image", "select"), ("align", "concept_mean", "select"),
    ("ridge", "image", ["final", 0.5])])
def test_train_output_ignores_test_arrays(workdir, tmp_path, monkeypatch, mapper, target, layer):
    """Test EEG and test embeddings replaced by other values, then deleted: the train
    stage writes the same bytes (the model and its info: the layer it chose, and why)."""
    root = tmp_path / "p"
    shutil.copytree(workdir, root)
    monkeypatch.chdir(root)
    set_train(root, mapper, target, layer)
    run_stage("train")
    before = train_outputs(root)
    # 1. different test values at the source, propagated by the upstream stages
    raw = root / "data/eeg/sub-1/preprocessed_eeg_test.npy"
    d = load_npy_dict(raw)
    d["preprocessed_eeg_data"] = np.random.default_rng(1).normal(
        size=d["preprocessed_eeg_data"].shape) * 7 + 3
    save_npy_dict(raw, d)
    for name in ("final", "0.5"):
        clip_test = load_npy(root / f"embeds/clip/{name}/test.npy")
        save_npy(root / f"embeds/clip/{name}/test.npy", clip_test[::-1] * -1)
    rename_test_entries(root)  # the test entries of the metadata, too
    for name in ("erp", "pool", "trainset", "pca", "train"):
        if name in DVC:
            run_stage(name)
    assert not np.array_equal(load_npy(root / "embeds/pca/test/final.npy")[0],
                              load_npy(workdir / "embeds/pca/test/final.npy")[0])
    assert train_outputs(root) == before
    # 2. no test data at all
    for p in (raw, root / "data/features/test", root / "embeds/pca/test",
              root / "embeds/clip/final/test.npy", root / "embeds/clip/0.5/test.npy"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    run_stage("train")
    assert train_outputs(root) == before


def test_validation_split_holds_only_training_concepts(workdir, tmp_path, monkeypatch):
    root = tmp_path / "p"
    shutil.copytree(workdir, root)
    monkeypatch.chdir(root)
    # test concepts named unlike any training concept, so that validation groups drawn from
    # the test entries could not pass as training concepts below
    rename_test_entries(root)
    set_train(root, "contrastive", "image")
    run_stage("train")
    model = joblib.load(root / "models/sub-1.joblib")
    meta = load_metadata(root / "data/raw/images/image_metadata.npy")
    train_c = meta["train_img_concepts"]
    val = set(model.val_groups_.tolist())
    assert val and val < set(train_c)
    assert not val & set(meta["test_img_concepts"])
    # about val_fraction of the training concepts, each with all of its images held out
    n_concepts = len(set(train_c))
    assert len(val) == round(0.1 * n_concepts)
    assert model.n_val_rows_ == sum(c in val for c in train_c)
