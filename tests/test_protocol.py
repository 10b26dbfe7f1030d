"""Intra- and inter-subject training sets: who trains on whom."""

import json
import re

import numpy as np
import pytest

from conftest import load_stage, write_params
from neurovision.errors import DataError
from neurovision.io import load_npy, save_npy
from neurovision.protocol import (
    features_file,
    md5sum,
    pool_manifest,
    stack_training_set,
    training_subjects,
)


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




def test_training_subjects_errors_name_the_subject_and_the_protocol():
    with pytest.raises(DataError, match=r"^subject 4 is not in data\.subjects \[1, 2, 3\]$"):
        training_subjects(4, (1, 2, 3), "intra")
    with pytest.raises(DataError, match=r"^train\.protocol inter: subject 1 has no other subject "
                                        r"to train on; data\.subjects is \[1\]$"):
        training_subjects(1, [1], "inter")
    with pytest.raises(ValueError, match=r"^unknown protocol 'cross'$"):
        training_subjects(1, [1, 2], "cross")


def _features(folder, shapes):
    for s, shape in shapes.items():
        save_npy(features_file(folder, s), np.full(shape, float(s), dtype=np.float32))
    return folder


def test_stack_training_set_rows_images_and_subjects(tmp_path):
    feats = _features(tmp_path, {1: (5, 4), 3: (5, 4)})
    manifest = pool_manifest(feats, [1, 3], "inter")
    assert manifest == {"protocol": "inter", "subjects": [1, 3],
                        "md5": {"1": md5sum(feats / "sub-1.npy"), "3": md5sum(feats / "sub-3.npy")}}
    for m in (None, manifest):
        x, rows, subj = stack_training_set(feats, [3, 1], m)
        np.testing.assert_array_equal(x, np.concatenate([np.full((5, 4), 3.0), np.ones((5, 4))]))
        np.testing.assert_array_equal(rows, [0, 1, 2, 3, 4] * 2)
        np.testing.assert_array_equal(subj, [3] * 5 + [1] * 5)
    assert pool_manifest(feats, [1, 3, 7], "intra") == {"protocol": "intra"}


def test_pool_manifest_names_a_missing_subject(tmp_path):
    feats = _features(tmp_path, {1: (5, 4)})
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'sub-2.npy'))}: training "
                                        r"features of subject 2 not found \(run erp@2\)$"):
        pool_manifest(feats, [1, 2], "inter")


def test_stack_training_set_refuses_what_the_manifest_does_not_vouch_for(tmp_path):
    feats = _features(tmp_path, {1: (5, 4), 2: (5, 4)})
    manifest = pool_manifest(feats, [1, 2], "inter")
    for m in ({"protocol": "inter"}, {"md5": {"1": manifest["md5"]["1"]}}):
        with pytest.raises(DataError, match=r"^pool manifest lists no features for subject 2; "
                                            r"rerun the pool stage \(dvc repro\)$"):
            stack_training_set(feats, [2, 1], m)
    (feats / "sub-2.npy").unlink()
    path = re.escape(str(feats / "sub-2.npy"))
    with pytest.raises(DataError, match=rf"^{path}: md5 missing differs from the pool manifest's "
                                        rf"{manifest['md5']['2']}; rerun dvc repro$"):
        stack_training_set(feats, [1, 2], manifest)


@pytest.mark.parametrize("subjects", [[2, 3], [2, 1, 3]])
def test_stack_training_set_refuses_subjects_of_different_shapes(tmp_path, subjects):
    feats = _features(tmp_path, {1: (5, 4), 2: (5, 4), 3: (6, 4)})
    path = re.escape(str(feats / "sub-3.npy"))
    with pytest.raises(DataError, match=rf"^{path}: shape \(6, 4\) differs from \(5, 4\) of "
                                        r"subject 2; all subjects need the same images and erp "
                                        r"settings$"):
        stack_training_set(feats, subjects)
