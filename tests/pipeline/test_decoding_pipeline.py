"""The contrastive mapper and the training targets through the real dvc CLI (tiny demo)."""

import json
import re
import subprocess

import joblib
import numpy as np
import pytest
import yaml
from sklearn.linear_model import Ridge

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("decoding"))
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1], "local_dir": None, "demo": TINY_DEMO},
                 pca={"n_components": 16})
    dvc(root, "repro")
    for args in (("add", "-A"), ("commit", "-qm", "baseline")):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def test_text_embeddings_feed_train_and_nothing_of_the_test_does(project):
    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', dvc(project, "dag", "--dot").stdout))
    assert ("download_images", "embed_text") in edges and ("embed_text", "train@1") in edges
    assert ("download@1", "train@1") not in edges and ("erp@1", "train@1") not in edges
    prov = json.loads((project / "embeds/text/provenance.json").read_text())
    assert len(prov["concepts"]) == TINY_DEMO["n_train_concepts"]  # training concepts only
    assert prov["prompts"][0].startswith("a photo of a ")


@pytest.mark.parametrize("target", ["concept_mean", "text"])
def test_exp_run_contrastive(project, target):
    out = dvc(project, "exp", "run", "-S", "train.mapper=contrastive",
              "-S", f"train.target={target}").stdout
    assert ran(out) <= {"check", "train@1", "evaluate@1", "summarize", "bundle"}
    assert {"train@1", "evaluate@1"} <= ran(out)
    metrics = json.loads((project / "metrics/details.json").read_text())
    assert metrics["mapper"] == "contrastive" and 0 <= metrics["top1"] <= 1
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    mappers = {rev["data"]["params"]["params.yaml"]["data"]["train"]["mapper"]
               for row in shown for e in (row.get("experiments") or []) for rev in e["revs"]}
    assert "contrastive" in mappers


def _expected_targets(root, target: str) -> np.ndarray:
    """The rows' targets, computed here from the stage outputs without the project's code."""
    pca_train = np.load(root / "embeds/pca/train/final.npy")
    rows = np.load(root / "data/trainsets/sub-1/image_index.npy")
    meta = np.load(root / "data/raw/images/image_metadata.npy", allow_pickle=True).item()
    concepts = list(meta["train_img_concepts"])  # our own demo file: safe to unpickle here
    if target == "image":
        per_image = pca_train
    elif target == "concept_mean":
        per_image = np.stack([pca_train[[j for j, c in enumerate(concepts) if c == concepts[i]]]
                              .mean(axis=0) for i in range(len(concepts))])
    else:
        text = np.load(root / "embeds/text/train.npy")
        names = json.loads((root / "embeds/text/provenance.json").read_text())["concepts"]
        pca = joblib.load(root / "models/pca/final.joblib")  # written by the pca stage
        projected = (text - pca.mean_) @ pca.components_.T
        per_image = np.stack([projected[names.index(c)] for c in concepts])
    return per_image[rows]


def test_train_target_reaches_the_model(project):
    """Each train.target fits the mapper to its own targets: the saved ridge equals a ridge
    fitted here on the targets computed independently, and the three models differ."""
    coefs = {}
    for target in ("image", "concept_mean", "text"):
        dvc(project, "exp", "run", "-S", "train.mapper=ridge", "-S", f"train.target={target}")
        model = joblib.load(project / "models/sub-1.joblib")
        x = np.load(project / "data/trainsets/sub-1/X.npy")
        alpha = yaml.safe_load((project / "params.yaml").read_text())["train"]["ridge"]["alpha"]
        ref = Ridge(alpha=alpha).fit(x, _expected_targets(project, target))
        np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-4, atol=1e-6)
        coefs[target] = model.coef_
    assert not np.allclose(coefs["image"], coefs["concept_mean"])
    assert not np.allclose(coefs["image"], coefs["text"])
    assert not np.allclose(coefs["concept_mean"], coefs["text"])
