"""Model files that cannot run code when loaded, and that are byte-reproducible."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor

from neurovision.align import AlignMapper
from neurovision.contrastive import ContrastiveMapper
from neurovision.errors import DataError
from neurovision.model_files import dump_model, load_model
from test_contrastive import concept_data

FAST = dict(epochs=2, patience=2, batch_size=32, threads=1, verbose=False)


@pytest.fixture(scope="module")
def data():
    return concept_data(n_concepts=20)


def _models(data):
    X, y, g = data
    return {
        "ridge": Ridge().fit(X, y), "pls": PLSRegression(2, scale=False).fit(X, y),
        "mlp": MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                            early_stopping=True).fit(X, y),
        "pca": PCA(3).fit(y),
        "contrastive": ContrastiveMapper(**FAST).fit(X, y, groups=g),
        "align": AlignMapper(**FAST).fit(X, y, groups=g),
        "none": None,
    }


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_every_model_kind_round_trips_to_the_same_predictions(data, tmp_path):
    X, y, _ = data
    for name, model in _models(data).items():
        path = tmp_path / f"{name}.skops"
        dump_model(model, path)
        back = load_model(path)
        if model is None:
            assert back is None
            continue
        assert type(back) is type(model)
        method = "transform" if name == "pca" else "predict"
        np.testing.assert_array_equal(getattr(back, method)(y if name == "pca" else X),
                                      getattr(model, method)(y if name == "pca" else X))
        if name == "align":
            np.testing.assert_array_equal(back.transform_images(y), model.transform_images(y))
        dump_model(back, tmp_path / "again.skops")
        assert (tmp_path / "again.skops").read_bytes() == path.read_bytes(), name


def test_the_same_model_gives_the_same_bytes_in_another_process(tmp_path):
    code = ("import sys, numpy as np; from sklearn.linear_model import Ridge; "
            "from neurovision.model_files import dump_model; "
            "x = np.arange(12.0).reshape(6, 2); "
            "dump_model(Ridge().fit(x, x[:, ::-1] ** 2), sys.argv[1])")
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True,
                       env={**os.environ})
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _edited(path, change):
    """The skops archive at ``path`` with its schema changed by ``change``."""
    src = zipfile.ZipFile(path)
    schema = change(json.loads(src.read("schema.json")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in src.namelist():
            zf.writestr(name, json.dumps(schema) if name == "schema.json" else src.read(name))
    return out.getvalue()


def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    good = tmp_path / "good.skops"
    dump_model(Ridge().fit(np.eye(3), np.eye(3)), good)
    payloads = {
        # a pickle (what joblib wrote before) under the model's name: never unpickled
        "pickle": pickle.dumps(_Evil(marker)),
        # a skops archive whose top object is os.system, called with the marker command
        "os.system": _edited(good, lambda s: {**s, "__class__": "system", "__module__": "os"}),
        # a function node naming builtins.eval
        "eval": _edited(good, lambda s: {"__class__": "eval", "__module__": "builtins",
                                         "__loader__": "FunctionNode",
                                         "content": {"module_path": "builtins",
                                                     "function": "eval"}}),
        # a class of its own, not among the pipeline's models
        "other class": _edited(good, lambda s: {**s, "__class__": "Popen",
                                                "__module__": "subprocess"}),
    }
    named = {"os.system": "os.system", "other class": "subprocess.Popen"}
    for what, payload in payloads.items():
        path = tmp_path / f"{what}.skops"
        path.write_bytes(payload)
        if what in ("pickle", "eval"):  # not a zip; a function node skops cannot audit
            error = "BadZipFile" if what == "pickle" else "TypeError"
            match = (rf"{path.name}: expected a model file written by the pipeline \(skops\), "
                     rf"got {len(payload)} bytes that are not one \({error}\); a pickle is "
                     rf"never loaded")
        else:  # the type is named, and what is trusted
            match = (rf"{path.name}: refused to load: it names type\(s\) \['{named[what]}'\], "
                     rf"expected only the pipeline's models \(neurovision\.contrastive\."
                     rf"ContrastiveMapper, neurovision\.align\.AlignMapper, ")
        with pytest.raises(DataError, match=match):
            load_model(path)
        assert not marker.exists(), what


def test_damaged_and_missing_files_are_named(tmp_path):
    good = tmp_path / "good.skops"
    dump_model(Ridge().fit(np.eye(3), np.eye(3)), good)
    cut = tmp_path / "cut.skops"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut\.skops: expected a model file written by the "
                       r"pipeline \(skops\), got 200 bytes that are not one \(BadZipFile\)"):
        load_model(cut)
    # a trusted schema whose array is not an array: skops cannot build it
    src = zipfile.ZipFile(good)
    hollow = tmp_path / "hollow.skops"
    with zipfile.ZipFile(hollow, "w") as zf:
        for name in src.namelist():
            zf.writestr(name, b"not an npy file" if name == "0.npy" else src.read(name))
    with pytest.raises(DataError, match=r"hollow\.skops: expected a complete model file, got "
                       r"one skops cannot read \(ValueError: This file contains pickled "
                       r"\(object\) data\. If you trust"):  # numpy refuses the pickle
        load_model(hollow)
    with pytest.raises(DataError, match=r"absent\.skops: file not found"):
        load_model(tmp_path / "absent.skops")


def test_the_canonical_archive_is_compressed_stamped_and_complete(tmp_path):
    from neurovision.model_files import _canonical

    path = tmp_path / "m.skops"
    dump_model(Ridge().fit(np.eye(4), np.eye(4)), path)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert infos[0].filename == "schema.json"
        assert [i.filename for i in infos[1:]] == [f"{n}.npy" for n in range(len(infos) - 1)]
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    # a member the schema does not name is an error, not silently dropped
    raw = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(raw, "w") as zf:
        for name in src.namelist():
            zf.writestr(name, src.read(name))
        zf.writestr("stray.npy", b"x")
    with pytest.raises(ValueError, match=r"skops archive members not named in its schema: "
                       r"\['stray\.npy'\]"):
        _canonical(raw.getvalue())
