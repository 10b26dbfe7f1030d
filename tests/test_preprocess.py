"""Raw recordings to the release format (neurovision.preprocess, stages/preprocess.py), on tiny
hand-made raw files, against brute-force references: epochs, baseline, resampling, channels by
name, the choice and order of repetitions, MVNN, the training-only covariance, bad input."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.linalg
from sklearn.discriminant_analysis import _cov

from conftest import ROOT, load_stage, write_params
from neurovision import preprocess as pre
from neurovision import release
from neurovision.errors import DataError, ParamError
from neurovision.io import load_npy_dict, save_npy_dict
from neurovision.params import PreprocessParams, load_params, parse_params

SF = 1000.0
#: EEG channels of the hand-made files, deliberately out of montage order; four of them match
#: the release's '^O *|^P *'.
NAMES = ("Fp1", "PO3", "Cz", "O1", "P7", "Oz")
OP = ("PO3", "O1", "P7", "Oz")
SOA = 120  # samples between events


def raw_dict(codes, rng, n_chans=6, lead=300, tail=1000, noise=None, sfreq=SF,
             names=NAMES) -> dict:
    """A raw file's dict: ``codes`` at every SOA samples after ``lead``, random EEG."""
    onsets = lead + SOA * np.arange(len(codes))
    n = int(onsets[-1] + tail) if len(codes) else lead + tail
    eeg = rng.standard_normal((n_chans, n)) if noise is None else noise(n)
    stim = np.zeros(n)
    for code, onset in zip(codes, onsets):
        stim[onset:onset + 5] = code
    return {"raw_eeg_data": np.vstack([eeg, stim]), "ch_names": [*names, "stim"],
            "ch_types": ["eeg"] * n_chans + ["stim"], "sfreq": sfreq}


#: Training images shown in two sessions each, as in the experiment (not all in the same two).
SHOWN = {1: [1, 3], 2: [1, 2], 3: [2, 4], 4: [3, 4]}


def plan(split: str, session: int, reps: dict | None = None, shown=None) -> list[int]:
    """What a session shows, in a random order: training images 1-3 (or ``shown[session]``)
    with 3 repetitions each (more than the 2 kept), test images 1-2 with 4 (or
    ``reps[split]``), and one target."""
    n = (reps or {"train": 3, "test": 4})[split]
    images = (shown or {})[session] if shown and split == "train" else [1, 2, 3]
    codes = images * n if split == "train" else [1, 2] * n
    codes = list(np.random.default_rng([session, len(split)]).permutation(codes))
    codes.insert(3, pre.TARGET)  # a target, which is rejected
    return codes


def write_subject(root: Path, seed: int = 0, splits=("train", "test"), reps=None, shown=None,
                  **kw) -> Path:
    for split in splits:
        for ses in release.RAW_SESSIONS:
            rng = np.random.default_rng([seed, ses, len(split)])
            save_npy_dict(root / release.session_folder(ses) / release.RAW_FILES[split],
                          raw_dict(plan(split, ses, reps, shown), rng, **kw))
    return root


@pytest.fixture
def subject(tmp_path) -> Path:
    return write_subject(tmp_path / "raw")


def run(source: Path, out: Path, **over) -> dict:
    p = PreprocessParams(**{"mvnn": "none", **over})
    out.mkdir(parents=True, exist_ok=True)
    pre.preprocess_subject(source, out, p)
    return {split: load_npy_dict(out / pre.OUT_FILES[split]) for split in ("train", "test")}


# --------------------------------------------------------------------------------------
# The reference: every step spelled out for one event at a time


def chosen_reps(positions: np.ndarray, k: int, seed: int) -> np.ndarray:
    """What ``sklearn.utils.shuffle(positions, random_state=seed, n_samples=k)`` returns,
    spelled out (the dataset's code keeps these)."""
    order = np.arange(len(positions))
    np.random.RandomState(seed).shuffle(order)
    return positions[order[:k]]


