"""The explorer's sources: the pipeline's outputs and the bundle, read behind one interface.

References are computed independently of the code under test: JSON and CSV read with the
standard library and pandas, images decoded with zipfile and PIL, ERPs averaged with numpy,
scores from the saved mapper with plain normalised dot products.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from appdata import (  # noqa: F401  (the fixtures)
    APP_DEMO,
    TOP_K,
    bundle_fixture,
    copy_outputs,
    outputs_fixture,
    unpack_images,
)
from PIL import Image

from neurovision.app.sources import (
    IMAGE_SIZE,
    SOURCES,
    BundleSource,
    MissingOutput,
    PipelineSource,
    Source,
)
from neurovision.errors import DataError

N_TEST = APP_DEMO["n_test"]
SUBJECTS = (1, 2)


def open_source(kind: str, outputs: Path, bundle: Path) -> Source:
    return SOURCES[kind](outputs if kind == "pipeline" else bundle)


def read_json(path: Path):
    return json.loads(path.read_text())


def zip_image(zip_path: Path, trial: dict) -> Image.Image:
    """The test image of ``trial`` (a trials.json record) straight from the zip."""
    with zipfile.ZipFile(zip_path) as z:
        data = z.read(f"test_images/{trial['concept']}/{trial['file']}")
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img.thumbnail((IMAGE_SIZE, IMAGE_SIZE))
    return img


# --------------------------------------------------------------------------------------
# Both sources give the same answers, equal to the files the stages wrote


@pytest.mark.parametrize("kind", ["pipeline", "bundle"])
def test_sources_read_what_the_stages_wrote(outputs, bundle, kind):
    src = open_source(kind, outputs, bundle)
    src.check_ready()
    assert src.subjects == SUBJECTS and src.top_k == TOP_K and src.n_test == N_TEST
    assert src.ready_subjects() == list(SUBJECTS)
    assert src.summary() == read_json(outputs / "metrics/details.json")
    for s in SUBJECTS:
        res = outputs / f"metrics/subjects/sub-{s}"
        trials = read_json(res / "trials.json")
        assert src.trials(s) == trials
        assert [src.concept(i) for i in range(N_TEST)] == [t["concept"] for t in trials]
        assert src.subject_metrics(s) == read_json(res / "details.json")
        pd.testing.assert_frame_equal(src.topk_curve(s), pd.read_csv(res / "topk.csv"))
        pd.testing.assert_frame_equal(src.rank_histogram(s), pd.read_csv(res / "ranks.csv"))
        info = read_json(outputs / f"data/features/info/sub-{s}.json")
        assert src.window(s) == (info["tmin"], info["tmax"])


@pytest.mark.parametrize("kind", ["pipeline", "bundle"])
def test_erp_is_the_average_over_repetitions(outputs, bundle, kind):
    src = open_source(kind, outputs, bundle)
    raw = np.load(outputs / "data/eeg/sub-2/preprocessed_eeg_test.npy", allow_pickle=True).item()
    erp = src.erp(2)
    assert erp.data.shape == (N_TEST, len(raw["ch_names"]), len(raw["times"]))
    assert erp.ch_names == tuple(raw["ch_names"])
    np.testing.assert_array_equal(erp.times, raw["times"])
    tol = 2e-3 if kind == "bundle" else 1e-6  # the bundle stores float16
    want = raw["preprocessed_eeg_data"].astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(erp.data, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["pipeline", "bundle"])
def test_trial_scores_are_cosines_of_the_saved_mapper(outputs, bundle, kind):
    src = open_source(kind, outputs, bundle)
    gallery = np.load(outputs / "embeds/pca/test/final.npy").astype(np.float64)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    for s in SUBJECTS:
        assert src.can_score(s)
        mapper = joblib.load(outputs / f"models/sub-{s}.joblib")
        x = np.load(outputs / f"data/features/test/sub-{s}.npy")
        for t in src.trials(s):
            i = t["trial"]
            pred = np.asarray(mapper.predict(x[i:i + 1]), dtype=np.float64)[0]
            want = np.array([pred @ g for g in gallery]) / np.linalg.norm(pred)
            scores = src.trial_scores(s, i)
            np.testing.assert_allclose(scores, want, rtol=1e-6, atol=1e-6)
            # and they reproduce the rankings evaluate@N wrote
            order = np.argsort(-scores, kind="stable")
            assert list(order[:TOP_K]) == t["top_indices"]
            np.testing.assert_allclose(scores[order[:TOP_K]], t["top_scores"], atol=1e-6)
            assert int(np.sum(scores > scores[i])) + 1 == t["rank"]


@pytest.mark.parametrize("kind", ["pipeline", "bundle"])
def test_images_are_the_zips_members_in_gallery_order(outputs, bundle, kind):
    src = open_source(kind, outputs, bundle)
    zip_path = (outputs / "data/raw/images" if kind == "pipeline" else bundle) / "test_images.zip"
    trials = read_json(outputs / "metrics/subjects/sub-1/trials.json")
    for i in (0, 5, N_TEST - 1):
        got = src.image(i)
        assert got.mode == "RGB" and max(got.size) <= IMAGE_SIZE
        np.testing.assert_array_equal(np.asarray(got), np.asarray(zip_image(zip_path, trials[i])))
    with pytest.raises(IndexError, match=f"out of range \\[0, {N_TEST}\\)"):
        src.image(N_TEST)


# --------------------------------------------------------------------------------------
# The images as the pipeline reads them: a zip or the unpacked folder


def test_unpacked_image_folder_is_read_like_the_zip(outputs, tmp_path):
    zipped = PipelineSource(outputs)
    root = unpack_images(copy_outputs(outputs, tmp_path / "p"))
    src = PipelineSource(root)
    src.check_ready()  # no MissingOutput for the zip that is not there
    for i in range(N_TEST):
        np.testing.assert_array_equal(np.asarray(src.image(i)), np.asarray(zipped.image(i)))


def test_no_images_at_all_names_the_download_images_stage(outputs, tmp_path):
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "data/raw/images/test_images.zip").unlink()
    with pytest.raises(MissingOutput) as info:
        PipelineSource(root).check_ready()
    exc = info.value
    assert exc.command == "dvc repro download_images"
    assert exc.path == root / "data/raw/images/test_images.zip"
    assert exc.alternative == "an unpacked test_images/ folder next to it"
    assert "test_images.zip (or an unpacked" in str(exc)


def test_present_but_broken_images_are_an_error_not_a_missing_output(outputs, tmp_path):
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "data/raw/images/test_images.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="expected a zip archive") as info:
        PipelineSource(root).check_ready()
    assert not isinstance(info.value, MissingOutput)

    root = unpack_images(copy_outputs(outputs, tmp_path / "q"))
    lost = sorted(p for p in (root / "data/raw/images/test_images").rglob("*") if p.is_file())[3]
    lost.unlink()
    with pytest.raises(DataError, match="1 missing") as info:
        PipelineSource(root).check_ready()
    assert not isinstance(info.value, MissingOutput) and lost.name in str(info.value)


# --------------------------------------------------------------------------------------
# Missing or refused outputs


def test_missing_outputs_name_what_writes_them(outputs, tmp_path):
    with pytest.raises(MissingOutput) as info:
        PipelineSource(tmp_path)  # not a project
    assert info.value.command == "dvc repro" and "params.yaml" in str(info.value)

    root = copy_outputs(outputs, tmp_path / "p")
    shutil.rmtree(root / "metrics/subjects/sub-1")
    src = PipelineSource(root)
    assert src.ready_subjects() == [2]
    with pytest.raises(MissingOutput) as info:
        src.trials(1)
    assert info.value.command == "dvc repro evaluate@1"
    assert info.value.path == root / "metrics/subjects/sub-1/trials.json"
    assert src.stage("trials", 1) == "evaluate@1" and src.stage("params") is None
    (root / "data/eeg/sub-2/preprocessed_eeg_test.npy").unlink()
    with pytest.raises(MissingOutput, match="preprocess@2"):
        src.erp(2)
    (root / "data/features/info/sub-2.json").unlink()
    assert src.window(2) is None


def test_missing_bundle_file_names_the_bundle_stage(bundle, tmp_path):
    other = tmp_path / "b"
    shutil.copytree(bundle, other)
    (other / "sub-1/erp.npy").unlink()
    (other / "sub-2/mapper.joblib").unlink()
    src = BundleSource(other)
    with pytest.raises(MissingOutput) as info:
        src.erp(1)
    assert info.value.command == "dvc repro bundle" and src.stage("erp", 1) == "bundle"
    assert "missing from the bundle" in str(info.value)
    assert src.can_score(1) and not src.can_score(2)


@pytest.mark.parametrize("change, match", [
    ({"version": 99}, "expected bundle version 3, got 99"),
    ({"format": "other"}, "expected format 'neurovision-bundle', got 'other'"),
])
def test_bundle_of_another_format_is_refused(bundle, tmp_path, change, match):
    other = tmp_path / "b"
    shutil.copytree(bundle, other)
    manifest = read_json(other / "manifest.json")
    (other / "manifest.json").write_text(json.dumps({**manifest, **change}))
    with pytest.raises(DataError, match=match):
        BundleSource(other)


def test_erp_that_does_not_fit_its_channels_is_refused(bundle, tmp_path):
    other = tmp_path / "b"
    shutil.copytree(bundle, other)
    info = read_json(other / "sub-1/erp.json")
    (other / "sub-1/erp.json").write_text(json.dumps({**info, "ch_names": info["ch_names"][:3]}))
    with pytest.raises(DataError, match=r"erp.json: 3 channels and 100 times"):
        BundleSource(other).erp(1)


def test_rankings_of_another_gallery_are_refused(outputs, tmp_path):
    root = copy_outputs(outputs, tmp_path / "p")
    path = root / "metrics/subjects/sub-1/trials.json"
    path.write_text(json.dumps(read_json(path)[:-1]))
    with pytest.raises(DataError, match=f"expected a list of {N_TEST} trials"):
        PipelineSource(root).trials(1)


# --------------------------------------------------------------------------------------
# What the page needs besides the data


def test_version_stamp_follows_the_file_each_rerun_rewrites(outputs, bundle, tmp_path):
    assert PipelineSource.version_stamp(tmp_path) == 0.0
    root = copy_outputs(outputs, tmp_path / "p")
    (root / "dvc.lock").write_text("schema: '2.0'\n")
    os.utime(root / "params.yaml", (0, 1000.0))
    os.utime(root / "dvc.lock", (0, 2000.0))
    assert PipelineSource.version_stamp(root) == 2000.0
    os.utime(root / "params.yaml", (0, 3000.0))
    assert PipelineSource.version_stamp(root) == 3000.0
    assert BundleSource.version_stamp(bundle) == (bundle / "manifest.json").stat().st_mtime


def test_only_the_project_compares_experiments(outputs, bundle, monkeypatch):
    import neurovision.app.sources as sources

    assert set(SOURCES) == {"pipeline", "bundle"}
    assert PipelineSource.compares_experiments and not BundleSource.compares_experiments
    with pytest.raises(DataError, match="holds one experiment"):
        BundleSource(bundle).experiments()
    calls = []
    monkeypatch.setattr(sources, "load_experiments", lambda root: calls.append(root) or [])
    assert PipelineSource(outputs).experiments() == [] and calls == [outputs.resolve()]


def test_loads_are_memoised(outputs, tmp_path):
    root = copy_outputs(outputs, tmp_path / "p")
    src = PipelineSource(root)
    first = src.trials(1)
    (root / "metrics/subjects/sub-1/trials.json").unlink()
    assert src.trials(1) is first  # read once, kept
