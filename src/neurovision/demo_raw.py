"""Simulated raw recordings in the THINGS-EEG2 raw layout (``data.eeg: raw`` on the demo).

Each subject has 4 sessions, each with a training and a test recording in the raw files'
format: a pickled dict with ``raw_eeg_data`` (channels x samples, float32 here), ``ch_names``
(the 63 EEG channels, in a scrambled order, and ``stim``), ``ch_types`` and ``sfreq`` (1000).
What a recording holds:

- rapid serial visual presentation: sequences of :data:`SEQUENCE` images, one every
  :data:`SOA` s (5 Hz, the experiment's rate), :data:`PAUSE` s between sequences; a target
  (event 99999, which preprocessing rejects) takes an extra place in about one sequence in
  :data:`TARGET_EVERY`;
- at each onset, the evoked response of the demo's forward model
  (:func:`neurovision.demo.forward_model` on the 63 channels at 1000 Hz, 600 ms long), with
  the model's trial-to-trial amplitude jitter; a target evokes the image-independent part
  only.  Responses of successive images overlap, as in the experiment;
- background noise with a 1/f spectrum (flat below 0.5 Hz) and the forward model's spatial
  correlation, sd ``noise_sd`` of the subject; slow drifts (below 0.1 Hz, sd
  :data:`DRIFT` x ``noise_sd``); 50 Hz line noise (amplitude up to :data:`LINE` x
  ``noise_sd``);
- the ``stim`` channel holds the event's code for :data:`PULSE` samples at its onset:
  training images 1..n_train, test images 1..n_test (1-based indices into the metadata's
  lists), targets 99999.

Which images a session shows, as in the experiment (16,540 training images x 4 repetitions
= 2 sessions x 2; 200 test images x 80 = 4 sessions x 20): every test image in every session,
its ``test_reps`` spread evenly over the sessions; each training image in 2 sessions (a
seeded half of them in sessions 1 and 2, the rest in 3 and 4), its ``train_reps`` split
between the two.  Sessions are simulated one at a time, in float32.

There is no ideal observer here: after epoching, resampling and noise normalisation the
noise no longer has the forward model's known covariance, and overlapping responses of the
neighbouring images add to it.  Everything is deterministic in ``DemoParams.seed`` and the
subject.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft

from neurovision import demo
from neurovision.channels import RAW_CHANNELS
from neurovision.io import save_npy_dict
from neurovision.params import DemoParams
from neurovision.release import RAW_FILES, RAW_SESSIONS, session_folder

log = logging.getLogger(__name__)

SFREQ = 1000.0
SOA = 0.2  # seconds between image onsets
SEQUENCE = 20  # images per RSVP sequence
PAUSE = 1.0  # seconds between sequences (after the last onset's SOA)
TARGET_EVERY = 4  # about one sequence in this many holds a target
TARGET = 99999
PULSE = 10  # samples the stim channel holds an event's code
LEAD = 2.0  # seconds before the first onset and after the last
RESPONSE_TIMES = np.arange(600) / SFREQ  # the evoked response's support, s after onset
NOISE_KNEE = 0.5  # Hz: the 1/f spectrum is flat below
DRIFT = 2.0  # sd of the slow drifts, in units of the subject's noise sd
DRIFT_BAND = (0.005, 0.1)  # Hz
LINE = 0.5  # largest line-noise amplitude, in units of the subject's noise sd
LINE_FREQ = 50.0
#: The channels in the order the demo's raw files store them: scrambled (fixed), so code that
#: selects channels by position instead of by name gives wrong results.
FILE_ORDER = tuple(np.array(RAW_CHANNELS)[np.random.default_rng(63).permutation(63)].tolist())
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Session:
    """What one simulated recording shows: event codes and onsets (samples), in time order."""

    codes: np.ndarray  # (n_events,) int: image codes (1-based) and TARGET
    onsets: np.ndarray  # (n_events,) int samples
    n_samples: int


def _split_counts(total: int, parts: int) -> list[int]:
    """``total`` repetitions spread over ``parts`` sessions as evenly as possible."""
    return [total // parts + (k < total % parts) for k in range(parts)]


def repetitions(p: DemoParams, subject: int, split: str, n_images: int) -> np.ndarray:
    """(n_sessions, n_images) repetitions of each image per session."""
    reps = np.zeros((len(RAW_SESSIONS), n_images), dtype=int)
    if split == "test":
        reps[:] = np.array(_split_counts(p.test_reps, len(RAW_SESSIONS)))[:, None]
        return reps
    half = np.random.default_rng([p.seed, 6, subject]).permutation(n_images) < n_images / 2
    first, second = _split_counts(p.train_reps, 2)
    reps[0, half], reps[1, half] = first, second
    reps[2, ~half], reps[3, ~half] = first, second
    return reps


def schedule(reps: np.ndarray, rng: np.random.Generator) -> Session:
    """Random order of one session's trials, cut into sequences, with targets and onsets."""
    codes = np.repeat(np.arange(1, len(reps) + 1), reps)
    codes = codes[rng.permutation(len(codes))]
    events, onsets, t = [], [], LEAD
    for start in range(0, len(codes), SEQUENCE):
        seq = list(codes[start:start + SEQUENCE])
        if rng.random() < 1 / TARGET_EVERY:
            seq.insert(int(rng.integers(0, len(seq) + 1)), TARGET)
        for code in seq:
            events.append(code)
            onsets.append(round(t * SFREQ))
            t += SOA
        t += PAUSE
    n_samples = round((t - PAUSE - SOA + LEAD) * SFREQ) + len(RESPONSE_TIMES)
    return Session(codes=np.array(events, dtype=int), onsets=np.array(onsets, dtype=int),
                   n_samples=n_samples)


