"""The explorer: its loaders, its bundle, and the page itself through Streamlit's AppTest."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from appdata import APP_DEMO, TOP_K, make_bundle, make_outputs
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from neurovision import cli
from neurovision.app.data import (
    BUNDLE_FILES,
    PIPELINE_FILES,
    Erp,
    MissingOutput,
    Results,
    check_trials,
    concept_name,
    concept_ranks,
    experiments_table,
    peak_latency,
    scalp_frame,
)
from neurovision.erp import load_epochs
from neurovision.errors import DataError

APP = ROOT / "src" / "neurovision" / "app" / "streamlit_app.py"
N_TEST = APP_DEMO["n_test"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return make_outputs(tmp_path_factory.mktemp("outputs"))


@pytest.fixture(scope="module")
def bundle(outputs, tmp_path_factory) -> Path:
    return make_bundle(outputs, tmp_path_factory.mktemp("bundle") / "bundle")


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
    summary = json.loads((outputs / "metrics/retrieval.json").read_text())
    top1 = next(m for m in at.metric if m.label.startswith("top-1 "))
    assert top1.label == f"top-1 (chance {1 / N_TEST:.1%})"
    assert top1.value == f"{summary['top1']:.1%}"
    table = at.dataframe[0].value
    assert list(table["metric"])[:3] == ["top1", "top5", "top10"]
    assert table.set_index("metric").loc["top1", "chance"] == pytest.approx(1 / N_TEST)
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
    root = tmp_path / "p"
    shutil.copytree(outputs, root)
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


def test_missing_eeg_keeps_the_trial_and_names_the_download_stage(outputs, tmp_path,
                                                                  monkeypatch):
    root = tmp_path / "p"
    shutil.copytree(outputs, root)
    (root / "data/raw/sub-1/preprocessed_eeg_test.npy").unlink()
    at = run_app(monkeypatch, "--root", str(root))
    no_failure(at)
    assert len(result_captions(at)) == TOP_K
    assert any("dvc repro download@1" in w.value for w in at.warning)


def test_corrupt_rankings_show_an_error_not_a_traceback(outputs, tmp_path, monkeypatch):
    root = tmp_path / "p"
    shutil.copytree(outputs, root)
    (root / "metrics/subjects/sub-1/trials.json").write_text("[]")
    at = run_app(monkeypatch, "--root", str(root))
    assert not at.exception
    assert any("expected a list of 12 trials" in e.value for e in at.error)


# --------------------------------------------------------------------------------------
# The bundle


def test_app_runs_from_the_bundle_alone(outputs, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(outputs, project)
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


def test_bundle_contents(outputs, bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["subjects"] == [1, 2] and manifest["top_k"] == TOP_K
    assert manifest["n_test"] == N_TEST
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    want = {BUNDLE_FILES[k].format(s=s) for k in BUNDLE_FILES for s in (1, 2)}
    assert files == want
    assert manifest["bytes"] == sum((bundle / f).stat().st_size for f in files - {"manifest.json"})
    for s in (1, 2):  # rankings are copied unchanged
        assert (bundle / f"sub-{s}/trials.json").read_bytes() == (
            outputs / f"metrics/subjects/sub-{s}/trials.json").read_bytes()
    # the images: same member names, re-encoded no larger than the requested size
    with zipfile.ZipFile(bundle / "test_images.zip") as z:
        meta = json.loads((bundle / "metadata.json").read_text())
        assert z.namelist() == [f"test_images/{c}/{f}" for c, f in
                                zip(meta["test_img_concepts"], meta["test_img_files"])]
        with z.open(z.namelist()[0]) as f:
            assert max(Image.open(f).size) <= 32
    # the ERP is the average over repetitions (axis 1), not over channels
    ep = load_epochs(outputs / "data/raw/sub-2/preprocessed_eeg_test.npy")
    erp = np.load(bundle / "sub-2/erp.npy")
    assert erp.dtype == np.float16 and erp.shape == (N_TEST, 17, 100)
    np.testing.assert_allclose(erp, ep.data.mean(axis=1), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("kind", ["pipeline", "bundle"])
def test_saved_mapper_reproduces_the_rankings(outputs, bundle, kind):
    res = Results(outputs if kind == "pipeline" else bundle, kind)
    for s in (1, 2):
        assert res.can_score(s)
        for t in res.trials(s):
            scores = res.trial_scores(s, t["trial"])
            order = np.argsort(-scores, kind="stable")
            assert list(order[:TOP_K]) == t["top_indices"]
            np.testing.assert_allclose(scores[order[:TOP_K]], t["top_scores"], atol=1e-6)
            assert int(np.sum(scores > scores[t["trial"]])) + 1 == t["rank"]


def test_bundle_of_another_format_is_refused(bundle, tmp_path):
    other = tmp_path / "b"
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(DataError, match="bundle version 1, got 99"):
        Results(other, "bundle")


def test_missing_bundle_file_names_the_bundle_stage(bundle, tmp_path):
    other = tmp_path / "b"
    shutil.copytree(bundle, other)
    (other / "sub-1/erp.npy").unlink()
    res = Results(other, "bundle")
    with pytest.raises(MissingOutput) as info:
        res.erp(1)
    assert info.value.command == "dvc repro bundle"


# --------------------------------------------------------------------------------------
# The layout the app reads is the one dvc.yaml writes


def declared_outputs(stage: dict) -> list[str]:
    paths = []
    for section in ("outs", "metrics", "plots"):
        for entry in stage.get(section, []):
            paths.append(entry if isinstance(entry, str) else next(iter(entry)))
    return paths


@pytest.mark.parametrize("key", [k for k, (_, st) in PIPELINE_FILES.items() if st])
def test_pipeline_layout_matches_dvc_yaml(key):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    rel, stage = PIPELINE_FILES[key]
    name, _, item = stage.format(s=3).partition("@")
    spec = stages[name]
    if "foreach" in spec:
        spec = yaml.safe_load(yaml.safe_dump(spec["do"]).replace("${item}", item))
    path = rel.format(s=3)
    assert any(path == out or path.startswith(out.rstrip("/") + "/")
               for out in declared_outputs(spec)), (key, path, declared_outputs(spec))


def test_bundle_stage_is_declared_with_its_inputs():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["bundle"]
    assert spec["outs"] == ["bundle"]
    assert {"data.subjects", "evaluate.top_k"} <= set(spec["params"])
    for arg in ("--metadata", "--images", "--gallery", "--summary", "--results", "--eeg",
                "--info", "--features", "--models", "--out"):
        value = spec["cmd"].split(arg + " ")[1].split()[0]
        assert value == "bundle" or any(value == d or value.startswith(d.rstrip("/") + "/")
                                        or d.startswith(value + "/") for d in spec["deps"]), arg


# --------------------------------------------------------------------------------------
# Pure helpers


def test_concept_name():
    assert concept_name("00001_aardvark") == "aardvark"
    assert concept_name("00042_ice_cream") == "ice cream"
    assert concept_name("plain") == "plain"


def test_check_trials_names_the_problem():
    good = [{"trial": i, "concept": "c", "file": "f", "rank": 1, "true_score": 0.5,
             "top_indices": [i], "top_scores": [0.5]} for i in range(3)]
    assert check_trials(good, 3, "t.json") is good
    with pytest.raises(DataError, match="t.json: expected a list of 4 trials"):
        check_trials(good, 4, "t.json")
    bad = [dict(t) for t in good]
    bad[1]["top_indices"] = [7]
    with pytest.raises(DataError, match=r"trial 1: top_indices must be gallery indices in \[0, 3\)"):
        check_trials(bad, 3, "t.json")
    bad = [dict(t) for t in good]
    bad[2]["rank"] = 0
    with pytest.raises(DataError, match="trial 2"):
        check_trials(bad, 3, "t.json")


def test_concept_ranks_sorts_by_mean_rank_over_subjects():
    t = lambda ranks: [{"trial": i, "concept": f"c{i}", "rank": r} for i, r in enumerate(ranks)]
    df = concept_ranks({1: t([3, 1, 2]), 2: t([3, 2, 2])})
    assert list(df["trial"]) == [1, 2, 0]
    assert list(df["mean_rank"]) == [1.5, 2.0, 3.0]
    assert list(df["sub-2"]) == [2, 2, 3]


def test_scalp_frame_interpolates_inside_the_electrodes_only():
    from neurovision.channels import positions
    names = ["O1", "Oz", "O2", "PO7", "PO8", "P7", "Pz", "P8"]
    pos = positions(names)
    values = 2 * pos[:, 0] - pos[:, 1] + 0.5  # a linear field is reproduced exactly
    df = scalp_frame(values, pos, resolution=61)
    assert len(df) > 20
    cx, cy = (df["x"] + df["x2"]) / 2, (df["y"] + df["y2"]) / 2
    # exactly up to griddata's iterative gradient estimate (CloughTocher2DInterpolator, tol 1e-6)
    np.testing.assert_allclose(df["value"], 2 * cx - cy + 0.5, atol=1e-6)
    assert cy.max() <= pos[:, 1].max() + 1e-9 and cy.min() >= pos[:, 1].min() - 1e-9
    with pytest.raises(ValueError, match="positions of shape"):
        scalp_frame(values[:3], pos)


def test_peak_latency_stays_in_the_window():
    times = np.round(np.arange(-0.2, 0.8, 0.01), 2)
    data = np.zeros((1, 3, len(times)))
    data[0, :, 10] = [5, -5, 0]   # large spread at -0.1 s (outside the window)
    data[0, :, 40] = [1, -1, 0]   # smaller spread at 0.2 s
    erp = Erp(data=data, ch_names=("a", "b", "c"), times=times)
    assert peak_latency(erp, 0, None) == pytest.approx(-0.1)
    assert peak_latency(erp, 0, (0.0, 0.8)) == pytest.approx(0.2)


EXP_SHOW = [  # the shape of `dvc exp show --json` (DVC 3), trimmed
    {"rev": "workspace", "name": None, "error": None, "experiments": None, "data": {
        "rev": "workspace",
        "params": {"params.yaml": {"data": {"train": {"mapper": "pls", "seed": 0}}}},
        "metrics": {"metrics/retrieval.json": {"data": {"top1": 0.375, "top5": 0.825,
                                                        "top10": 0.95, "mean_rank": 3.5}}}}},
    {"rev": "b7dcbfe7d5e0", "name": "main", "error": None, "data": {
        "rev": "b7dcbfe7d5e0", "params": {"params.yaml": {"data": {"train": {
            "mapper": "ridge", "seed": 0}}}}, "metrics": {}},
     "experiments": [{"name": "pls-exp", "executor": None, "revs": [
         {"rev": "b303bfc69e35", "name": "pls-exp", "error": None, "experiments": None,
          "data": {"rev": "b303bfc69e35",
                   "params": {"params.yaml": {"data": {"train": {"mapper": "pls", "seed": 0}}}},
                   "metrics": {"metrics/retrieval.json": {"data": {
                       "top1": 0.4, "top5": 0.8, "top10": 0.9, "mean_rank": 3.0}}}}}]},
         {"name": "ridge-exp", "executor": None, "revs": [
             {"rev": "c1", "name": "ridge-exp", "error": None, "experiments": None, "data": {
                 "params": {"params.yaml": {"data": {"train": {"mapper": "ridge", "seed": 1}}}},
                 "metrics": {"metrics/retrieval.json": {"data": {
                     "top1": 0.2, "top5": 0.6, "top10": 0.8, "mean_rank": 5.0}}}}}]}]},
]


def test_experiments_table_keeps_params_that_differ():
    df = experiments_table(EXP_SHOW)
    assert list(df["experiment"]) == ["workspace", "pls-exp", "ridge-exp"]  # main: no metrics
    assert list(df.columns) == ["experiment", "rev", "train.mapper", "train.seed", "top1",
                                "top5", "top10", "mean_rank"]
    assert list(df["train.mapper"]) == ["pls", "pls", "ridge"]
    assert list(df["top1"]) == [0.375, 0.4, 0.2]
    assert experiments_table([]).empty


# --------------------------------------------------------------------------------------
# The command line


def test_cli_app_command_line(tmp_path):
    cmd = cli.streamlit_command(tmp_path, None, 8600, "127.0.0.1", browser=False)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(cmd[4]) == APP and APP.is_file()
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[-3:] == ["--", "--root", str(tmp_path.resolve())]
    cmd = cli.streamlit_command(".", tmp_path / "b", 8501, "0.0.0.0", browser=True)
    assert cmd[-2:] == ["--bundle", str((tmp_path / "b").resolve())]


def test_cli_parses_subcommands(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run_app", lambda args: calls.append(args) or 0)
    assert cli.main(["app", "--bundle", "b", "--port", "9000", "--no-browser"]) == 0
    (args,) = calls
    assert (args.command, args.bundle, args.port, args.browser, args.root) == (
        "app", "b", 9000, False, ".")
    with pytest.raises(SystemExit):
        cli.main([])
    with pytest.raises(SystemExit):
        cli.main(["nosuch"])


def test_console_script_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'neurovision = "neurovision.cli:main"' in text


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
    import os
    root = tmp_path / "p"
    shutil.copytree(outputs, root)
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
