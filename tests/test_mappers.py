"""The mappers as scikit-learn estimators: the estimator checks, the mapping from
``train.*`` params, and saving / loading a fitted mapper."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurovision.contrastive import ContrastiveMapper
from neurovision.mappers import build_mapper, fit_mapper, load_mapper, save_mapper
from neurovision.params import parse_params

#: Checks that cannot apply to the contrastive mapper, and why.  Both fit on data whose
#: targets are all the same vector: a validation split by target (there are no groups in
#: the checks) then has one group, and there is nothing to contrast.
CONTRASTIVE_CANNOT = {
    "check_estimators_dtypes": "every target the same: no validation split by group",
    "check_fit2d_1feature": "every target the same: no validation split by group",
}


@parametrize_with_checks(
    [ContrastiveMapper(epochs=3, patience=2, batch_size=16, threads=1, verbose=False)],
    expected_failed_checks=lambda est: CONTRASTIVE_CANNOT)
def test_contrastive_mapper_passes_the_estimator_checks(estimator, check):
    check(estimator)


def _train(mapper: str, **section):
    return parse_params({"train": {"mapper": mapper, "seed": 7, "val_fraction": 0.2,
                                   **({mapper: section} if section else {})}}).train


def test_build_mapper_follows_the_params():
    ridge = build_mapper(_train("ridge", alpha=3.5))
    assert type(ridge) is Ridge and ridge.alpha == 3.5
    pls = build_mapper(_train("pls", n_components=4))
    assert type(pls) is PLSRegression and pls.n_components == 4 and pls.scale is False
    mlp = build_mapper(_train("mlp", hidden_sizes=[8, 4], alpha=0.5, patience=3))
    assert type(mlp) is MLPRegressor and mlp.hidden_layer_sizes == (8, 4)
    assert mlp.alpha == 0.5 and mlp.n_iter_no_change == 3 and mlp.random_state == 7
    assert mlp.early_stopping and mlp.validation_fraction == 0.2
    con = build_mapper(_train("contrastive", dim=12, epochs=5))
    assert type(con) is ContrastiveMapper and con.dim == 12 and con.epochs == 5
    assert con.random_state == 7 and con.val_fraction == 0.2


def test_fit_mapper_gives_groups_to_the_contrastive_mapper_only(monkeypatch):
    seen = {}
    monkeypatch.setattr(ContrastiveMapper, "fit",
                        lambda self, x, y, groups=None: seen.setdefault("groups", groups))
    fit_mapper(ContrastiveMapper(), np.zeros((4, 2)), np.ones((4, 2)), groups=list("aabb"))
    assert seen["groups"] == list("aabb")
    ridge = fit_mapper(Ridge(), np.eye(4), np.eye(4)[:, :2], groups=list("aabb"))
    assert ridge.coef_.shape == (2, 4)


def test_saved_mapper_loads_and_predicts_the_same(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 5))
    ridge = Ridge(alpha=1.0).fit(x, x[:, :3])
    save_mapper(ridge, tmp_path / "m.skops")
    assert [p.name for p in tmp_path.iterdir()] == ["m.skops"]  # no temporary left
    np.testing.assert_array_equal(load_mapper(tmp_path / "m.skops").predict(x),
                                  ridge.predict(x))


def test_unknown_mapper_is_refused_before_building():
    with pytest.raises(Exception, match=r"train\.mapper"):
        _train("lasso")


def test_the_mlp_fits_the_same_with_its_progress_bar(capsys):
    x = np.random.default_rng(0).normal(size=(60, 4))
    y = x[:, :2] @ np.ones((2, 3))
    params = _train("mlp", hidden_sizes=[8], max_iter=15)
    shown = fit_mapper(build_mapper(params), x, y)
    quiet = fit_mapper(build_mapper(params), x, y, progress=False)
    out, err = capsys.readouterr()
    assert "Iteration" not in out  # sklearn's printed lines became the bar
    assert "mlp" in err and "epoch" in err
    assert shown.verbose is False  # the estimator is left as built (it is pickled)
    np.testing.assert_array_equal(shown.predict(x), quiet.predict(x))
