"""DVC runs the code it hashed: a stage imports its own workspace's library, and editing any
module a stage imports makes DVC see the stage as changed."""

from __future__ import annotations

import json
import re

import pytest

from conftest import TINY_DEMO, copy_project, dvc, write_params

pytestmark = pytest.mark.integration

SMALL = {**TINY_DEMO, "n_train_concepts": 10, "n_test": 8, "test_reps": 4, "image_size": 32}


def _mark(root, value: float) -> None:
    """Make the copy's library write ``marker: value`` into every subject's metrics."""
    path = root / "src/neurovision/evaluation.py"
    text = re.sub(r'\n    metrics\["marker"\] = [\d.]+\n', "\n", path.read_text())
    anchor = "    return metrics\n"
    assert text.count(anchor) == 1
    path.write_text(text.replace(anchor, f'    metrics["marker"] = {value}\n' + anchor))


def _commit(root, message: str) -> None:
    import subprocess

    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=root, check=True, capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("workspace"))
    write_params(root / "params.yaml", data={"source": "demo", "subjects": [1], "local_dir": None,
                                             "demo": SMALL},
                 pca={"n_components": 8}, embed={"batch_size": 8})
    return root


def test_stages_run_this_workspaces_library_not_the_installed_one(project):
    # The installed neurovision (this test's own) has no marker; the copy's library writes one.
    from neurovision import evaluation

    assert "marker" not in (*evaluation.subject_metrics.__code__.co_names, "")
    _mark(project, 1.0)
    dvc(project, "repro")  # no PYTHONPATH: see conftest.dvc
    metrics = json.loads((project / "metrics/subjects/sub-1/details.json").read_text())
    assert metrics["marker"] == 1.0
    _commit(project, "marker 1")

    # a temporary workspace (dvc exp run --temp) runs its own copy of the code too
    _mark(project, 2.0)
    _commit(project, "marker 2")
    dvc(project, "exp", "run", "--temp", "-n", "temp-run")
    dvc(project, "exp", "apply", "temp-run")  # its outputs into this workspace
    metrics = json.loads((project / "metrics/subjects/sub-1/details.json").read_text())
    assert metrics["marker"] == 2.0


def test_editing_an_imported_module_makes_the_stages_that_run_it_stale(project):
    dvc(project, "repro")
    assert "up to date" in dvc(project, "status").stdout
    channels = project / "src/neurovision/channels.py"
    original = channels.read_text()
    channels.write_text(original + "\n# an edit\n")
    try:
        status = dvc(project, "status", "--json").stdout
        stale = set(json.loads(status))
        # the demo's forward model uses the channel positions: download@1 and all after it
        assert {"download@1", "download_images"} <= stale
        assert "embed" not in stale and "pca" not in stale  # they do not import channels
    finally:
        channels.write_text(original)
    assert "up to date" in dvc(project, "status").stdout
