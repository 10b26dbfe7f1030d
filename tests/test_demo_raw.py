"""The demo's simulated raw recordings (neurovision.demo_raw): the raw layout and format, the
events, where the forward model's responses land, the noise, and the download stage."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pytest

from conftest import TINY_DEMO, load_stage, write_params
from neurovision import demo, demo_raw, release
from neurovision.channels import RAW_CHANNELS
from neurovision.io import load_npy_dict
from neurovision.params import DemoParams

P = DemoParams(**TINY_DEMO)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("raw")
    return root, demo_raw.write_subject(root, P, 1)


def events_of(d: dict) -> np.ndarray:
    info = mne.create_info(["stim"], d["sfreq"], ["stim"])
    stim = np.asarray(d["raw_eeg_data"][d["ch_names"].index("stim")], dtype=np.float64)
    return mne.find_events(mne.io.RawArray(stim[None], info, verbose="error"),
                           stim_channel="stim", verbose="error")


def test_the_raw_layout_and_format(recordings):
    root, summary = recordings
    assert release.missing_raw_files(root) == []
    assert sorted(summary) == sorted(release.raw_layout())
    for rel in release.raw_layout():
        d = load_npy_dict(root / rel)
        assert set(d) == {"raw_eeg_data", "ch_names", "ch_types", "sfreq"}
        assert d["sfreq"] == 1000.0
        assert d["raw_eeg_data"].dtype == np.float32 and d["raw_eeg_data"].shape[0] == 64
        assert d["ch_names"][-1] == "stim" and d["ch_types"] == ["eeg"] * 63 + ["stim"]
        assert sorted(d["ch_names"][:-1]) == sorted(RAW_CHANNELS)
        assert d["ch_names"][:-1] != list(RAW_CHANNELS)  # not in montage order
        assert d["raw_eeg_data"].shape[1] / 1000 == summary[rel]["seconds"]


def test_events_show_every_image_as_the_experiment_does(recordings):
    root, summary = recordings
    n_train = P.n_train_concepts * P.train_images_per_concept
    seen = {"train": np.zeros((4, n_train + 1), int), "test": np.zeros((4, P.n_test + 1), int)}
    targets = 0
    for (split, name) in release.RAW_FILES.items():
        for i, ses in enumerate(release.RAW_SESSIONS):
            rel = f"{release.session_folder(ses)}/{name}"
            ev = events_of(load_npy_dict(root / rel))
            assert len(ev) == summary[rel]["events"]
            codes = ev[:, 2]
            targets += int((codes == demo_raw.TARGET).sum())
            images = codes[codes != demo_raw.TARGET]
            assert images.min() >= 1
            seen[split][i] = np.bincount(images, minlength=len(seen[split][i]))
            gaps = np.diff(ev[:, 0])
            assert gaps.min() == 200  # 5 Hz within a sequence, pauses between
            assert set(np.unique(gaps)) <= {200, 1200}
    # every test image 20/4 = 5 times in each session; each training image in 2 sessions, 2+2
    assert (seen["test"][:, 1:] == P.test_reps // 4).all()
    train = seen["train"][:, 1:]
    assert ((train > 0).sum(axis=0) == 2).all() and (train.sum(axis=0) == P.train_reps).all()
    assert set(np.unique(train)) == {0, P.train_reps // 2}
    assert targets > 0


def test_responses_are_on_the_occipito_parietal_channels_by_name(recordings):
    root, _ = recordings
    d = load_npy_dict(root / "ses-01/raw_eeg_test.npy")
    ev = events_of(d)
    onsets = ev[ev[:, 2] != demo_raw.TARGET, 0]
    x = d["raw_eeg_data"].astype(np.float64)
    erp = np.mean([x[:, o:o + 300] - x[:, o - 100:o].mean(axis=1, keepdims=True)
                   for o in onsets], axis=0)
    rms = dict(zip(d["ch_names"], np.sqrt((erp ** 2).mean(axis=1))))
    back = np.mean([rms[c] for c in release.RELEASE_CHANNELS])
    front = np.mean([rms[c] for c in ("Fp1", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8")])
    assert back > 2 * front


def test_deterministic_and_seed_dependent(recordings, tmp_path):
    root, _ = recordings
    rel = "ses-02/raw_eeg_test.npy"
    model = demo.forward_model(P, 1, ch_names=demo_raw.FILE_ORDER, times=demo_raw.RESPONSE_TIMES)
    images = demo.make_image_set(P)
    amp = model.amplitudes(demo.visual_features(images, P.image_size))[images.n_train:]
    reps = demo_raw.repetitions(P, 1, "test", P.n_test)
    rng = np.random.default_rng([P.seed, 5, 1, 2, 1])  # seed, 5, subject, session, split
    again = demo_raw.simulate_session(model, amp, demo_raw.schedule(reps[1], rng), rng)
    assert np.array_equal(again["raw_eeg_data"], load_npy_dict(root / rel)["raw_eeg_data"])
    demo_raw.write_subject(tmp_path, DemoParams(**{**TINY_DEMO, "seed": 1}), 1)
    a, b = (load_npy_dict(r / rel)["raw_eeg_data"] for r in (root, tmp_path))
    assert a.shape != b.shape or not np.allclose(a, b)


def test_the_forward_models_responses_land_at_the_onsets():
    """The difference of two images' event-locked averages is the difference of their mean
    responses (the neighbours' overlapping responses and the noise average out)."""
    p = DemoParams(**{**TINY_DEMO, "noise": 0.0})  # the trial jitter and the neighbours stay
    model = demo.forward_model(p, 2, ch_names=demo_raw.FILE_ORDER, times=demo_raw.RESPONSE_TIMES)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((6, demo.N_FEATURES))
    amp = model.amplitudes(feats)
    session = demo_raw.schedule(np.full(6, 150), rng)
    d = demo_raw.simulate_session(model, amp, session, rng)
    eeg = d["raw_eeg_data"][:63].astype(np.float64)
    ev = events_of(d)
    mean = {}
    for code in (1, 2):
        onsets = ev[ev[:, 2] == code, 0]
        mean[code] = np.mean([eeg[:, o:o + 600] for o in onsets], axis=0)
    got = (mean[1] - mean[2]).ravel()
    want = (model.mean_response(feats[:1]) - model.mean_response(feats[1:2])).ravel()
    assert np.corrcoef(got, want)[0, 1] > 0.9
    shifted = np.mean([eeg[:, o + 20:o + 620] for o in ev[ev[:, 2] == 1, 0]], axis=0)
    assert np.corrcoef((shifted - mean[2]).ravel(), want)[0, 1] < 0.8  # 20 ms late is worse


def test_background_noise_has_its_spectrum_drifts_and_line_noise():
    p = DemoParams(**{**TINY_DEMO, "noise": 2.0})
    model = demo.forward_model(p, 1, ch_names=demo_raw.FILE_ORDER, times=demo_raw.RESPONSE_TIMES)
    n = 200_000
    out = np.zeros((63, n), dtype=np.float32)
    demo_raw._background(n, model.spatial, model.noise_sd, np.random.default_rng(1), out)
    x = out.astype(np.float64)
    power = (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(n, 1 / 1000)

    def band(lo, hi):
        return power[(freqs >= lo) & (freqs < hi)].mean()

    assert band(49.9, 50.1) > 20 * band(45, 49)  # line noise
    assert band(0.01, 0.1) > 20 * band(1, 2)  # slow drifts
    assert 1.5 < band(2, 4) / band(8, 16) < 6  # 1/f: halving per octave, 4x over two
    corr = np.corrcoef(x[:, ::50])
    near = [demo_raw.FILE_ORDER.index(c) for c in ("O1", "Oz")]
    far = [demo_raw.FILE_ORDER.index(c) for c in ("O1", "Fp2")]
    assert corr[near[0], near[1]] > corr[far[0], far[1]] + 0.2  # spatially correlated


def test_download_stage_writes_the_raw_layout_and_a_null_ceiling(tmp_path):
    prm = write_params(tmp_path / "params.yaml", data={"eeg": "raw", "source": "demo",
                                                       "subjects": [1], "demo": TINY_DEMO})
    out, ceiling = tmp_path / "raw/sub-1", tmp_path / "ceiling/sub-1.json"
    load_stage("download").main(["--params", str(prm), "--subject", "1", "--out", str(out),
                                 "--ceiling", str(ceiling), "--cache", str(tmp_path / "dl")])
    assert release.missing_raw_files(out) == []
    c = json.loads(ceiling.read_text())
    assert c["source"] == "demo" and c["top1"] is None and c["top5"] is None
