"""Reproducibility: two `dvc repro` runs from scratch, in two fresh copies, agree to the byte.

The mapper is the seeded, stochastic one (``mlp``: random initialisation, shuffled
mini-batches, a random early-stopping split), so the check covers more than a closed-form
fit; the embedding uses OpenCLIP with seeded random weights.  Changing only ``train.seed``
changes the metrics and the per-trial outputs, and nothing upstream of the mapper.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration

#: TINY_DEMO with fewer images (48 training, 10 test): embedding takes seconds.
DEMO = {**TINY_DEMO, "n_train_concepts": 12, "n_test": 10}


def configure(root: Path) -> Path:
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1], "local_dir": None, "demo": DEMO},
                 pca={"n_components": 16}, embed={"batch_size": 8},
                 train={"mapper": "mlp", "seed": 0,
                        "mlp": {"hidden_sizes": [64], "max_iter": 60, "patience": 5}})
    return root


def outputs(root: Path) -> dict[str, str]:
    """md5 of every output of every stage, as dvc.lock records it."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {f"{stage}:{o['path']}": o["md5"]
            for stage, entry in lock["stages"].items() for o in entry.get("outs", [])}


def files(root: Path, folder: str) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted((root / folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    # both copies first, so they hold the same code; then the two runs from scratch
    a, b = (configure(copy_project(tmp_path_factory.mktemp(n))) for n in ("run-a", "run-b"))
    dvc(a, "repro")
    dvc(b, "repro")
    return a, b


def test_two_runs_from_scratch_are_byte_identical(runs):
    a, b = runs
    metrics_a, metrics_b = files(a, "metrics"), files(b, "metrics")
    for required in ("metrics/retrieval.json", "metrics/subjects/sub-1/retrieval.json",
                     "metrics/subjects/sub-1/trials.json"):
        assert required in metrics_a
    assert metrics_a.keys() == metrics_b.keys()
    for name in metrics_a:
        assert metrics_a[name] == metrics_b[name], f"{name} differs between the two runs"
    # every other output too: raw data, features, embeddings, PCA, training sets, models
    out_a, out_b = outputs(a), outputs(b)
    assert len(out_a) > 10 and out_a == out_b


def test_changing_only_the_seed_changes_the_results(runs):
    a, _ = runs
    before_metrics, before_outputs = files(a, "metrics"), outputs(a)
    params = yaml.safe_load((a / "params.yaml").read_text())
    params["train"]["seed"] = 1
    (a / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(a, "repro")
    after_metrics, after_outputs = files(a, "metrics"), outputs(a)
    for name in ("metrics/subjects/sub-1/retrieval.json", "metrics/subjects/sub-1/trials.json",
                 "metrics/retrieval.json"):
        assert after_metrics[name] != before_metrics[name], f"{name} ignores train.seed"
    changed = {k for k in before_outputs if before_outputs[k] != after_outputs.get(k)}
    assert "train@1:models/sub-1.skops" in changed
    # everything upstream of the mapper is untouched by its seed
    for key in before_outputs:
        if key.split(":")[0].split("@")[0] in ("download_images", "download", "erp", "embed",
                                               "pca", "trainset"):
            assert key not in changed, key