def reference(source: Path, split: str, p: PreprocessParams, channels) -> np.ndarray:
    first, last = round(p.tmin * SF), round(p.tmax * SF)
    merged: dict[int, list] = {}
    for ses in release.RAW_SESSIONS:
        d = load_npy_dict(source / release.session_folder(ses) / release.RAW_FILES[split])
        data, names = d["raw_eeg_data"], list(d["ch_names"])
        stim = data[names.index("stim")]
        onsets = np.flatnonzero(np.diff(stim, prepend=0) > 0)
        codes = stim[onsets].astype(int)
        onsets, codes = onsets[codes != pre.TARGET], codes[codes != pre.TARGET]
        rows = [names.index(c) for c in channels]
        k = min(getattr(p.max_reps, split), max(np.sum(codes == c) for c in set(codes)))
        for code in sorted(set(codes)):
            for i in chosen_reps(np.flatnonzero(codes == code), k, p.seed):
                ep = data[rows, onsets[i] + first: onsets[i] + last + 1]
                if p.baseline is not None:
                    t = np.arange(first, last + 1) / SF
                    lo = -np.inf if p.baseline[0] is None else p.baseline[0]
                    hi = np.inf if p.baseline[1] is None else p.baseline[1]
                    ep = ep - ep[:, (t >= lo - 1e-9) & (t <= hi + 1e-9)].mean(axis=1,
                                                                               keepdims=True)
                if p.sfreq != SF:
                    ep = mne.filter.resample(ep, up=p.sfreq, down=SF, npad="auto", pad="edge")
                merged.setdefault(code, []).append(ep)
    out = np.stack([np.stack(merged[c]) for c in sorted(merged)])  # (image, rep, ch, t)
    order = np.arange(out.shape[1])
    np.random.RandomState(p.seed).shuffle(order)
    return out[:, order]


@pytest.mark.parametrize("over", [
    {"sfreq": 1000.0, "tmin": -0.05, "tmax": 0.1, "baseline": (None, 0.0), "seed": 7},
    {"sfreq": 100.0, "baseline": (-0.1, 0.0), "max_reps": {"train": 2, "test": 3}, "seed": 3},
    {"sfreq": 250.0, "tmin": -0.2, "tmax": 0.3, "baseline": None},
])
def test_epochs_baseline_resampling_and_repetitions_match_the_reference(subject, tmp_path,
                                                                        over):
    out = run(subject, tmp_path / "out", **over)
    p = PreprocessParams(mvnn="none", **over)
    for split in ("train", "test"):
        d = out[split]
        assert list(d["ch_names"]) == list(OP)  # by name, in the file's order
        ref = reference(subject, split, p, OP)
        assert d["preprocessed_eeg_data"].shape == ref.shape
        np.testing.assert_allclose(d["preprocessed_eeg_data"], ref, rtol=0, atol=1e-10)
        n_t = ref.shape[-1]
        np.testing.assert_allclose(d["times"], p.tmin + np.arange(n_t) / p.sfreq, atol=1e-9)
    # training: 3 images x (2 of 3 repetitions in each of 4 sessions); test: at most max_reps
    assert out["train"]["preprocessed_eeg_data"].shape[:2] == (3, 8)
    test_reps = 4 * min(p.max_reps.test, 4)
    assert out["test"]["preprocessed_eeg_data"].shape[:2] == (2, test_reps)


def test_images_in_different_sessions_merge_in_session_order(tmp_path):
    """Each training image in 2 of the 4 sessions, not all in the same two."""
    root = write_subject(tmp_path / "raw", shown=SHOWN)
    p = PreprocessParams(mvnn="none", sfreq=100.0, seed=5)
    got = run(root, tmp_path / "out", sfreq=100.0, seed=5)["train"]["preprocessed_eeg_data"]
    assert got.shape[:2] == (4, 4)
    np.testing.assert_allclose(got, reference(root, "train", p, OP), rtol=0, atol=1e-10)


def test_the_reference_is_sensitive(subject, tmp_path):
    """Another seed keeps other repetitions in another order: the comparison above sees it."""
    p = PreprocessParams(mvnn="none", sfreq=1000.0, tmin=-0.05, tmax=0.1)
    got = run(subject, tmp_path / "out", sfreq=1000.0, tmin=-0.05, tmax=0.1, seed=8)
    assert not np.allclose(got["train"]["preprocessed_eeg_data"],
                           reference(subject, "train", p, OP))


