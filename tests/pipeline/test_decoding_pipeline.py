"""The contrastive mapper and the training targets through the real dvc CLI (tiny demo)."""

import json
import re
import subprocess

import pytest

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
    assert ran(out) <= {"train@1", "evaluate@1", "summarize", "bundle"}
    assert {"train@1", "evaluate@1"} <= ran(out)
    metrics = json.loads((project / "metrics/retrieval.json").read_text())
    assert metrics["mapper"] == "contrastive" and 0 <= metrics["top1"] <= 1
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    mappers = {rev["data"]["params"]["params.yaml"]["data"]["train"]["mapper"]
               for row in shown for e in (row.get("experiments") or []) for rev in e["revs"]}
    assert "contrastive" in mappers
