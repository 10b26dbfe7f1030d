"""Intra- and inter-subject training sets: who trains on whom."""

import json

import numpy as np
import pytest

from conftest import load_stage, write_params
from neurovision.errors import DataError
from neurovision.io import load_npy, save_npy
from neurovision.protocol import training_subjects


def test_training_subjects():
    assert training_subjects(2, [1, 2, 3], "intra") == [2]
    assert training_subjects(2, [1, 2, 3], "inter") == [1, 3]
    with pytest.raises(DataError, match="no other subject"):
        training_subjects(1, [1], "inter")


def _setup(tmp_path, protocol):
    feats = tmp_path / "features"
    for s in (1, 2, 3):
        save_npy(feats / f"sub-{s}.npy", np.full((5, 4), float(s), dtype=np.float32))
    params = write_params(tmp_path / "params.yaml", data={"subjects": [1, 2, 3]},
                          train={"protocol": protocol})
    load_stage("pool").main(["--params", str(params), "--features", str(feats),
                             "--out", str(tmp_path / "pool.json")])
    return feats, params


def _trainset(tmp_path, feats, params, subject):
    out = tmp_path / f"ts-{subject}"
    load_stage("trainset").main(["--params", str(params), "--subject", str(subject),
                                 "--features", str(feats), "--pool", str(tmp_path / "pool.json"),
                                 "--out", str(out)])
    return out


def test_inter_never_trains_on_the_tested_subject(tmp_path):
    feats, params = _setup(tmp_path, "inter")
    for s in (1, 2, 3):
        out = _trainset(tmp_path, feats, params, s)
        x, subj = load_npy(out / "X.npy"), load_npy(out / "subject.npy")
        others = [o for o in (1, 2, 3) if o != s]
        assert sorted(set(subj.tolist())) == others
        assert s not in set(np.unique(x).tolist())  # no row of the tested subject's EEG
        np.testing.assert_array_equal(load_npy(out / "image_index.npy"), np.tile(np.arange(5), 2))
        info = json.loads((out / "info.json").read_text())
        assert info["training_subjects"] == others and info["protocol"] == "inter"


def test_intra_trains_on_own_subject_only_and_manifest_is_constant(tmp_path):
    feats, params = _setup(tmp_path, "intra")
    manifest = (tmp_path / "pool.json").read_text()
    out = _trainset(tmp_path, feats, params, 2)
    assert set(load_npy(out / "subject.npy").tolist()) == {2}
    np.testing.assert_array_equal(load_npy(out / "X.npy"), load_npy(feats / "sub-2.npy"))
    # adding a subject does not change the intra manifest (so nothing else goes stale)
    save_npy(feats / "sub-4.npy", np.zeros((5, 4), dtype=np.float32))
    params4 = write_params(tmp_path / "p4.yaml", data={"subjects": [1, 2, 3, 4]})
    load_stage("pool").main(["--params", str(params4), "--features", str(feats),
                             "--out", str(tmp_path / "pool.json")])
    assert (tmp_path / "pool.json").read_text() == manifest


def test_inter_refuses_features_changed_after_the_manifest(tmp_path):
    feats, params = _setup(tmp_path, "inter")
    save_npy(feats / "sub-1.npy", np.zeros((5, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"sub-1.npy: md5 .* differs from the pool manifest"):
        _trainset(tmp_path, feats, params, 2)


