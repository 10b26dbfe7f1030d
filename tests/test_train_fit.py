"""Training-only statistics, against brute-force references: the test rows never change
what is fitted."""

from __future__ import annotations

import re

import numpy as np
import pytest

from neurovision.errors import DataError, ParamError
from neurovision.train_fit import pca_project, standardize


def _splits(seed=0, n_train=30, n_test=7, d=5):
    rng = np.random.default_rng(seed)
    scale = np.arange(1, d + 1)
    return rng.normal(2, 1, (n_train, d)) * scale, rng.normal(-5, 3, (n_test, d)) * scale


def test_standardize_uses_training_statistics_only():
    train, test = _splits()
    z_train, z_test = standardize(train, test)
    mean = [sum(train[:, j]) / len(train) for j in range(train.shape[1])]
    sd = [np.sqrt(sum((train[:, j] - mean[j]) ** 2) / len(train)) for j in range(train.shape[1])]
    np.testing.assert_allclose(z_train, (train - mean) / sd)
    np.testing.assert_allclose(z_test, (test - mean) / sd)
    # other test rows: the training output is the same, the test rows follow the same map
    other = test * 10 + 1
    again_train, again_test = standardize(train, other)
    np.testing.assert_array_equal(again_train, z_train)
    np.testing.assert_allclose(again_test, (other - mean) / sd)


def test_pca_is_the_training_covariance_eigenbasis():
    train, test = _splits(d=6)
    p_train, p_test, pca = pca_project(train, test, 3)
    centred = train - train.mean(axis=0)
    evals, evecs = np.linalg.eigh(centred.T @ centred / (len(train) - 1))
    top = evecs[:, ::-1][:, :3]
    # components up to sign; projections of both splits about the training mean
    signs = np.sign(np.sum(top * pca.components_.T, axis=0))
    np.testing.assert_allclose(pca.components_.T * signs, top, atol=1e-8)
    np.testing.assert_allclose(p_train * signs, centred @ top, atol=1e-8)
    np.testing.assert_allclose(p_test * signs, (test - train.mean(axis=0)) @ top, atol=1e-8)
    np.testing.assert_allclose(pca.explained_variance_, evals[::-1][:3])
    *_, other = pca_project(train, test * -3, 3)
    np.testing.assert_array_equal(other.components_, pca.components_)


def test_pca_none_keeps_both_splits_and_limits_are_named():
    train, test = _splits()
    same_train, same_test, model = pca_project(train, test, None)
    assert model is None and same_train is train and same_test is test
    assert pca_project(train, test, 5)[2].n_components_ == 5  # min(30, 5) is allowed
    with pytest.raises(ParamError, match=r"pca\.n_components: expected at most 5 .* got 6"):
        pca_project(train, test, 6)
    with pytest.raises(DataError, match=r"expected 5 dimensions .* got shape \(7, 4\)"):
        pca_project(train, test[:, :4], 2)


def test_pca_is_exact_and_repeatable_on_a_wide_training_set():
    # 600 x 100 of isotropic noise: where an approximate (randomized) solver would be off
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(600, 100)), rng.normal(size=(4, 100))
    p_train, p_test, pca = pca_project(train, test, 5)
    centred = train - train.mean(axis=0)
    top = np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :5]
    signs = np.sign(np.sum(top * pca.components_.T, axis=0))
    np.testing.assert_allclose(pca.components_.T * signs, top, atol=1e-8)
    np.testing.assert_allclose(p_test * signs, (test - train.mean(axis=0)) @ top, atol=1e-8)
    again_train, again_test, _ = pca_project(train, test, 5)
    assert np.array_equal(again_train, p_train) and np.array_equal(again_test, p_test)


@pytest.mark.parametrize("train_shape, test_shape", [
    ((30, 5), (7, 5, 1)), ((30, 5), (5,)), ((30, 5, 1), (7, 5, 1)), ((30,), (7, 30)),
])
def test_pca_refuses_splits_that_are_not_matching_matrices(train_shape, test_shape):
    train, test = np.zeros(train_shape), np.zeros(test_shape)
    with pytest.raises(DataError, match=rf"^expected {train_shape[-1]} dimensions per image \("
                                        rf"the training split has shape "
                                        rf"{re.escape(str(train_shape))}\), got shape "
                                        rf"{re.escape(str(test_shape))}$"):
        pca_project(train, test, 2)


def test_too_many_components_names_both_limits():
    train, test = _splits(n_train=4, d=6)
    with pytest.raises(ParamError, match=r"^params: pca\.n_components: expected at most 4 \(min "
                                         r"of 4 training images and 6 embedding dims\), got 5$"):
        pca_project(train, test, 5)