def _background(n: int, spatial: np.ndarray, noise_sd: float, rng: np.random.Generator,
                out: np.ndarray, block: int = 1 << 16) -> None:
    """1/f noise, drifts and line noise, spatially correlated, into ``out`` (n_chans, n)."""
    n_chans = len(spatial)
    n_fft = scipy.fft.next_fast_len(n, real=True)
    freqs = np.fft.rfftfreq(n_fft, 1 / SFREQ)
    amp = 1 / np.sqrt(np.maximum(freqs, NOISE_KNEE))
    amp /= np.sqrt((amp[1:] ** 2).sum() / (n_fft / 2))  # unit variance
    drift = np.where((freqs >= DRIFT_BAND[0]) & (freqs <= DRIFT_BAND[1]), 1.0, 0.0)
    drift *= DRIFT / max(np.sqrt((drift ** 2).sum() / (n_fft / 2)), 1e-12)
    spectrum = np.sqrt(amp ** 2 + drift ** 2)
    spectrum[0] = 0.0
    for c in range(n_chans):
        white = scipy.fft.rfft(rng.standard_normal(n_fft))
        out[c] = scipy.fft.irfft(white * spectrum, n_fft)[:n]
    for start in range(0, n, block):  # spatial correlation, in place, a block at a time
        stop = min(n, start + block)
        out[:, start:stop] = spatial @ out[:, start:stop].astype(np.float64)
    t = np.arange(n) / SFREQ
    sin, cos = np.sin(2 * np.pi * LINE_FREQ * t), np.cos(2 * np.pi * LINE_FREQ * t)
    line = LINE * rng.uniform(0.2, 1.0, n_chans)
    phase = rng.uniform(0, 2 * np.pi, n_chans)
    for c in range(n_chans):
        out[c] += line[c] * (np.cos(phase[c]) * sin + np.sin(phase[c]) * cos)
        out[c] *= noise_sd


def simulate_session(model: demo.ForwardModel, amplitudes: np.ndarray, session: Session,
                     rng: np.random.Generator, chunk: int = 256) -> dict:
    """One raw recording: the dict of a raw file, data in float32.

    ``amplitudes`` (n_images, n_basis) are the forward model's source amplitudes of the
    split's images, row ``code - 1`` for image code ``code``.
    """
    n_basis, n_chans, n_times = model.basis.shape
    data = np.zeros((n_chans + 1, session.n_samples), dtype=np.float32)
    _background(session.n_samples, model.spatial, model.noise_sd, rng, data[:n_chans])
    basis = model.basis.reshape(n_basis, -1)
    for start in range(0, len(session.codes), chunk):
        codes = session.codes[start:start + chunk]
        amp = np.where((codes == TARGET)[:, None], 0.0,
                       amplitudes[np.minimum(codes, len(amplitudes)) - 1])
        amp = amp + model.jitter_sd * rng.standard_normal(amp.shape)
        responses = (model.evoked.reshape(1, -1) + amp @ basis).astype(np.float32)
        for onset, response in zip(session.onsets[start:start + chunk], responses):
            data[:n_chans, onset:onset + n_times] += response.reshape(n_chans, n_times)
    for code, onset in zip(session.codes, session.onsets):
        data[n_chans, onset:onset + PULSE] = code
    return {"raw_eeg_data": data, "ch_names": [*FILE_ORDER, "stim"],
            "ch_types": ["eeg"] * n_chans + ["stim"], "sfreq": SFREQ}


def write_subject(out_dir: str | Path, p: DemoParams, subject: int) -> dict:
    """Write the subject's 8 raw files (raw layout) into ``out_dir``; return what each holds."""
    out_dir = Path(out_dir)
    images = demo.make_image_set(p)
    model = demo.forward_model(p, subject, ch_names=FILE_ORDER, times=RESPONSE_TIMES)
    amplitudes = model.amplitudes(demo.visual_features(images, p.image_size))
    rows = {"train": slice(0, images.n_train), "test": slice(images.n_train, None)}
    summary = {}
    for k, split in enumerate(SPLITS):
        amp = amplitudes[rows[split]]
        reps = repetitions(p, subject, split, len(amp))
        for i, ses in enumerate(RAW_SESSIONS):
            rng = np.random.default_rng([p.seed, 5, subject, ses, k])
            session = schedule(reps[i], rng)
            raw = simulate_session(model, amp, session, rng)
            rel = f"{session_folder(ses)}/{RAW_FILES[split]}"
            save_npy_dict(out_dir / rel, raw)
            del raw
            n_targets = int((session.codes == TARGET).sum())
            summary[rel] = {"events": len(session.codes), "targets": n_targets,
                            "seconds": session.n_samples / SFREQ}
            log.info("demo: subject %d %s: %d image trials, %d targets, %.0f s at 1000 Hz",
                     subject, rel, len(session.codes) - n_targets, n_targets,
                     session.n_samples / SFREQ)
    return summary