def test_channels_by_name_list_and_all(subject, tmp_path):
    d = run(subject, tmp_path / "a", channels=("Oz", "Fp1"), sfreq=1000.0)["test"]
    assert list(d["ch_names"]) == ["Fp1", "Oz"]  # the file's order
    full = run(subject, tmp_path / "b", channels="all", sfreq=1000.0)["test"]
    assert list(full["ch_names"]) == list(NAMES)
    np.testing.assert_array_equal(d["preprocessed_eeg_data"],
                                  full["preprocessed_eeg_data"][:, :, [0, 5]])
    assert list(run(subject, tmp_path / "c", channels="^P", sfreq=1000.0)["test"]["ch_names"]) \
        == ["PO3", "P7"]


def test_sessions_storing_channels_in_another_order_are_read_by_name(subject, tmp_path):
    out_a = run(subject, tmp_path / "a", sfreq=1000.0)
    path = subject / "ses-03" / "raw_eeg_test.npy"
    d = load_npy_dict(path)
    perm = [5, 2, 0, 4, 1, 3, 6]  # stim stays last
    save_npy_dict(path, {**d, "raw_eeg_data": d["raw_eeg_data"][perm],
                         "ch_names": [d["ch_names"][i] for i in perm]})
    out_b = run(subject, tmp_path / "b", sfreq=1000.0)
    for split in ("train", "test"):
        np.testing.assert_array_equal(out_a[split]["preprocessed_eeg_data"],
                                      out_b[split]["preprocessed_eeg_data"])


def test_epoching_in_blocks_does_not_change_the_result(subject):
    p = PreprocessParams(mvnn="none")
    rec = pre.load_recording(subject / "ses-01/raw_eeg_training.npy", p)
    _, chosen = pre.select_repetitions(rec.events[:, 2], 2, p.seed, "x", "max")
    whole, times = pre.epoch(rec, chosen, p)
    for block_bytes in (1, 17 * 1001 * 8 * 2, 10 ** 9):  # 1 epoch, 2 epochs, all at once
        part, t = pre.epoch(rec, chosen, p, block_bytes=block_bytes)
        assert np.array_equal(part, whole) and np.array_equal(t, times)


def test_filter_is_mne_on_the_continuous_data(subject, tmp_path):
    p = PreprocessParams(mvnn="none", l_freq=1.0, h_freq=40.0, sfreq=1000.0, baseline=None,
                         channels=("Oz",))
    rec = pre.load_recording(subject / "ses-02/raw_eeg_test.npy", p)
    d = load_npy_dict(subject / "ses-02/raw_eeg_test.npy")
    ref = mne.filter.filter_data(d["raw_eeg_data"][[NAMES.index("Oz")]], SF, 1.0, 40.0,
                                 verbose="error")
    np.testing.assert_allclose(rec.data, ref, rtol=0, atol=1e-12)


def test_events_too_close_to_the_ends_are_dropped(tmp_path):
    root = write_subject(tmp_path / "raw", lead=150)  # the first event has 150 samples before
    out = run(root, tmp_path / "out", sfreq=1000.0, tmin=-0.2, tmax=0.1,
              max_reps={"train": 2, "test": 3})
    assert out["train"]["preprocessed_eeg_data"].shape[1] > 0
    rec = pre.load_recording(root / "ses-01/raw_eeg_training.npy",
                             PreprocessParams(tmin=-0.2, tmax=0.1))
    assert rec.n_edge == 1 and rec.n_targets == 1
    assert len(rec.events) == 9 - 1 and rec.events[0, 0] == 150 + SOA  # the first is gone


# --------------------------------------------------------------------------------------
# MVNN


@pytest.mark.parametrize("shape", [(2, 5), (30, 4), (7, 1), (3, 6)])
def test_shrunk_covariances_are_the_datasets_estimator(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, *shape)) * rng.uniform(0.5, 3, shape[1])
    if shape == (3, 6):
        x[..., 2] = 4.0  # a constant channel: sd 1 for standardising, as StandardScaler does
    got = pre.shrunk_covariances(x)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(got[i, j], _cov(x[i, j], shrinkage="auto"), rtol=1e-10,
                                       atol=1e-12)


