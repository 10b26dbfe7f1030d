"""data.eeg: raw through the real pipeline: `dvc exp run` in a temporary git repository on a
tiny demo, with the parameters the issue names (the official steps, 250 Hz and -0.2 .. 1.0 s,
all 63 channels), and the check stage stopping a mismatch before anything runs."""

from __future__ import annotations

import itertools
import json
import re
import subprocess

import pytest

from conftest import TINY_DEMO, copy_project, dvc, write_params
from neurovision.channels import RAW_CHANNELS
from neurovision.release import RELEASE_CHANNELS

pytestmark = pytest.mark.integration


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def git(cwd, *args) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("project"))
    write_params(root / "params.yaml",
                 data={"source": "demo", "subjects": [1], "local_dir": None, "demo": TINY_DEMO},
                 pca={"n_components": 16})
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline")
    return root


def info(root) -> dict:
    return json.loads((root / "data/features/info/sub-1.json").read_text())


def baseline(root) -> None:
    git(root, "checkout", "HEAD", "--", "params.yaml")


def test_raw_recordings_run_end_to_end(project):
    out = dvc(project, "exp", "run", "-S", "data.eeg=raw").stdout
    assert {"download@1", "preprocess@1", "erp@1", "train@1", "evaluate@1",
            "summarize"} <= ran(out)
    raw = project / "data/raw/sub-1"
    assert sorted(p.name for p in raw.iterdir()) == ["ses-01", "ses-02", "ses-03", "ses-04"]
    summary = json.loads((project / "data/eeg/sub-1/preprocess.json").read_text())
    assert summary["params"]["sfreq"] == 100.0 and summary["params"]["mvnn_fit"] == "train"
    n_train = TINY_DEMO["n_train_concepts"] * TINY_DEMO["train_images_per_concept"]
    assert summary["shapes"] == {
        "preprocessed_eeg_training.npy": [n_train, TINY_DEMO["train_reps"], 17, 100],
        "preprocessed_eeg_test.npy": [TINY_DEMO["n_test"], TINY_DEMO["test_reps"], 17, 100]}
    i = info(project)
    assert i["channels"] == list(RELEASE_CHANNELS) and len(i["times"]) == 100
    assert abs(i["times"][1] - i["times"][0] - 0.01) < 1e-9
    metrics = json.loads((project / "metrics/subjects/sub-1/details.json").read_text())
    assert metrics["n_test"] == TINY_DEMO["n_test"] and "ideal_top1" not in metrics
    assert metrics["top5"] > 1.5 * metrics["top5_chance"]  # the simulated signal is decodable
    # the same again reruns nothing; a preprocessing parameter reruns from preprocess@1 on
    assert ran(dvc(project, "exp", "run", "-S", "data.eeg=raw").stdout) == set()
    again = ran(dvc(project, "exp", "run", "-S", "data.eeg=raw",
                    "-S", "preprocess.mvnn_fit=train+test").stdout)
    assert "preprocess@1" in again and "download@1" not in again
    baseline(project)


def test_250_hz_and_a_longer_epoch_reach_the_erp_info(project):
    dvc(project, "exp", "run", "-S", "data.eeg=raw", "-S", "preprocess.sfreq=250",
        "-S", "preprocess.tmin=-0.2", "-S", "preprocess.tmax=1.0")
    times = info(project)["times"]
    assert len(times) == 300 and abs(times[0] + 0.2) < 1e-9 and abs(times[-1] - 0.996) < 1e-9
    assert all(abs(b - a - 0.004) < 1e-9 for a, b in itertools.pairwise(times))
    assert info(project)["n_features"] == 17 * 201  # erp.tmin..tmax: 0.0 .. 0.8 s at 250 Hz
    baseline(project)


def test_all_63_channels_go_through_erp_to_evaluate(project):
    out = dvc(project, "exp", "run", "-S", "data.eeg=raw", "-S", "preprocess.channels=all").stdout
    assert {"preprocess@1", "erp@1", "train@1", "evaluate@1"} <= ran(out)
    i = info(project)
    assert len(i["channels"]) == 63 and set(i["channels"]) == set(RAW_CHANNELS)
    assert i["channels"][:17] == list(RELEASE_CHANNELS)
    assert i["n_features"] == 63 * 80
    retrieval = json.loads((project / "metrics/subjects/sub-1/retrieval.json").read_text())
    assert retrieval["n_test"] == TINY_DEMO["n_test"]
    baseline(project)


def test_check_stops_an_erp_window_outside_the_epoch_before_anything_runs(project):
    proc = dvc(project, "exp", "run", "-S", "data.eeg=raw", "-S", "preprocess.tmax=0.5",
               check=False)
    assert proc.returncode != 0
    assert "params: erp.tmax: expected a time inside the epoch, preprocess.tmin..preprocess.tmax" \
        in proc.stdout + proc.stderr
    assert ran(proc.stdout) == {"check"}
    baseline(project)
