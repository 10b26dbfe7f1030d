import zipfile

import numpy as np
import pytest

from conftest import TINY_DEMO
from neurovision import demo
from neurovision.channels import positions
from neurovision.erp import load_epochs
from neurovision.io import load_npy_dict
from neurovision.params import DemoParams
from neurovision.release import METADATA_KEYS, RELEASE_CHANNELS, image_members, load_metadata

P = DemoParams(**TINY_DEMO)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    demo.write_images(root / "images", P)
    ceiling = demo.write_subject(root / "sub-1", P, 1)
    return root, ceiling


def test_eeg_files_have_release_keys_shapes_dtypes(release):
    root, _ = release
    n_train = P.n_train_concepts * P.train_images_per_concept
    for name, shape in (("training", (n_train, P.train_reps, 17, 100)),
                        ("test", (P.n_test, P.test_reps, 17, 100))):
        d = load_npy_dict(root / "sub-1" / f"preprocessed_eeg_{name}.npy")
        assert set(d) == {"preprocessed_eeg_data", "ch_names", "times"}
        assert d["preprocessed_eeg_data"].shape == shape
        assert d["preprocessed_eeg_data"].dtype == np.float64
        assert sorted(d["ch_names"]) == sorted(RELEASE_CHANNELS)
        assert list(d["ch_names"]) != list(RELEASE_CHANNELS)  # not in montage order
        assert list(d["ch_names"]) != sorted(RELEASE_CHANNELS)  # nor alphabetical
        np.testing.assert_allclose(d["times"], np.round(np.arange(-20, 80) / 100, 2))
        # numpy's own loader reads the same file (the release format)
        ref = np.load(root / "sub-1" / f"preprocessed_eeg_{name}.npy", allow_pickle=True).item()
        np.testing.assert_array_equal(ref["preprocessed_eeg_data"], d["preprocessed_eeg_data"])
    assert load_epochs(root / "sub-1" / "preprocessed_eeg_test.npy").data.shape[1] == P.test_reps


def test_metadata_and_zips_match(release):
    root, _ = release
    meta = load_metadata(root / "images" / "image_metadata.npy")
    assert set(meta) == set(METADATA_KEYS)
    assert len(meta["train_img_files"]) == P.n_train_concepts * P.train_images_per_concept
    assert len(meta["test_img_files"]) == P.n_test
    train_c = {c.split("_", 1)[1] + c for c in meta["train_img_concepts_THINGS"]}
    test_c = {c.split("_", 1)[1] + c for c in meta["test_img_concepts_THINGS"]}
    assert not train_c & test_c  # zero-shot: disjoint concepts
    for split, zname in (("train", "training_images.zip"), ("test", "test_images.zip")):
        with zipfile.ZipFile(root / "images" / zname) as zf:
            assert zf.namelist() == image_members(meta, split)
            assert zf.read(zf.namelist()[0])[:2] == b"\xff\xd8"  # JPEG


def test_deterministic_and_seed_dependent():
    a = demo.simulate_subject(P, 1)[1]["preprocessed_eeg_data"]
    b = demo.simulate_subject(P, 1)[1]["preprocessed_eeg_data"]
    np.testing.assert_array_equal(a, b)
    c = demo.simulate_subject(DemoParams(**{**TINY_DEMO, "seed": 1}), 1)[1]["preprocessed_eeg_data"]
    assert not np.allclose(a, c)
    d = demo.simulate_subject(P, 2)[1]["preprocessed_eeg_data"]
    assert not np.allclose(a, d)


def test_noise_model_matches_its_covariance():
    """The simulated noise has the covariance the ideal observer assumes."""
    model = demo.forward_model(P, 1)
    feats = np.zeros((1, demo.N_FEATURES))
    trials = model.simulate(np.repeat(feats, 4000, axis=0), 1, np.random.default_rng(0))[:, 0]
    resid = (trials - model.mean_response(feats)).reshape(len(trials), -1)
    emp = np.cov(resid[:, ::37].T)
    cov = model.averaged_covariance(1)[::37, ::37]
    assert np.abs(emp - cov).max() < 0.15 * np.abs(cov).max()