@pytest.mark.parametrize("mode", ["time", "epochs"])
def test_noise_covariance_is_the_datasets_loop(mode):
    """The dataset's code: per image, _cov at each time point (time) or of each epoch
    (epochs), averaged, then averaged over images."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((5, 3, 4, 6))
    per_image = []
    for cond in data:
        if mode == "time":
            per_image.append(np.mean([_cov(cond[:, :, t], shrinkage="auto")
                                      for t in range(cond.shape[2])], axis=0))
        else:
            per_image.append(np.mean([_cov(cond[e].T, shrinkage="auto")
                                      for e in range(cond.shape[0])], axis=0))
    ref = np.mean(per_image, axis=0)
    for block_bytes in (1, 10 ** 9):
        np.testing.assert_allclose(pre.noise_covariance(data, mode, "x", block_bytes), ref,
                                   rtol=1e-10)


def test_inverse_square_root_whitens_and_is_the_datasets():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((5, 5))
    sigma = a @ a.T + 0.5 * np.eye(5)
    w = pre.inverse_sqrt(sigma, "x")
    np.testing.assert_allclose(w @ sigma @ w, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(w, scipy.linalg.fractional_matrix_power(sigma, -0.5).real,
                               atol=1e-10)
    with pytest.raises(DataError, match=r"x: the noise covariance is singular"):
        pre.inverse_sqrt(np.diag([1.0, 1.0, 0.0]), "x")


@pytest.mark.parametrize("mode, reps", [("epochs", 4), ("time", 200)])
def test_mvnn_turns_the_noise_covariance_into_the_identity(tmp_path, mode, reps):
    """Correlated noise of known covariance, channels of different scales, no signal:
    whitened, its covariance is the identity up to a common factor.  ``time`` estimates each
    covariance from the repetitions at one time point, shrunk the more, the fewer there are
    (Ledoit-Wolf), and with their variance too low by (n - 1) / n: hence 200 repetitions."""
    rng = np.random.default_rng(3)
    a = 0.4 * rng.standard_normal((4, 4))
    scales = np.diag([1.0, 2.0, 0.5, 3.0])
    sigma = scales @ (a @ a.T + np.eye(4)) @ scales
    mix = np.linalg.cholesky(sigma)
    root = write_subject(tmp_path / "raw", noise=lambda n: mix @ rng.standard_normal((4, n)),
                         n_chans=4, names=("O1", "Oz", "O2", "Pz"),
                         reps={"train": reps, "test": reps})
    out = run(root, tmp_path / "out", mvnn=mode, sfreq=1000.0, baseline=None,
              max_reps={"train": reps, "test": reps})
    for split in ("train", "test"):
        x = out[split]["preprocessed_eeg_data"]
        cov = np.cov(np.moveaxis(x, 2, -1).reshape(-1, 4), rowvar=False)
        assert np.abs(sigma / np.mean(np.diag(sigma)) - np.eye(4)).max() > 0.5  # not white
        np.testing.assert_allclose(cov / np.mean(np.diag(cov)), np.eye(4), atol=0.12)


def test_training_only_mvnn_never_reads_the_test_partition(subject, tmp_path):
    """mvnn_fit: train: other test recordings leave the training file byte-identical (and
    train+test, the release's choice, does not)."""
    for fit in ("train", "train+test"):
        a = tmp_path / fit / "a"
        b = tmp_path / fit / "b"
        run(subject, a, mvnn="time", mvnn_fit=fit, sfreq=1000.0)
        other = write_subject(tmp_path / fit / "raw", seed=99, splits=("test",))
        for ses in release.RAW_SESSIONS:
            rel = f"{release.session_folder(ses)}/raw_eeg_training.npy"
            (other / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(subject / rel, other / rel)
        run(other, b, mvnn="time", mvnn_fit=fit, sfreq=1000.0)
        same_train = ((a / "preprocessed_eeg_training.npy").read_bytes()
                      == (b / "preprocessed_eeg_training.npy").read_bytes())
        assert same_train == (fit == "train"), fit
        assert (a / "preprocessed_eeg_test.npy").read_bytes() != \
            (b / "preprocessed_eeg_test.npy").read_bytes()


def test_training_file_is_written_before_any_test_recording_is_opened(subject, tmp_path):
    (subject / "ses-01/raw_eeg_test.npy").write_bytes(b"not a pickle")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match=r"ses-01/raw_eeg_test.npy"):
        pre.preprocess_subject(subject, out, PreprocessParams(mvnn="time"))
    assert (out / "preprocessed_eeg_training.npy").is_file()
    assert not (out / "preprocessed_eeg_test.npy").exists()


# --------------------------------------------------------------------------------------
# The stage, and bad raw input: one clear error, no partial output


def stage(tmp_path: Path, source: Path, **preprocess) -> Path:
    prm = write_params(tmp_path / "params.yaml", data={"eeg": "raw"},
                       preprocess={"sfreq": 1000.0, **preprocess})
    out = tmp_path / "eeg" / "sub-1"
    load_stage("preprocess").main(["--params", str(prm), "--subject", "1", "--source",
                                   str(source), "--out", str(out)])
    return out


def test_stage_writes_the_release_files_and_the_summary(subject, tmp_path):
    out = stage(tmp_path, subject)
    assert sorted(p.name for p in out.iterdir()) == ["preprocess.json",
                                                     "preprocessed_eeg_test.npy",
                                                     "preprocessed_eeg_training.npy"]
    from neurovision.erp import check_subject
    assert check_subject(out) == {"preprocessed_eeg_training.npy": (3, 8, 4, 1001),
                                  "preprocessed_eeg_test.npy": (2, 16, 4, 1001)}
    import json
    summary = json.loads((out / "preprocess.json").read_text())
    assert summary["params"]["mvnn_fit"] == "train" and summary["recording_sfreq"] == 1000.0
    assert summary["sessions"]["ses-01/raw_eeg_training.npy"]["targets_rejected"] == 1
    # numpy's own loader reads them (the release format)
    ref = np.load(out / "preprocessed_eeg_test.npy", allow_pickle=True).item()
    assert ref["preprocessed_eeg_data"].dtype == np.float64


def edit(rel: str, fn):
    def apply(root: Path) -> None:
        path = root / rel
        fn(path)
    return apply


def set_key(key: str, value):
    def fn(path: Path) -> None:
        d = load_npy_dict(path)
        save_npy_dict(path, {**d, key: value(d[key]) if callable(value) else value})
    return fn


def recorded(codes):
    def fn(path: Path) -> None:
        save_npy_dict(path, raw_dict(codes, np.random.default_rng(5)))
    return fn


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def stim_times(factor):
    def fn(path: Path) -> None:
        d = load_npy_dict(path)
        data = np.array(d["raw_eeg_data"])
        data[-1] *= factor
        save_npy_dict(path, {**d, "raw_eeg_data": data})
    return fn


TRAIN1, TEST3 = "ses-01/raw_eeg_training.npy", "ses-03/raw_eeg_test.npy"
BAD = [
    ("no-stim", edit(TRAIN1, set_key("ch_names", lambda c: [*c[:-1], "trigger"])), {},
     rf"{TRAIN1}: expected a 'stim' channel \(the events\) among 'ch_names', got \[.*trigger"),
    ("no-events", edit(TRAIN1, stim_times(0)), {},
     rf"{TRAIN1}: expected events on the 'stim' channel \(image onsets\), got none"),
    ("only-targets", edit(TEST3, recorded([pre.TARGET] * 3)), {},
     rf"{TEST3}: expected image events .* got only 3 target event"),
    ("too-few-repetitions", edit(TRAIN1, recorded([1, 1, 2, 2, 3])), {},
     rf"{TRAIN1}: image 3 has 1 repetition\(s\), expected at least 2 .*max_reps\.train: 2"),
    ("missing-session", lambda root: (root / TEST3).unlink(), {},
     r"expected the raw layout ses-01 \.\. ses-04 .*missing \['ses-03/raw_eeg_test.npy'\]"),
    ("truncated", edit(TEST3, truncate), {},
     rf"{TEST3}: expected a complete saved dict, got a truncated or corrupt pickle"),
    ("sfreq-differs", edit(TEST3, set_key("sfreq", 500.0)), {},
     rf"{TEST3}: 'sfreq' is 500 Hz, expected 1000 Hz as in the subject's other recordings"),
    ("sfreq-not-a-rate", edit(TRAIN1, set_key("sfreq", "1000")), {},
     rf"{TRAIN1}: expected a sampling rate in Hz \(a positive number\) in 'sfreq', got '1000'"),
    ("sfreq-zero", edit(TRAIN1, set_key("sfreq", 0)), {}, r"in 'sfreq', got 0"),
    ("sfreq-above-the-recording", None, {"sfreq": 2000.0},
     rf"{TRAIN1}: preprocess\.sfreq: expected at most the recording's rate \(1000 Hz\)"),
    ("h_freq-above-nyquist", None, {"h_freq": 600.0},
     r"preprocess\.h_freq: expected below the recording's Nyquist frequency \(500 Hz\)"),
    ("image-in-no-session", lambda root: [recorded([1, 1, 3, 3])(root / r) for r in (
        release.raw_layout()[0::2])], {}, r"images \[2\] \(of 1\.\.3\) have no repetition"),
    ("unequal-repetitions", edit(TRAIN1, recorded([1, 1, 2, 2])), {},
     r"image 3 has 6 repetition\(s\) over the sessions, others 8"),
    ("channel-not-in-file", None, {"channels": ["Oz", "Iz"]},
     rf"{TRAIN1}: preprocess\.channels asks for \['Iz'\], which the file lacks"),
    ("no-channel-chosen", None, {"channels": "^T"}, r"preprocess\.channels '\^T' chooses no"),
    ("channel-missing-later", edit(TEST3, set_key("ch_names", lambda c: [
        "OZ" if x == "Oz" else x for x in c])), {},
     rf"{TEST3}: expected the channels \['Oz'\] \(as in the subject's first recording\)"),
    ("nan-in-eeg", edit(TRAIN1, set_key("raw_eeg_data", lambda x: np.where(
        (np.arange(len(x)) == 1)[:, None] & (np.arange(x.shape[1]) == 400), np.nan, x))), {},
     rf"{TRAIN1}: expected finite EEG, got NaN or Inf \(first in channel 'PO3' at 0\.400 s"),
    ("one-repetition-for-mvnn-time", None, {"mvnn": "time", "max_reps": {"train": 1}},
     r"preprocess\.mvnn: time needs at least 2 repetitions of each image per session, got 1"),
    ("data-not-2d", edit(TRAIN1, set_key("raw_eeg_data", lambda x: x[0])), {},
     rf"{TRAIN1}: expected a 2-D numeric array \(channel, sample\) in 'raw_eeg_data'"),
    ("names-count", edit(TRAIN1, set_key("ch_names", lambda c: c[1:])), {},
     r"'ch_names' lists 6 channels and 'ch_types' 7, expected 7"),
]


@pytest.mark.parametrize("name, damage, over, match", BAD, ids=[b[0] for b in BAD])
def test_bad_raw_input_is_one_clear_error_and_no_output(subject, tmp_path, name, damage, over,
                                                       match):
    if damage is not None:
        damage(subject)
    with pytest.raises(DataError, match=match) as err:
        stage(tmp_path, subject, **over)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "eeg").exists() or list((tmp_path / "eeg").iterdir()) == []


