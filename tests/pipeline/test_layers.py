"""Intermediate layers through `dvc exp run`: extracted once, aligned to with two towers,
chosen on held-out training concepts, and a change of train.layer embeds nothing."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration

SMALL = {**TINY_DEMO, "n_train_concepts": 20, "n_test": 10, "test_reps": 10, "image_size": 32}
FAST = {"epochs": 20, "patience": 5, "batch_size": 64}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("layers"))
    write_params(root / "params.yaml", data={"source": "demo", "subjects": [1], "local_dir": None,
                                             "demo": SMALL},
                 pca={"n_components": 8}, embed={"batch_size": 8, "model": "ViT-S-32"},
                 train={"align": FAST, "contrastive": FAST})
    dvc(root, "repro")
    for args in (("add", "-A"), ("commit", "-qm", "baseline")):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def _details(root) -> dict:
    return json.loads((root / "metrics/subjects/sub-1/details.json").read_text())


def test_align_to_a_middle_layer_then_back_to_final_without_embedding(project):
    out = dvc(project, "exp", "run", "-S", "embed.layers=[final,0.5]", "-S", "train.layer=0.5",
              "-S", "train.mapper=align").stdout
    assert {"embed", "pca", "train@1", "evaluate@1"} <= ran(out)
    assert _details(project)["layer"] == "0.5" and _details(project)["mapper"] == "align"
    headline = json.loads((project / "metrics/subjects/sub-1/retrieval.json").read_text())
    assert headline["layer"] == "0.5"
    prov = json.loads((project / "embeds/clip/provenance.json").read_text())
    assert prov["layers"]["0.5"]["block"] == 6 and prov["layers"]["0.5"]["n_blocks"] == 12
    assert prov["layers"]["0.5"]["pool"] == "mean" and prov["layers"]["0.5"]["width"] == 384
    info = json.loads((project / "models/sub-1.json").read_text())
    assert info["layer"] == "0.5" and info["mapper"] == "align"

    out = dvc(project, "exp", "run", "-S", "train.layer=final").stdout
    assert "embed" not in ran(out) and "pca" not in ran(out)
    assert {"train@1", "evaluate@1"} <= ran(out)
    assert _details(project)["layer"] == "final"


def test_select_records_the_choice_and_every_candidates_score(project):
    proc = dvc(project, "exp", "run", "-S", "embed.layers=[final,0.25,0.5,0.75]",
               "-S", "train.layer=select", "-S", "train.mapper=ridge")
    # the layers extracted before come from the chunk cache: the pass runs for the new ones
    assert "layers ['0.25', '0.75']" in proc.stdout + proc.stderr
    info = json.loads((project / "models/sub-1.json").read_text())
    assert info["selected_from"] == ["final", "0.25", "0.5", "0.75"]
    assert set(info["val_top1"]) == set(info["selected_from"])
    best = max(info["val_top1"], key=lambda k: (info["val_top1"][k],
                                                -info["selected_from"].index(k)))
    assert info["layer"] == best
    details = _details(project)
    assert details["layer"] == best
    for layer, score in info["val_top1"].items():
        assert details[f"val_top1_{layer}"] == score and 0 <= score <= 1