def test_ideal_observer_is_a_valid_ceiling(release):
    _, ceiling = release
    assert 0 <= ceiling["top1"] <= 1 and ceiling["top1"] > 5 * ceiling["top1_chance"]
    # with no information the ideal observer is at chance
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(30, 2, 3))
    same = demo.ideal_observer(np.zeros((30, 2, 3)), np.zeros((30, 2, 3)), np.eye(6))
    assert same["top1"] == pytest.approx(1 / 30)
    perfect = demo.ideal_observer(mu, mu, np.eye(6) * 1e-6)
    assert perfect["top1"] == 1.0


def test_ideal_observer_without_background_noise():
    """data.demo.noise: 0 leaves a singular covariance (trial jitter only): still defined."""
    p0 = DemoParams(**{**TINY_DEMO, "noise": 0.0})
    _, test, model, images = demo.simulate_subject(p0, 1)
    mu = model.mean_response(demo.visual_features(images, p0.image_size)[images.n_train:])
    out = demo.ideal_observer(test["preprocessed_eeg_data"].mean(axis=1), mu,
                              model.averaged_covariance(p0.test_reps))
    assert out["top1"] == 1.0


def test_sources_lie_under_the_release_channels():
    """The source geometry is in the frame of channels.positions: centres inside the
    channels' extent (to 0.05 head radii), topographies a little wider than their spacing."""
    pos = positions(RELEASE_CHANNELS)
    lo, hi = pos.min(axis=0) - 0.05, pos.max(axis=0) + 0.05
    assert lo[0] <= demo.SOURCE_X[0] < demo.SOURCE_X[1] <= hi[0]
    assert lo[1] <= demo.SOURCE_Y[0] < demo.SOURCE_Y[1] <= hi[1]
    d = np.sqrt(((pos[:, None] - pos[None]) ** 2).sum(-1)) + np.diag(np.full(len(pos), np.inf))
    spacing = np.median(d.min(axis=1))
    assert 1.0 < demo.SOURCE_WIDTH / spacing < 2.0
    assert 1.0 < demo.NOISE_LENGTH / spacing < 3.0


def test_source_topographies_radial_and_tilted():
    w = demo.SOURCE_WIDTH
    c = np.array([[0.1, -0.5]])
    pos = c + np.array([[w, 0.0], [-w, 0.0], [0.0, w], [0.0, 0.0], [2 * w, 0.0]])
    g = np.exp(-np.array([1, 1, 1, 0, 4]) / 2)  # the blob at distances w, w, w, 0, 2w
    radial = demo.source_topographies(pos, c, np.array([-1.0]), np.zeros(1), np.zeros(1))
    np.testing.assert_allclose(radial[:, 0], -g / np.linalg.norm(g))
    # tilted fully towards +x: the dipolar pattern (x - cx) / w * g, zero across the centre
    dipole = g * np.array([1, -1, 0, 0, 2])
    tilted = demo.source_topographies(pos, c, np.ones(1), np.array([np.pi / 2]), np.zeros(1))
    np.testing.assert_allclose(tilted[:, 0], dipole / np.linalg.norm(dipole), atol=1e-15)
    half = demo.source_topographies(pos, c, np.ones(1), np.array([np.pi / 4]), np.zeros(1))
    mix = g + dipole
    np.testing.assert_allclose(half[:, 0], mix / np.linalg.norm(mix), atol=1e-15)


def test_subjects_share_the_visual_code_and_its_sources():
    """Same code and sources (polarity included) in every subject, each seen a little
    differently: the subjects' topographies of a source correlate but are not equal."""
    models = [demo.forward_model(P, s) for s in (1, 2, 3)]
    peak = int(np.argmin(np.abs(demo.TIMES - demo.COMPONENTS[0][0])))
    topos = [m.basis.reshape(demo.N_SOURCES, len(demo.COMPONENTS), 17, -1)[:, 0, :, peak]
             for m in models]
    for a in range(3):
        np.testing.assert_array_equal(models[a].W2, models[0].W2)
        for b in range(a + 1, 3):
            r = [np.corrcoef(topos[a][k], topos[b][k])[0, 1] for k in range(demo.N_SOURCES)]
            assert 0.5 < np.mean(r) < 0.99, (a, b, np.round(r, 2))
