"""The contrastive mapper: seeded determinism, a concept-wise validation split, the loss
against a brute-force reference, and the scikit-learn estimator contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from neurovision.contrastive import (
    ContrastiveMapper,
    _soft_infonce,
    expected_top1,
    group_split,
    val_gallery_size,
)
from neurovision.mappers import build_mapper, fit_mapper
from neurovision.model_files import dump_model, load_model
from neurovision.params import ContrastiveParams, TrainParams
from neurovision.retrieval import cosine_scores, n_way_accuracy, top_k_accuracy

FAST = dict(batch_size=64, epochs=40, patience=8, threads=1, verbose=False)


def concept_data(n_concepts=60, per_concept=4, n_features=40, k=8, noise=0.3, seed=0):
    """EEG-like rows that are a fixed nonlinear function of their target, plus noise;
    targets cluster by concept."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_concepts, k))
    y = np.repeat(centres, per_concept, axis=0) + 0.5 * rng.normal(size=(n_concepts * per_concept,
                                                                          k))
    W = rng.normal(size=(k, n_features))
    X = np.tanh(y @ W / np.sqrt(k)) + noise * rng.normal(size=(len(y), n_features))
    groups = np.repeat([f"{i + 1:05d}_c{i}" for i in range(n_concepts)], per_concept)
    return X.astype(np.float32), y, groups


@pytest.fixture(scope="module")
def all_data():
    return concept_data(n_concepts=90)


@pytest.fixture(scope="module")
def data(all_data):
    """60 concepts x 4 rows for fitting; all_data's concepts 60..89 are never fitted on."""
    return tuple(a[:240] for a in all_data)


@pytest.fixture(scope="module")
def fitted(data):
    X, y, g = data
    return ContrastiveMapper(random_state=0, **FAST).fit(X, y, groups=g)


def test_same_seed_identical_other_seed_different(data, fitted):
    X, y, g = data
    again = ContrastiveMapper(random_state=0, **FAST).fit(X, y, groups=g)
    np.testing.assert_array_equal(fitted.predict(X), again.predict(X))
    assert fitted.history_ == again.history_
    other = ContrastiveMapper(random_state=1, **FAST).fit(X, y, groups=g)
    assert not np.allclose(fitted.predict(X), other.predict(X), atol=1e-3)


def test_learns_a_mapping_that_generalises_to_unseen_concepts(all_data, fitted):
    X_new, y_new = all_data[0][240:], all_data[1][240:]  # concepts never seen in fit
    assert fitted.val_top1_ > 5 / fitted.n_val_rows_  # chance: 1 / 24 validation targets
    acc = top_k_accuracy(cosine_scores(fitted.predict(X_new), y_new), 1)
    assert acc > 5 / len(y_new)  # chance is 1 / 120


def test_validation_split_is_by_concept(data, fitted):
    _X, _y, g = data
    tr, va = group_split(g, 0.1, seed=0)
    assert set(g[tr]).isdisjoint(g[va])  # no concept on both sides
    assert len(tr) + len(va) == len(g) and len(np.intersect1d(tr, va)) == 0
    assert len(set(g[va])) == 6  # 10 % of 60 concepts, with all their rows
    assert len(va) == 6 * 4
    np.testing.assert_array_equal(fitted.val_groups_, np.unique(g[va]))
    assert fitted.n_val_rows_ == len(va)
    # another seed holds out other concepts
    assert set(g[group_split(g, 0.1, seed=1)[1]]) != set(g[va])


def test_validation_split_edge_cases():
    tr, va = group_split(["a", "a", "b"], 0.01, seed=0)  # at least one group held out
    assert len(va) >= 1 and len(tr) >= 1
    tr, va = group_split(["a", "b"], 0.99, seed=0)  # never all groups
    assert len(tr) == 1 and len(va) == 1
    with pytest.raises(ValueError, match="at least 2 groups"):
        group_split(["a", "a"], 0.1, seed=0)


def test_without_groups_rows_with_equal_targets_stay_together():
    X, y, _ = concept_data(n_concepts=30)
    y = np.repeat(y[::2], 2, axis=0)  # each target used by two rows (two "subjects")
    m = ContrastiveMapper(random_state=0, **{**FAST, "epochs": 2}).fit(X, y)
    # 60 distinct targets, two rows each: 10 % of them (6) held out with both of their rows
    assert len(np.unique(y, axis=0)) == 60 and len(m.val_groups_) == 6
    assert m.n_val_rows_ == 12


def test_soft_infonce_matches_plain_cross_entropy_without_duplicates():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 6, generator=g)
    ids = torch.arange(6)
    ref = (F.cross_entropy(logits, ids) + F.cross_entropy(logits.T, ids)) / 2
    torch.testing.assert_close(_soft_infonce(logits, ids[:, None] == ids[None]), ref)
    # with duplicated targets, each row's positives share the label mass equally
    ids = torch.tensor([0, 0, 1, 2, 2, 2])
    same = ids[:, None] == ids[None]
    labels = same.float() / same.float().sum(1, keepdim=True)
    ref = -(labels * logits.log_softmax(1)).sum(1).mean() / 2 \
        - (labels * logits.T.log_softmax(1)).sum(1).mean() / 2
    torch.testing.assert_close(_soft_infonce(logits, same), ref)


