"""Layer choice on held-out training concepts, fusion and the gallery a mapper ranks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from neurovision.contrastive import expected_top1, group_split, val_gallery_size
from neurovision.select import fuse, gallery, select_layer, validation_top1


def _data(seed=0, n_concepts=40, per=3, d=6):
    rng = np.random.default_rng(seed)
    good = np.repeat(rng.normal(size=(n_concepts, d)), per, axis=0)
    x = good @ rng.normal(size=(d, 10)) + 0.1 * rng.normal(size=(len(good), 10))
    noise = rng.normal(size=good.shape)  # a "layer" unrelated to the EEG
    groups = np.repeat([f"c{i}" for i in range(n_concepts)], per)
    return x, {"noise": noise, "good": good}, groups


def test_fusion_weighs_each_layer_alike():
    a, b = np.array([[3.0, 4.0]]), np.array([[0.0, 0.0, 2.0]])
    np.testing.assert_allclose(fuse([a, b]), [[0.6, 0.8, 0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="the same images"):
        fuse([a, np.zeros((2, 3))])


def test_validation_top1_against_a_brute_force_gallery_count():
    x, layers, groups = _data()
    tr, va = group_split(groups, 0.25, 0)
    y = layers["good"]
    m = Ridge(alpha=1.0).fit(x[tr], y[tr])
    got = validation_top1(m, x[va], y[va])
    targets, inv = np.unique(y[va], axis=0, return_inverse=True)
    pred = m.predict(x[va])
    cos = (pred / np.linalg.norm(pred, axis=1, keepdims=True)) @ (
        targets / np.linalg.norm(targets, axis=1, keepdims=True)).T
    assert got == pytest.approx(expected_top1(cos, inv.ravel(), val_gallery_size(len(targets))))


def test_select_picks_the_layer_that_predicts_unseen_concepts_and_refits_on_all():
    x, layers, groups = _data()
    fits = []

    def fit(m, x_, y_, g):
        fits.append(len(x_))
        return m.fit(x_, y_)

    chosen, mapper, scores = select_layer(lambda: Ridge(alpha=1.0), fit, x, layers, groups,
                                          val_fraction=0.25, seed=0)
    assert chosen == "good" and list(scores) == ["noise", "good"]
    assert scores["good"] > 0.5 > scores["noise"]
    assert fits[-1] == len(x) and all(n < len(x) for n in fits[:-1])  # refit on every row
    np.testing.assert_allclose(mapper.coef_, Ridge(alpha=1.0).fit(x, layers["good"]).coef_)


def test_select_is_blind_to_what_it_does_not_get():
    """Only training rows reach select_layer; the same rows give the same choice."""
    x, layers, groups = _data()
    args = dict(val_fraction=0.25, seed=3)
    a = select_layer(lambda: Ridge(alpha=1.0), lambda m, x_, y_, g: m.fit(x_, y_), x, layers,
                     groups, **args)
    b = select_layer(lambda: Ridge(alpha=1.0), lambda m, x_, y_, g: m.fit(x_, y_), x, layers,
                     groups, **args)
    assert a[0] == b[0] and a[2] == b[2]


def test_ties_keep_the_earlier_layer():
    x, layers, groups = _data()
    same = {"first": layers["good"], "second": layers["good"].copy()}
    chosen, _, scores = select_layer(lambda: Ridge(alpha=1.0), lambda m, x_, y_, g: m.fit(x_, y_),
                                     x, same, groups, val_fraction=0.25, seed=0)
    assert scores["first"] == scores["second"] and chosen == "first"


def test_gallery_goes_through_an_image_tower_only_where_there_is_one():
    feats = np.ones((3, 2))
    assert gallery(Ridge(), feats) is feats

    class TwoTowers:
        def transform_images(self, y):
            return y * 2

    np.testing.assert_array_equal(gallery(TwoTowers(), feats), feats * 2)
