"""The two-tower aligner: the scikit-learn contract, seeded determinism, the shared space."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurovision.align import AlignMapper
from neurovision.contrastive import ContrastiveMapper
from test_contrastive import concept_data

FAST = dict(batch_size=64, epochs=25, patience=6, threads=1, verbose=False)


@pytest.fixture(scope="module")
def data():
    X, y, g = concept_data(n_concepts=80)
    return X[:240], y[:240], g[:240], X[240:], y[240:]


@pytest.fixture(scope="module")
def fitted(data):
    X, y, g, _, _ = data
    return AlignMapper(dim=12, random_state=0, **FAST).fit(X, y, groups=g)


# unlike the contrastive mapper, every check applies: the projector takes the targets as
# they are, so the checks' targets are not all the same unit vector
@parametrize_with_checks(
    [AlignMapper(epochs=3, patience=2, batch_size=16, threads=1, verbose=False)])
def test_align_mapper_passes_the_estimator_checks(estimator, check):
    check(estimator)


def test_both_towers_map_into_one_normalised_space(data, fitted):
    _X, _y, _, X_new, y_new = data
    z, g = fitted.predict(X_new), fitted.transform_images(y_new)
    assert z.shape == (len(X_new), 12) and g.shape == (len(y_new), 12)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1, rtol=1e-5)
    # the image tower is the fitted linear map, normalised: a brute-force reference
    w, b = fitted.image_state_["weight"], fitted.image_state_["bias"]
    ref = y_new.astype(np.float32) @ w.T + b
    np.testing.assert_allclose(g, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)
    # unseen concepts are retrieved far above chance (the toy data is learnable)
    scores = z @ g.T
    assert np.mean(scores.argmax(axis=1) == np.arange(len(z))) > 5 / len(z)
    with pytest.raises(ValueError, match="columns"):
        fitted.transform_images(y_new[:, :3])


def test_same_seed_same_bytes_other_seed_other_towers(data, fitted):
    X, y, g, X_new, y_new = data
    again = AlignMapper(dim=12, random_state=0, **FAST).fit(X, y, groups=g)
    other = AlignMapper(dim=12, random_state=1, **FAST).fit(X, y, groups=g)
    a, b = io.BytesIO(), io.BytesIO()
    joblib.dump(fitted, a)
    joblib.dump(again, b)
    assert a.getvalue() == b.getvalue()
    np.testing.assert_array_equal(fitted.transform_images(y_new), again.transform_images(y_new))
    assert not np.allclose(fitted.predict(X_new), other.predict(X_new))


def test_the_image_tower_trains_with_the_eeg_tower(data, fitted):
    """The projector is learned: not its initialisation, and better than no projector."""
    import torch

    X, y, g, _X_new, _y_new = data
    with torch.random.fork_rng():
        torch.manual_seed(0)
        start = torch.nn.Linear(y.shape[1], 12).weight.detach().numpy()
    assert not np.allclose(fitted.image_state_["weight"], start)
    assert fitted.val_top1_ > 0 and len(fitted.history_) == fitted.n_epochs_
    plain = ContrastiveMapper(random_state=0, **FAST).fit(X, y, groups=g)
    assert set(plain.__dict__) - set(fitted.__dict__) == set()
    assert "image_state_" not in plain.__dict__