def test_validation_top1_in_galleries_matches_the_n_way_reference():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(30, 30))
    truth = np.arange(30)
    for n in (2, 4, 10, 29):
        assert expected_top1(scores, truth, n) == pytest.approx(n_way_accuracy(scores, n))
    # a gallery at least as large as the targets: plain top-1
    assert expected_top1(scores, truth, 200) == pytest.approx(top_k_accuracy(scores, 1))
    # rows sharing a target column (several rows per target): per-row truth index
    rect = rng.normal(size=(8, 3))
    truth = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    assert expected_top1(rect, truth, 200) == pytest.approx(
        np.mean(rect.argmax(axis=1) == truth))
    # ties count against the true target
    assert expected_top1(np.zeros((4, 4)), np.arange(4), 2) == 0
    # the criterion's gallery: 200 as the test, at most a fifth of the validation targets
    assert [val_gallery_size(n) for n in (3, 24, 60, 1000, 1654)] == [2, 4, 12, 200, 200]


def test_sklearn_contract(data, fitted, tmp_path):
    X, y, g = data
    m = ContrastiveMapper(dim=16, dropout=0.1, random_state=3)
    assert clone(m).get_params() == m.get_params()
    assert m.set_params(learning_rate=0.01).learning_rate == 0.01
    with pytest.raises(NotFittedError):
        m.predict(X)
    learned = [k for k in vars(fitted) if k not in fitted.get_params()]
    assert learned and all(k.endswith("_") for k in learned)
    assert fitted.n_features_in_ == X.shape[1]
    pred = fitted.predict(X)
    assert pred.shape == (len(X), y.shape[1]) and pred.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pred, axis=1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :5])
    # a pickled model predicts the same, and equal weights pickle to equal bytes
    path = tmp_path / "m.skops"
    dump_model(fitted, path)
    np.testing.assert_array_equal(load_model(path).predict(X), pred)
    again = ContrastiveMapper(random_state=0, **FAST).fit(X, y, groups=g)
    dump_model(again, tmp_path / "again.skops")
    assert (tmp_path / "again.skops").read_bytes() == path.read_bytes()


def test_width_other_than_target_dimension(data):
    X, y, g = data
    m = ContrastiveMapper(dim=24, random_state=0, **{**FAST, "epochs": 2}).fit(X, y, groups=g)
    assert m.predict(X[:3]).shape == (3, y.shape[1])


def test_global_torch_state_untouched(data):
    X, y, g = data
    threads = torch.get_num_threads()
    rng = torch.random.get_rng_state()
    ContrastiveMapper(random_state=0, **{**FAST, "epochs": 2}).fit(X, y, groups=g)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_import_changes_nothing():
    # torch is not even loaded, so a stage can still configure OpenMP before it is
    code = ("import sys, neurovision.contrastive, neurovision.mappers; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_inputs(data):
    X, y, g = data
    m = ContrastiveMapper(**FAST)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        m.fit(X[:10], y)
    with pytest.raises(ValueError, match="at least 2 groups"):
        m.fit(X, np.ones_like(y))  # every target the same: nothing to contrast
    with pytest.raises(ValueError, match="NaN"):
        m.fit(np.where(np.arange(X.shape[1]) == 3, np.nan, X), y)
    with pytest.raises(ValueError, match="groups has"):
        m.fit(X, y, groups=g[:5])
    with pytest.raises(ValueError, match="expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        ContrastiveMapper(device="gpu0").fit(X, y, groups=g)


def test_built_from_params():
    c = ContrastiveParams(dim=32, dropout=0.2, batch_size=128, learning_rate=3e-4,
                          weight_decay=0.5, epochs=7, patience=3, temperature=0.1,
                          device="cpu", threads=1)
    m = build_mapper(TrainParams(mapper="contrastive", seed=5, val_fraction=0.2,
                                 contrastive=c))
    assert isinstance(m, ContrastiveMapper)
    assert (m.dim, m.dropout, m.batch_size, m.learning_rate, m.weight_decay, m.epochs,
            m.patience, m.temperature, m.device, m.threads, m.random_state, m.val_fraction) \
        == (32, 0.2, 128, 3e-4, 0.5, 7, 3, 0.1, "cpu", 1, 5, 0.2)


def test_fit_mapper_passes_groups_only_to_contrastive(data):
    X, y, g = data
    m = fit_mapper(build_mapper(TrainParams(mapper="contrastive",
                                            contrastive=ContrastiveParams(epochs=1, threads=1))),
                   X, y, groups=g)
    assert set(m.val_groups_) <= set(g)
    ridge = fit_mapper(build_mapper(TrainParams(mapper="ridge")), X, y, groups=g)
    assert ridge.coef_.shape == (y.shape[1], X.shape[1])
