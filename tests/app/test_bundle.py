"""The deployable bundle the bundle stage writes, from a zip or an unpacked image folder."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import yaml
from appdata import (  # noqa: F401  (the fixtures)
    APP_DEMO,
    TOP_K,
    bundle_fixture,
    copy_outputs,
    make_bundle,
    outputs_fixture,
    unpack_images,
)
from PIL import Image

from conftest import ROOT
from neurovision.app.bundle import export_bundle
from neurovision.app.layout import BUNDLE_FILES
from neurovision.errors import DataError

N_TEST = APP_DEMO["n_test"]


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
    raw = np.load(outputs / "data/eeg/sub-2/preprocessed_eeg_test.npy", allow_pickle=True).item()
    erp = np.load(bundle / "sub-2/erp.npy")
    assert erp.dtype == np.float16 and erp.shape == (N_TEST, 17, 100)
    np.testing.assert_allclose(erp, raw["preprocessed_eeg_data"].mean(axis=1), rtol=2e-3,
                               atol=2e-3)


def test_bundle_from_an_unpacked_image_folder_is_the_same(outputs, bundle, tmp_path):
    root = unpack_images(copy_outputs(outputs, tmp_path / "p"))
    other = make_bundle(root, tmp_path / "from-folder")
    for name in ("test_images.zip", "metadata.json", "sub-1/gallery.npy", "sub-1/erp.npy"):
        assert (other / name).read_bytes() == (bundle / name).read_bytes(), name


def test_bundle_refuses_bad_settings_and_short_inputs(outputs, tmp_path):
    args = dict(subjects=[1], top_k=TOP_K, metadata=outputs / "data/raw/images/image_metadata.npy",
                images=outputs / "data/raw/images",
                summary=outputs / "metrics/details.json", results=outputs / "metrics/subjects",
                eeg=outputs / "data/eeg", info=outputs / "data/features/info",
                features=outputs / "data/features/test", models=outputs / "models")
    with pytest.raises(DataError, match="image size must be >= 16 pixels, got 8"):
        export_bundle(tmp_path / "b", **args, image_size=8)
    with pytest.raises(DataError, match=r"JPEG quality must be in 1\.\.95, got 100"):
        export_bundle(tmp_path / "b", **args, quality=100)
    short = copy_outputs(outputs, tmp_path / "short")
    np.save(short / "metrics/subjects/sub-1/gallery.npy", np.zeros((N_TEST - 1, 8), np.float32))
    with pytest.raises(DataError, match=f"gallery.npy: {N_TEST - 1} embeddings, .* lists "
                                        f"{N_TEST} test"):
        export_bundle(tmp_path / "b", **{**args, "results": short / "metrics/subjects"})
    assert not (tmp_path / "b").exists()  # nothing half-written


def test_bundle_stage_is_declared_with_its_inputs():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["bundle"]
    assert spec["outs"] == ["bundle"]
    assert {"data.subjects", "evaluate.top_k"} <= set(spec["params"])
    for arg in ("--metadata", "--images", "--summary", "--results", "--eeg",
                "--info", "--features", "--models", "--out"):
        value = spec["cmd"].split(arg + " ")[1].split()[0]
        assert value == "bundle" or any(value == d or value.startswith(d.rstrip("/") + "/")
                                        or d.startswith(value + "/") for d in spec["deps"]), arg


def test_the_bundle_stage_does_not_depend_on_the_explorers_reader():
    """Editing the page's reader must not rerun the bundle stage (tests/pipeline/
    test_dvc_deps.py checks that these deps are exactly what the stage imports)."""
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["bundle"]["deps"]
    assert "src/neurovision/app/layout.py" in deps
    assert not {"src/neurovision/app/sources.py", "src/neurovision/mappers.py"} & set(deps)
