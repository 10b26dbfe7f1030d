"""The explorer's page through Streamlit's AppTest, on the pipeline's outputs and a bundle."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from appdata import (  # noqa: F401  (the fixtures)
    APP_DEMO,
    TOP_K,
    bundle_fixture,
    copy_outputs,
    make_bundle,
    outputs_fixture,
    unpack_images,
)
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from neurovision import experiments
from neurovision.app.views import concept_name
from neurovision.errors import NeurovisionError

APP = ROOT / "src" / "neurovision" / "app" / "streamlit_app.py"
N_TEST = APP_DEMO["n_test"]


def trials_of(root: Path, subject: int) -> list[dict]:
    return json.loads((root / f"metrics/subjects/sub-{subject}/trials.json").read_text())


def run_app(monkeypatch, *args: str) -> AppTest:
    monkeypatch.setattr(sys, "argv", ["streamlit_app.py", *args])
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    return at


def walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from walk(child)


def result_captions(at: AppTest) -> list[str]:
    """Captions of the images in the 'results' container (the top-K grid), in order."""
    block = next(n for n in walk(at._tree)
                 if getattr(n, "type", None) == "flex_container"
                 and str(getattr(n.proto, "id", "")).endswith("-results"))
    return [c for n in walk(block) if getattr(n, "type", None) == "image" for c in n.captions]


def rank_shown(at: AppTest) -> int:
    (m,) = [m for m in at.metric if m.label.startswith("Rank of the true image")]
    return int(m.value)


def images_shown(at: AppTest) -> int:
    return sum(len(n.proto.imgs) for n in walk(at._tree) if getattr(n, "type", None) == "image")


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# --------------------------------------------------------------------------------------
# The page on the pipeline's outputs


def test_page_shows_widgets_and_the_trial_of_the_file(outputs, monkeypatch):
    at = run_app(monkeypatch, "--root", str(outputs))
    no_failure(at)
    assert at.title[0].value == "neurovision explorer"
    assert at.selectbox(key="subject").options == ["sub-01", "sub-02"]
    assert at.selectbox(key="trial").value == 0
    assert at.slider(key="k").value == TOP_K
    assert at.button(key="random").label == "Random trial"
    assert at.select_slider(key="latency") is not None
    assert [t.label for t in at.tabs] == ["Trial", "Overview"]
    trials = trials_of(outputs, 1)
    assert rank_shown(at) == trials[0]["rank"]
    captions = result_captions(at)
    assert len(captions) == TOP_K
    for j, (caption, idx, score) in enumerate(zip(captions, trials[0]["top_indices"],
                                                  trials[0]["top_scores"])):
        concept = concept_name(trials[idx]["concept"])
        assert caption.startswith(f"#{j + 1} {concept} · {score:.3f}")
        assert ("✓ true image" in caption) == (idx == 0)


def test_choosing_a_trial_changes_images_and_ranks_match_the_file(outputs, monkeypatch):
    at = run_app(monkeypatch, "--root", str(outputs))
    seen = {tuple(result_captions(at))}
    for subject in (1, 2):
        trials = trials_of(outputs, subject)
        at.selectbox(key="subject").set_value(subject).run()
        for trial in range(N_TEST):
            at.selectbox(key="trial").set_value(trial).run()
            no_failure(at)
            assert rank_shown(at) == trials[trial]["rank"], (subject, trial)
            captions = result_captions(at)
            want = [concept_name(trials[j]["concept"]) for j in trials[trial]["top_indices"]]
            assert [c.split(" · ")[0].split(" ", 1)[1] for c in captions] == want
            seen.add(tuple(captions))
    assert len(seen) > N_TEST  # different trials show different images


def test_k_slider_and_random_trial(outputs, monkeypatch):
    at = run_app(monkeypatch, "--root", str(outputs))
    at.slider(key="k").set_value(2).run()
    assert len(result_captions(at)) == 2
    before = at.selectbox(key="trial").value
    at.button(key="random").click().run()
    after = at.selectbox(key="trial").value
    assert after != before and 0 <= after < N_TEST
    assert rank_shown(at) == trials_of(outputs, 1)[after]["rank"]


def test_overview_shows_metrics_with_chance(outputs, monkeypatch):
    at = run_app(monkeypatch, "--root", str(outputs))
    summary = json.loads((outputs / "metrics/details.json").read_text())
    top1 = next(m for m in at.metric if m.label.startswith("top-1 "))
    assert top1.label == f"top-1 (chance {1 / N_TEST:.1%})"
    assert top1.value == f"{summary['top1']:.1%}"
    table = at.dataframe[0].value
    assert list(table["metric"])[:3] == ["top1", "top5", "top10"]
    assert table.set_index("metric").loc["top1", "chance"] == pytest.approx(1 / N_TEST)
    # the intervals: t over the two subjects in the summary, bootstrap per subject
    assert table.set_index("metric").loc["top1", "ci_low"] == summary["top1_ci_low"]
    captions = [c.value for c in at.caption]
    assert (f"95 % CI {100 * summary['top1_ci_low']:.1f}-{100 * summary['top1_ci_high']:.1f} %"
            in captions)
    assert any(c.startswith("95 % intervals: t interval of the mean over the 2 subjects")
               for c in captions)
    assert any(c.startswith("Per subject: 95 % intervals: percentile bootstrap") for c in captions)
    per_subject = at.dataframe[1].value
    sub1 = json.loads((outputs / "metrics/subjects/sub-1/details.json").read_text())
    assert per_subject.loc[0, "top1_ci_high"] == sub1["top1_ci_high"]
    assert any("Best decoded" in m.value for m in at.markdown)


# --------------------------------------------------------------------------------------
# Missing or broken outputs: a page that says what to run, never a traceback


def test_no_outputs_shows_the_run_this_stage_page(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    at = run_app(monkeypatch, "--root", str(tmp_path))
    no_failure(at)
    assert at.header[0].value == "Run this stage first"
    assert at.code[0].value == "dvc repro download_images"
    assert "image_metadata.npy" in at.info[0].value


def test_missing_rankings_name_the_evaluate_stage(outputs, tmp_path, monkeypatch):
    root = copy_outputs(outputs, tmp_path / "p")
    shutil.rmtree(root / "metrics")
    at = run_app(monkeypatch, "--root", str(root))
    no_failure(at)
    assert at.header[0].value == "Run this stage first"
    assert at.code[0].value == "dvc repro evaluate@1"


def test_not_a_project_says_where_to_start(tmp_path, monkeypatch):
    at = run_app(monkeypatch, "--root", str(tmp_path))
    no_failure(at)
    assert at.header[0].value == "Run this stage first"
    assert "params.yaml" in at.info[0].value


def test_missing_eeg_keeps_the_trial_and_names_the_preprocess_stage(outputs, tmp_path,
                                                                    monkeypatch):
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "data/eeg/sub-1/preprocessed_eeg_test.npy").unlink()
    at = run_app(monkeypatch, "--root", str(root))
    no_failure(at)
    assert len(result_captions(at)) == TOP_K
    assert any("dvc repro preprocess@1" in w.value for w in at.warning)


def test_corrupt_rankings_show_an_error_not_a_traceback(outputs, tmp_path, monkeypatch):
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "metrics/subjects/sub-1/trials.json").write_text("[]")
    at = run_app(monkeypatch, "--root", str(root))
    assert not at.exception
    assert any("expected a list of 12 trials" in e.value for e in at.error)


def test_an_unpacked_image_folder_shows_the_trial_with_its_images(outputs, tmp_path,
                                                                  monkeypatch):
    """data.source: local may bring test_images/ unpacked; the page reads it like the zip."""
    root = unpack_images(copy_outputs(outputs, tmp_path / "p"))
    at = run_app(monkeypatch, "--root", str(root))
    no_failure(at)
    assert not at.header  # not the "Run this stage first" page
    assert rank_shown(at) == trials_of(outputs, 1)[0]["rank"]
    assert len(result_captions(at)) == TOP_K
    assert images_shown(at) >= 1 + TOP_K  # the seen image and the top-K results


def test_no_test_images_name_the_download_images_stage(outputs, tmp_path, monkeypatch):
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "data/raw/images/test_images.zip").unlink()
    at = run_app(monkeypatch, "--root", str(root))
    no_failure(at)
    assert at.header[0].value == "Run this stage first"
    assert at.code[0].value == "dvc repro download_images"
    assert "test_images.zip` (or an unpacked" in at.info[0].value


def test_a_corrupt_image_zip_is_an_error_not_a_missing_stage(outputs, tmp_path, monkeypatch):
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "data/raw/images/test_images.zip").write_bytes(b"not a zip")
    at = run_app(monkeypatch, "--root", str(root))
    assert not at.exception and not at.header
    assert any("expected a zip archive" in e.value for e in at.error)


# --------------------------------------------------------------------------------------
# The bundle


def test_app_runs_from_the_bundle_alone(outputs, tmp_path, monkeypatch):
    project = copy_outputs(outputs, tmp_path / "project")
    alone = make_bundle(project, tmp_path / "deployed")
    shutil.rmtree(project)  # the pipeline's other outputs are gone
    assert [p.name for p in tmp_path.iterdir()] == ["deployed"]
    at = run_app(monkeypatch, "--bundle", str(alone))
    no_failure(at)
    trials = trials_of(outputs, 1)
    assert rank_shown(at) == trials[0]["rank"]
    assert len(result_captions(at)) == TOP_K
    at.selectbox(key="subject").set_value(2).run()
    at.selectbox(key="trial").set_value(5).run()
    no_failure(at)
    assert rank_shown(at) == trials_of(outputs, 2)[5]["rank"]
    assert len(at.get("vega_lite_chart")) >= 3  # butterfly, scalp map, overview charts
    assert not any(b.key == "experiments" for b in at.button)
    assert any("A bundle holds one experiment" in c.value for c in at.caption)



# --------------------------------------------------------------------------------------
# Experiments


EXP_SHOW = [  # the shape of `dvc exp show --json` (DVC 3), trimmed
    {"rev": "workspace", "name": None, "experiments": None, "data": {
        "params": {"params.yaml": {"data": {"train": {"mapper": "pls"}}}},
        "metrics": {"metrics/retrieval.json": {"data": {"top1": 0.375, "top5": 0.8}}}}},
    {"rev": "b7dcbfe7d5e0", "name": "main", "data": {
        "params": {"params.yaml": {"data": {"train": {"mapper": "ridge"}}}},
        "metrics": {"metrics/retrieval.json": {"data": {"top1": 0.25, "top5": 0.7}}}}},
]


def test_experiments_button_tabulates_dvc_exp_show(outputs, monkeypatch):
    calls = []
    monkeypatch.setattr(experiments, "exp_show",
                        lambda root, timeout=120.0: calls.append(root) or EXP_SHOW)
    at = run_app(monkeypatch, "--root", str(outputs))
    assert not calls  # only on request
    at.button(key="experiments").click().run()
    no_failure(at)
    assert calls == [outputs.resolve()]
    (table,) = [d.value for d in at.dataframe if "experiment" in d.value.columns]
    assert list(table["experiment"]) == ["workspace", "main"]
    assert list(table["train.mapper"]) == ["pls", "ridge"]
    assert list(table["top1"]) == [0.375, 0.25]


def test_a_failing_dvc_exp_show_is_a_message(outputs, monkeypatch):
    def fail(root, timeout=120.0):
        raise NeurovisionError("dvc exp show failed in /x: not a git repo")

    monkeypatch.setattr(experiments, "exp_show", fail)
    at = run_app(monkeypatch, "--root", str(outputs))
    at.button(key="experiments").click().run()
    assert not at.exception
    assert any("not a git repo" in e.value for e in at.error)



# --------------------------------------------------------------------------------------
# Links and reruns


def test_link_opens_a_given_trial_and_ignores_bad_values(outputs, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["streamlit_app.py", "--root", str(outputs)])
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["subject"] = "2"
    at.query_params["trial"] = "7"
    at.run()
    no_failure(at)
    assert at.selectbox(key="subject").value == 2 and at.selectbox(key="trial").value == 7
    assert rank_shown(at) == trials_of(outputs, 2)[7]["rank"]
    for bad in ({"subject": "9", "trial": "1"}, {"subject": "1", "trial": "../../etc"},
                {"subject": "1", "trial": "99"}):
        at = AppTest.from_file(str(APP), default_timeout=60)
        for k, v in bad.items():
            at.query_params[k] = v
        at.run()
        no_failure(at)
        assert (at.selectbox(key="subject").value, at.selectbox(key="trial").value) == (1, 0)


def test_a_rerun_of_the_pipeline_is_picked_up(outputs, tmp_path, monkeypatch):
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "dvc.lock").write_text("schema: '2.0'\n")
    at = run_app(monkeypatch, "--root", str(root))
    path = root / "metrics/subjects/sub-1/trials.json"
    trials = json.loads(path.read_text())
    assert rank_shown(at) == trials[0]["rank"]
    trials[0]["rank"] = trials[0]["rank"] % N_TEST + 1  # as if evaluate@1 had rerun
    path.write_text(json.dumps(trials))
    stat = (root / "dvc.lock").stat()
    os.utime(root / "dvc.lock", (stat.st_atime, stat.st_mtime + 10))
    at = run_app(monkeypatch, "--root", str(root))
    assert rank_shown(at) == trials[0]["rank"]
