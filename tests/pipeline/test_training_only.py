"""Statistics (standardisation, PCA) are learned from training rows only."""

import joblib
import numpy as np

from conftest import TINY_DEMO, load_stage, write_params
from neurovision import demo
from neurovision.io import load_npy, load_npy_dict, save_json, save_npy, save_npy_dict
from neurovision.params import DemoParams


def run_erp(params, raw, out):
    load_stage("erp").main(["--params", str(params), "--subject", "1", "--raw", str(raw),
                            "--out-train", str(out / "train.npy"),
                            "--out-test", str(out / "test.npy"),
                            "--out-info", str(out / "info.json")])
    return load_npy(out / "train.npy"), load_npy(out / "test.npy")


def test_erp_standardisation_uses_training_split_only(tmp_path, tiny_params):
    raw = tmp_path / "raw"
    demo.write_subject(raw, DemoParams(**TINY_DEMO), 1)
    train_a, _test_a = run_erp(tiny_params, raw, tmp_path / "a")
    # training features are z-scored with their own statistics
    np.testing.assert_allclose(train_a.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(train_a.std(0), 1, atol=1e-3)
    # a test split with shifted statistics changes nothing learned from training
    d = load_npy_dict(raw / "preprocessed_eeg_test.npy")
    d["preprocessed_eeg_data"] = d["preprocessed_eeg_data"] * 3 + 100
    save_npy_dict(raw / "preprocessed_eeg_test.npy", d)
    train_b, test_b = run_erp(tiny_params, raw, tmp_path / "b")
    np.testing.assert_array_equal(train_a, train_b)
    # and the test features use the training statistics: (3x + 100 - m) / s
    assert abs(test_b.mean()) > 10


def test_pca_fitted_on_training_embeddings_only(tmp_path):
    tiny_params = write_params(tmp_path / "params.yaml", pca={"n_components": 5})
    rng = np.random.default_rng(0)
    emb = tmp_path / "emb"
    train = rng.normal(size=(50, 12)).astype(np.float32)
    save_npy(emb / "final" / "train.npy", train)
    save_npy(emb / "final" / "test.npy", rng.normal(size=(10, 12)).astype(np.float32))
    save_json(emb / "provenance.json", {"layers": {"final": {}}})

    def run(tag):
        load_stage("pca").main(["--params", str(tiny_params), "--embeds", str(emb),
                                "--out-train", str(tmp_path / tag / "train"),
                                "--out-test", str(tmp_path / tag / "test"),
                                "--models", str(tmp_path / tag / "models")])
        return (joblib.load(tmp_path / tag / "models" / "final.joblib"),
                load_npy(tmp_path / tag / "train" / "final.npy"))

    pca_a, out_a = run("a")
    np.testing.assert_allclose(pca_a.mean_, train.mean(0), rtol=1e-5)
    save_npy(emb / "final" / "test.npy", (rng.normal(size=(10, 12)) * 5 + 7).astype(np.float32))
    pca_b, out_b = run("b")
    np.testing.assert_array_equal(pca_a.components_, pca_b.components_)
    np.testing.assert_array_equal(out_a, out_b)
    # brute-force reference: components are the top eigenvectors of the training covariance
    _evals, evecs = np.linalg.eigh(np.cov(train.T.astype(np.float64)))
    top = evecs[:, ::-1][:, : pca_a.n_components_].T
    np.testing.assert_allclose(np.abs(np.sum(top * pca_a.components_, axis=1)), 1, atol=1e-4)