def test_a_pickle_that_runs_code_is_refused_and_does_not_run(subject, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    np.save(subject / TRAIN1, np.array({"raw_eeg_data": Evil(), "ch_names": [], "ch_types": [],
                                        "sfreq": 1000}, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"refused to load global '(posix|os|nt)\.system'"):
        stage(tmp_path, subject)
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# Channel parameters, checked before preprocessing


@pytest.mark.parametrize("preprocess, erp, match", [
    ({"channels": "^O"}, {"channels": "all"},
     r"params: erp\.channels: expected a list of the channels preprocess\.channels \('\^O'\) "
     r"keeps \(\['O1', 'Oz', 'O2'\]\), since 'all' needs the release's 17 and \['PO7', .*"),
    ({"channels": ["O1", "Oz"]}, {"channels": ["O1", "P7"]},
     r"params: erp\.channels: expected channels that preprocess\.channels .* got \['O1', "
     r"'P7'\] \(\['P7'\] not kept\)"),
])
def test_erp_channels_must_be_among_those_preprocessing_keeps(preprocess, erp, match):
    with pytest.raises(ParamError, match=match):
        pre.check_channel_params(parse_params({"data": {"eeg": "raw"},
                                               "preprocess": preprocess, "erp": erp}))
    pre.check_channel_params(parse_params({"preprocess": preprocess, "erp": erp}))  # not raw


@pytest.mark.parametrize("preprocess, erp", [
    ({}, {}), ({"channels": "all"}, {}), ({"channels": "^O"}, {"channels": ["Oz"]}),
    ({"channels": "all"}, {"channels": ["Fp1"]})])
def test_channel_choices_that_fit_pass(preprocess, erp):
    pre.check_channel_params(parse_params({"data": {"eeg": "raw"}, "preprocess": preprocess,
                                           "erp": erp}))


def preset_command(name: str) -> str:
    """The preset's ``dvc exp run`` line as the README gives it (lists quoted for the shell)."""
    return "dvc exp run " + " ".join(f"-S '{o}'" if "[" in o else f"-S {o}"
                                     for o in pre.PRESETS[name])


@pytest.mark.parametrize("name", list(pre.PRESETS))
def test_presets_are_valid_params_and_in_the_readme(name, tmp_path):
    from dvc.utils.hydra import apply_overrides  # what dvc exp run -S does to params.yaml

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    apply_overrides(str(tmp_path / "params.yaml"), list(pre.PRESETS[name]))
    params = load_params(tmp_path / "params.yaml")
    pre.check_channel_params(params)
    assert params.data.eeg == "raw"
    assert f"`{preset_command(name)}`" in (ROOT / "README.md").read_text()


def test_erp_channels_all_is_every_recorded_channel_in_one_order():
    from neurovision.channels import RAW_CHANNELS
    from neurovision.erp import channel_list
    from neurovision.params import ErpParams

    rng = np.random.default_rng(0)
    scrambled = list(rng.permutation(RAW_CHANNELS))
    got = channel_list(ErpParams(), scrambled)
    assert got[:17] == release.RELEASE_CHANNELS and sorted(got) == sorted(RAW_CHANNELS)
    assert got == channel_list(ErpParams(), list(RAW_CHANNELS))  # whatever the file's order
    assert channel_list(ErpParams(), list(rng.permutation(release.RELEASE_CHANNELS))) == \
        release.RELEASE_CHANNELS  # the release's files: exactly as before
    assert channel_list(ErpParams(channels=("Oz", "Fp1")), scrambled) == ("Oz", "Fp1")


# --------------------------------------------------------------------------------------
# The raw layout's sources: a local folder or archive, and the archive's members


def raw_archive(root: Path, dest: Path, prefix: str = "sub-01/", extra=()) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for rel in release.raw_layout():
            zf.write(root / rel, prefix + rel)
        for name in extra:
            zf.writestr(name, b"x")
    return dest


def test_local_raw_layout_from_a_folder_or_the_subjects_archive(subject, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(subject, local / "sub-01")
    raw_archive(subject, local / "sub-02.zip", prefix="THINGS/sub-02/")
    for s in (1, 2):
        out = tmp_path / f"out{s}"
        release.local_raw_subject(local, s, out, progress=False)
        assert release.missing_raw_files(out) == []
        for rel in release.raw_layout():
            assert (out / rel).read_bytes() == (subject / rel).read_bytes()
    assert os.path.samefile(tmp_path / "out1" / TRAIN1, local / "sub-01" / TRAIN1)  # linked
    (local / "sub-01" / TEST3).unlink()
    with pytest.raises(DataError, match=r"subject 1: expected the raw recordings sub-01/ses-01 "
                                         r"\.\. ses-04 .*missing sub-01/ses-03/raw_eeg_test.npy"):
        release.local_raw_subject_source(local, 1)


def test_archive_members_map_to_the_layout_or_fail_listing_them(subject, tmp_path):
    names = [f"sub-03/{rel}" for rel in release.raw_layout()]
    assert release.raw_members([*names, "sub-03/notes.txt"], 3, "a.zip") == {
        n: n.removeprefix("sub-03/") for n in names}
    with pytest.raises(DataError, match=r"a.zip: expected one member ses-02/raw_eeg_test.npy .*"
                                        r"found none.*unverified.*data.source: local"):
        release.raw_members([n for n in names if "ses-02/raw_eeg_test" not in n], 3, "a.zip")
    with pytest.raises(DataError, match=r"found 2"):
        release.raw_members([*names, "copy/ses-01/raw_eeg_training.npy"], 3, "a.zip")
    with pytest.raises(DataError, match=r"belongs to sub-04, expected sub-03's recordings"):
        release.raw_members([n.replace("sub-03", "sub-04") for n in names], 3, "a.zip")
    archive = raw_archive(subject, tmp_path / "sub-01.zip", extra=("sub-01/../../evil",))
    with pytest.raises(DataError, match=r"zip slip"):
        release.extract_raw_subject(archive, 1, tmp_path / "out", progress=False)
