"""Raw THINGS-EEG2 recordings to the release's preprocessed format, with MNE-Python.

(MNE, SciPy and scikit-learn are imported where they are used, so that the check stage can
use :func:`check_channel_params` without loading them.)

The steps are those of the dataset's own code (gifale95/eeg_encoding,
``02_eeg_preprocessing``), each a parameter of ``preprocess`` (:class:`PreprocessParams`).
For each split (training first, then test) and each of the 4 sessions, one session in
memory at a time:

1. read the raw file with the restricted unpickler (:func:`neurovision.io.load_npy_dict`)
   and check it;
2. events from the ``stim`` channel (``mne.find_events``); targets (99999) are rejected, and
   events too close to the recording's ends for a whole epoch are dropped, as MNE does;
3. channels by name (``channels``), in the file's order; optionally band-pass the
   continuous data (``l_freq`` / ``h_freq``, MNE's FIR filter);
4. per image at most ``max_reps`` repetitions, chosen with ``sklearn.utils.shuffle`` and
   ``seed`` exactly as the dataset's code chooses them;
5. epochs ``tmin`` .. ``tmax`` with ``baseline`` at the recording's rate (``mne.Epochs``),
   each resampled to ``sfreq`` (``Epochs.resample``).  Events are epoched in blocks, so that
   only one block is ever held at the recording's rate, and the continuous data is never
   resampled, so event times stay exact (each epoch is computed as if all were epoched at
   once);
6. multivariate noise normalisation (``mvnn``): the noise covariance of each image's
   repetitions at each time point (``time``) or of each epoch over its time points
   (``epochs``), by the dataset's estimator (Ledoit-Wolf shrinkage on standardised
   channels, :func:`shrunk_covariances`), averaged over images; from the training
   partition only (``mvnn_fit: train``) or averaged with the test partition's
   (``train+test``, the release); each session whitened by its covariance's inverse square
   root.

Then the sessions are merged (each image's repetitions in session order) and the
repetitions shuffled with ``seed``, one permutation for all images, into the release's
``(image, repetition, channel, time)`` float64 arrays.  With ``mvnn_fit: train`` the
training file is written before any test recording is opened.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurovision.channels import RAW_CHANNELS
from neurovision.errors import DataError, ParamError
from neurovision.io import load_npy_dict, save_json, save_npy_dict
from neurovision.params import Params, PreprocessParams
from neurovision.release import (
    EEG_FILES,
    RAW_FILES,
    RAW_SESSIONS,
    RELEASE_CHANNELS,
    missing_raw_files,
    session_folder,
)

log = logging.getLogger(__name__)

RAW_KEYS = ("raw_eeg_data", "ch_names", "ch_types", "sfreq")
STIM = "stim"
TARGET = 99999
#: Bytes of epochs held at the recording's rate at once (a block of events).
EPOCH_BLOCK_BYTES = 256 << 20
#: Bytes of covariance matrices computed at once.
COV_BLOCK_BYTES = 64 << 20
OUT_FILES = {"train": EEG_FILES[0], "test": EEG_FILES[1]}
SUMMARY_FILE = "preprocess.json"

#: The field's preprocessings as ``dvc exp run -S`` overrides of params.yaml (README "Raw
#: recordings"): the official release (gifale95/eeg_encoding), NICE and ATM (all 63
#: channels, -0.2 .. 1.0 s, 250 Hz, MVNN per epoch from the training partition, 0 .. 1 s
#: decoded), UBP (the same, the release's 17 channels decoded) and Shallow Alignment (UBP's,
#: band-passed 0.1 - 100 Hz).
_UBP_17 = "[" + ",".join(RELEASE_CHANNELS) + "]"
PRESETS: dict[str, tuple[str, ...]] = {
    "official release": ("data.eeg=raw", "preprocess.mvnn_fit=train+test"),
    "NICE / ATM": ("data.eeg=raw", "preprocess.channels=all", "preprocess.tmax=1.0",
                   "preprocess.sfreq=250", "preprocess.mvnn=epochs", "erp.tmax=1.0"),
    "UBP": ("data.eeg=raw", "preprocess.channels=all", "preprocess.tmax=1.0",
            "preprocess.sfreq=250", "preprocess.mvnn=epochs", "erp.tmax=1.0",
            f"erp.channels={_UBP_17}"),
    "Shallow Alignment": ("data.eeg=raw", "preprocess.channels=all", "preprocess.tmax=1.0",
                          "preprocess.sfreq=250", "preprocess.mvnn=epochs",
                          "preprocess.l_freq=0.1", "preprocess.h_freq=100", "erp.tmax=1.0",
                          f"erp.channels={_UBP_17}"),
}


# --------------------------------------------------------------------------------------
# Channels


def keeps(spec, name: str) -> bool:
    """Whether ``preprocess.channels`` (``spec``) keeps the EEG channel ``name``."""
    if spec == "all":
        return True
    if isinstance(spec, str):
        return re.match(spec, name) is not None
    return name in spec


def check_channel_params(params: Params) -> None:
    """With ``data.eeg: raw``, ``erp.channels`` must name channels ``preprocess.channels``
    keeps (``all`` needs the release's 17), judged on the 63 recorded channels' names: a
    mismatch fails here, before preprocessing, instead of in erp@N after it."""
    if params.data.eeg != "raw":
        return
    spec, wanted = params.preprocess.channels, params.erp.channels
    if wanted == "all":
        lost = [c for c in RELEASE_CHANNELS if not keeps(spec, c)]
        if lost:
            kept = [c for c in RAW_CHANNELS if keeps(spec, c)]
            raise ParamError(f"params: erp.channels: expected a list of the channels "
                             f"preprocess.channels ({spec!r}) keeps ({kept}), since 'all' "
                             f"needs the release's 17 and {lost} are not kept, got 'all'")
        return
    lost = [c for c in wanted if not keeps(spec, c)]
    if lost:
        raise ParamError(f"params: erp.channels: expected channels that preprocess.channels "
                         f"({spec!r}) keeps, got {list(wanted)} ({lost} not kept)")


# --------------------------------------------------------------------------------------
# One raw recording


@dataclass
class Recording:
    """A raw file's chosen channels (float64, continuous), its image events and counts."""

    source: str
    data: np.ndarray  # (n_channels, n_samples) float64
    ch_names: tuple[str, ...]
    sfreq: float
    events: np.ndarray  # (n_events, 3) int, image events only, in time order
    n_targets: int
    n_edge: int  # image events dropped: the epoch reaches past the recording's ends


def pick_channels(ch_names: list[str], ch_types: list[str], spec, source: str) -> list[str]:
    """The EEG channels ``preprocess.channels`` chooses, in the file's order.

    ``all``: every channel of type ``eeg``; a string: a regular expression matched at the
    start of each name (``re.match``, as ``mne.pick_channels_regexp`` does); a list: those
    names, each of which the file must have."""
    eeg = [c for c, t in zip(ch_names, ch_types) if c != STIM and t != "stim"]
    if not isinstance(spec, str):
        missing = [c for c in spec if c not in eeg]
        if missing:
            raise DataError(f"{source}: preprocess.channels asks for {missing}, which the file "
                            f"lacks: expected them among its EEG channels, got {eeg}")
    chosen = [c for c in eeg if keeps(spec, c)]
    if not chosen:
        raise DataError(f"{source}: preprocess.channels {spec!r} chooses no channel: expected "
                        f"a match among the file's EEG channels, got {eeg}")
    return chosen


def _check_raw(d: dict, source: str) -> tuple[np.ndarray, list[str], list[str], float]:
    data, names, types, sfreq = (d[k] for k in RAW_KEYS)
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu" or data.ndim != 2:
        raise DataError(f"{source}: expected a 2-D numeric array (channel, sample) in "
                        f"'raw_eeg_data', got {type(data).__name__} "
                        f"{getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}")
    names = [str(c) for c in np.asarray(names).tolist()]
    types = [str(t) for t in np.asarray(types).tolist()]
    if len(names) != data.shape[0] or len(types) != data.shape[0]:
        raise DataError(f"{source}: 'ch_names' lists {len(names)} channels and 'ch_types' "
                        f"{len(types)}, expected {data.shape[0]} (the rows of 'raw_eeg_data')")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise DataError(f"{source}: expected unique 'ch_names', got {dup} repeated")
    if STIM not in names:
        raise DataError(f"{source}: expected a '{STIM}' channel (the events) among 'ch_names', "
                        f"got {names}")
    if isinstance(sfreq, (bool, np.bool_)) or not isinstance(sfreq, (int, float, np.number)) \
            or not np.isfinite(sfreq) or sfreq <= 0:
        raise DataError(f"{source}: expected a sampling rate in Hz (a positive number) in "
                        f"'sfreq', got {sfreq!r}")
    return data, names, types, float(sfreq)


def find_events(stim: np.ndarray, sfreq: float, source: str) -> np.ndarray:
    """``mne.find_events`` on the stim channel: (n, 3) onsets, previous value, code."""
    import mne

    info = mne.create_info([STIM], sfreq, [STIM])
    raw = mne.io.RawArray(np.asarray(stim, dtype=np.float64)[None], info, verbose="error")
    try:
        events = mne.find_events(raw, stim_channel=STIM, verbose="error")
    except ValueError as exc:
        raise DataError(f"{source}: the '{STIM}' channel cannot be read as events "
                        f"(mne.find_events: {' '.join(str(exc).split())})") from exc
    if len(events) == 0:
        raise DataError(f"{source}: expected events on the '{STIM}' channel (image onsets), "
                        f"got none: the channel is flat")
    return events


def _epoch_samples(p: PreprocessParams, sfreq: float) -> tuple[int, int]:
    """First sample of an epoch relative to its event, and its length (MNE's rounding)."""
    first, last = round(p.tmin * sfreq), round(p.tmax * sfreq)
    return first, last - first + 1


def load_recording(path: str | Path, p: PreprocessParams, wanted: tuple[str, ...] | None = None,
                   sfreq: float | None = None, label: str | None = None) -> Recording:
    """Read one raw file: its channels (``wanted`` by name, else ``preprocess.channels``),
    continuous and float64, optionally filtered, and its image events.

    ``sfreq`` is the rate the other files of the subject have (a file that differs fails).
    """
    source = label or str(path)
    d = load_npy_dict(path, RAW_KEYS)
    raw, names, types, rate = _check_raw(d, source)
    if sfreq is not None and rate != sfreq:
        raise DataError(f"{source}: 'sfreq' is {rate:g} Hz, expected {sfreq:g} Hz as in the "
                        f"subject's other recordings")
    if p.sfreq > rate:
        raise DataError(f"{source}: preprocess.sfreq: expected at most the recording's rate "
                        f"({rate:g} Hz), got {p.sfreq:g}")
    for key, value in (("l_freq", p.l_freq), ("h_freq", p.h_freq)):
        if value is not None and value >= rate / 2:
            raise DataError(f"{source}: preprocess.{key}: expected below the recording's "
                            f"Nyquist frequency ({rate / 2:g} Hz), got {value:g}")
    if wanted is None:
        wanted = tuple(pick_channels(names, types, p.channels, source))
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"{source}: expected the channels {missing} (as in the subject's first "
                        f"recording), got ch_names {names}")
    stim = raw[names.index(STIM)]
    if not np.isfinite(stim).all():
        raise DataError(f"{source}: expected finite values on the '{STIM}' channel, got NaN or "
                        f"Inf")
    events = find_events(stim, rate, source)
    data = np.empty((len(wanted), raw.shape[1]), dtype=np.float64)
    for row, name in enumerate(wanted):
        data[row] = raw[names.index(name)]
    del d, raw, stim
    if not np.isfinite(data).all():
        row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(data)))
        raise DataError(f"{source}: expected finite EEG, got NaN or Inf (first in channel "
                        f"'{wanted[row]}' at {col / rate:.3f} s)")
    targets = events[:, 2] == TARGET
    events = events[~targets]
    if len(events) == 0:
        raise DataError(f"{source}: expected image events on the '{STIM}' channel, got only "
                        f"{int(targets.sum())} target event(s) ({TARGET})")
    first, n_raw = _epoch_samples(p, rate)
    inside = (events[:, 0] + first >= 0) & (events[:, 0] + first + n_raw <= data.shape[1])
    if not inside.all():
        log.warning("%s: %d image event(s) too close to the recording's ends for a whole "
                    "epoch (%g .. %g s) were dropped", source, int((~inside).sum()), p.tmin,
                    p.tmax)
    if p.l_freq is not None or p.h_freq is not None:
        import mne

        filtered = mne.io.RawArray(data, mne.create_info(list(wanted), rate, "eeg"),
                                   copy="auto", verbose="error")
        filtered.filter(p.l_freq, p.h_freq, picks="all", verbose="error")
        data = filtered.get_data()
    return Recording(source=source, data=data, ch_names=tuple(wanted), sfreq=rate,
                     events=events[inside], n_targets=int(targets.sum()),
                     n_edge=int((~inside).sum()))


# --------------------------------------------------------------------------------------
# Repetitions and epochs


def select_repetitions(codes: np.ndarray, max_reps: int, seed: int, source: str,
                       what: str) -> tuple[np.ndarray, np.ndarray]:
    """Which events of a session to keep: ``(conditions, chosen)``.

    ``conditions`` are the session's image codes, sorted; ``chosen[i]`` are the positions in
    ``codes`` of the repetitions kept for ``conditions[i]``, ``k = min(max_reps, the most
    any image has)`` of them, drawn as the dataset's code draws them
    (``sklearn.utils.shuffle(positions, random_state=seed, n_samples=k)``, positions in
    time order).  Every image must have at least ``k``.
    """
    from sklearn.utils import shuffle

    order = np.argsort(codes, kind="stable")
    conditions, start, counts = np.unique(codes[order], return_index=True, return_counts=True)
    k = min(max_reps, int(counts.max()))
    few = int(np.argmin(counts))
    if counts[few] < k:
        raise DataError(f"{source}: image {int(conditions[few])} has {int(counts[few])} "
                        f"repetition(s), expected at least {k} like the others (at most "
                        f"{what}: {max_reps} are kept per image and session; lower it to "
                        f"{int(counts[few])} to keep as many of every image)")
    chosen = np.empty((len(conditions), k), dtype=int)
    for i, (s, n) in enumerate(zip(start, counts)):
        chosen[i] = shuffle(order[s:s + n], random_state=seed, n_samples=k)
    return conditions, chosen


def epoch(rec: Recording, chosen: np.ndarray, p: PreprocessParams,
          block_bytes: int = EPOCH_BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Epochs of the chosen events: ``(data, times)`` with data of shape
    ``chosen.shape + (channel, time)``, float64, at ``preprocess.sfreq``.

    MNE cuts, baseline-corrects and resamples ``block_bytes`` worth of epochs at a time (in
    time order); each epoch is computed on its own, so the result does not depend on the
    block size."""
    import mne

    flat = chosen.ravel()
    order = np.argsort(rec.events[flat, 0], kind="stable")
    info = mne.create_info(list(rec.ch_names), rec.sfreq, "eeg")
    raw = mne.io.RawArray(rec.data, info, copy="auto", verbose="error")
    _, n_raw = _epoch_samples(p, rec.sfreq)
    block = max(1, block_bytes // (len(rec.ch_names) * n_raw * 8))
    out = times = None
    for start in range(0, len(order), block):
        rows = order[start:start + block]
        events = rec.events[flat[rows]]
        ep = mne.Epochs(raw, events, tmin=p.tmin, tmax=p.tmax, baseline=p.baseline,
                        preload=True, proj=False, reject_by_annotation=False, verbose="error")
        if len(ep) != len(events):
            raise DataError(f"{rec.source}: MNE dropped {len(events) - len(ep)} of "
                            f"{len(events)} epochs ({ep.drop_log[:3]}...): expected to keep "
                            f"every image event inside the recording")
        if p.sfreq != rec.sfreq:
            ep.resample(p.sfreq, verbose="error")
        part = ep.get_data(copy=False)
        if out is None:
            out = np.empty((len(flat), *part.shape[1:]), dtype=np.float64)
            times = np.asarray(ep.times, dtype=np.float64)
        out[rows] = part
        del ep, part
    return out.reshape(*chosen.shape, *out.shape[1:]), times


# --------------------------------------------------------------------------------------
# Multivariate noise normalisation


def shrunk_covariances(x: np.ndarray) -> np.ndarray:
    """Covariance matrices of the last two axes' (..., sample, feature) data, the dataset's
    estimator: scikit-learn's ``discriminant_analysis._cov(X, shrinkage="auto")``, batched.

    Each feature is standardised (mean 0, sd 1; a constant feature keeps sd 1, as in
    ``StandardScaler``), the Ledoit-Wolf shrunk covariance of the result is computed
    (``sklearn.covariance.ledoit_wolf``'s formula), and it is scaled back by the sds."""
    x = np.asarray(x, dtype=np.float64)
    n, p = x.shape[-2:]
    mean = x.mean(axis=-2, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-2, keepdims=True)
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    z = (x - mean) / scale
    z = z - z.mean(axis=-2, keepdims=True)
    z2 = z ** 2
    gram = np.matmul(np.swapaxes(z, -1, -2), z)  # (..., p, p)
    trace = z2.sum(axis=-2) / n  # (..., p): the empirical covariance's diagonal
    mu = trace.sum(axis=-1) / p
    delta_ = (gram ** 2).sum(axis=(-1, -2)) / n ** 2
    beta_ = (z2.sum(axis=-1) ** 2).sum(axis=-1)  # sum of <z2.T, z2>
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * trace.sum(axis=-1) + p * mu ** 2) / p
    beta = np.minimum(beta, delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        shrinkage = np.where(beta == 0, 0.0, beta / delta)
    if p == 1:
        shrinkage = np.zeros_like(shrinkage)
    cov = (1 - shrinkage)[..., None, None] * (gram / n)
    cov += (shrinkage * mu)[..., None, None] * np.eye(p)
    s = scale[..., 0, :]
    return s[..., :, None] * cov * s[..., None, :]


def noise_covariance(data: np.ndarray, mode: str, source: str,
                     block_bytes: int = COV_BLOCK_BYTES) -> np.ndarray:
    """One session's noise covariance (channel, channel) from ``data`` (image, repetition,
    channel, time): per image, the shrunk covariance of its repetitions at each time point
    (``time``) or of each repetition over its time points (``epochs``), averaged over those,
    then over images."""
    n_img, n_rep, n_ch, n_t = data.shape
    if mode == "time" and n_rep < 2:
        raise DataError(f"{source}: preprocess.mvnn: time needs at least 2 repetitions of each "
                        f"image per session, got {n_rep}: use preprocess.mvnn: epochs, or keep "
                        f"more repetitions")
    per_image = (n_t if mode == "time" else n_rep) * n_ch * max(n_ch, n_rep, n_t) * 8 * 4
    block = max(1, block_bytes // per_image)
    total = np.zeros((n_ch, n_ch))
    for start in range(0, n_img, block):
        part = data[start:start + block]
        # time: samples are repetitions, one matrix per image and time point; epochs:
        # samples are time points, one matrix per image and repetition
        x = np.transpose(part, (0, 3, 1, 2) if mode == "time" else (0, 1, 3, 2))
        total += shrunk_covariances(x).sum(axis=(0, 1))
    return total / (n_img * (n_t if mode == "time" else n_rep))


def inverse_sqrt(sigma: np.ndarray, source: str) -> np.ndarray:
    """``sigma ** -1/2`` of a symmetric positive definite matrix (scipy's ``eigh``)."""
    import scipy.linalg

    values, vectors = scipy.linalg.eigh(sigma)
    if not values[0] > 1e-12 * max(values[-1], 0.0):
        raise DataError(f"{source}: the noise covariance is singular (eigenvalues "
                        f"{values[0]:.3g} .. {values[-1]:.3g}): expected independent channels "
                        f"(a flat or duplicated channel?); use preprocess.mvnn: none or drop "
                        f"the channel with preprocess.channels")
    return (vectors / np.sqrt(values)) @ vectors.T


def whiten(data: np.ndarray, w: np.ndarray, block: int = 256) -> None:
    """``data`` (image, repetition, channel, time) := ``w @ data`` per time point, in place."""
    for start in range(0, len(data), block):
        data[start:start + block] = np.matmul(w, data[start:start + block])


# --------------------------------------------------------------------------------------
# A subject


@dataclass
class SessionEpochs:
    """One session's kept epochs of one split, and their noise covariance."""

    session: int
    conditions: np.ndarray  # (n_images,) 1-based image codes, sorted
    data: np.ndarray  # (n_images, n_reps, channel, time)
    cov: np.ndarray | None


def merge(sessions: list[SessionEpochs], seed: int, source: str) -> np.ndarray:
    """The split's release array (image, repetition, channel, time): image ``i`` is row
    ``i - 1``, its repetitions those of each session in session order, then shuffled with
    ``seed`` (one permutation for all images, as the dataset's code does)."""
    from sklearn.utils import shuffle

    n_img = max(int(s.conditions.max()) for s in sessions)
    total = np.zeros(n_img + 1, dtype=int)
    for s in sessions:
        total[s.conditions] += s.data.shape[1]
    absent = np.flatnonzero(total[1:] == 0) + 1
    if len(absent):
        raise DataError(f"{source}: images {absent[:10].tolist()} (of 1..{n_img}) have no "
                        f"repetition in any session: expected every image from 1 to the "
                        f"largest event code")
    n_rep = int(total[1:].max())
    few = int(np.argmin(total[1:])) + 1
    if total[few] != n_rep:
        raise DataError(f"{source}: image {few} has {int(total[few])} repetition(s) over the "
                        f"sessions, others {n_rep}: expected as many of every image")
    _, n_ch, n_t = sessions[0].data.shape[1:]
    inverse = np.argsort(shuffle(np.arange(n_rep), random_state=seed))
    out = np.empty((n_img, n_rep, n_ch, n_t), dtype=np.float64)
    offset = np.zeros(n_img + 1, dtype=int)
    for s in sessions:
        k = s.data.shape[1]
        for start in range(0, len(s.conditions), 512):
            rows = s.conditions[start:start + 512]
            for o in np.unique(offset[rows]):
                mine = np.flatnonzero(offset[rows] == o)
                out[(rows[mine] - 1)[:, None], inverse[o:o + k][None, :]] = \
                    s.data[start + mine]
        offset[s.conditions] += k
    return out


def _split_sessions(source: Path, split: str, p: PreprocessParams, state: dict
                    ) -> list[SessionEpochs]:
    """Epoch every session of one split; ``state`` carries channels, rate and times across
    files (the first file sets them) and collects the summary."""
    what = f"preprocess.max_reps.{split}"
    max_reps = getattr(p.max_reps, split)
    out = []
    for ses in RAW_SESSIONS:
        rel = f"{session_folder(ses)}/{RAW_FILES[split]}"
        label = str(source / rel)
        rec = load_recording(source / rel, p, state.get("ch_names"), state.get("sfreq"), label)
        state.setdefault("ch_names", rec.ch_names)
        state.setdefault("sfreq", rec.sfreq)
        conditions, chosen = select_repetitions(rec.events[:, 2], max_reps, p.seed, label, what)
        data, times = epoch(rec, chosen, p)
        del rec.data
        if "times" not in state:
            state["times"] = times
        cov = None if p.mvnn == "none" else noise_covariance(data, p.mvnn, label)
        out.append(SessionEpochs(session=ses, conditions=conditions, data=data, cov=cov))
        state["summary"][rel] = {"image_events": int(len(rec.events) + rec.n_edge),
                                 "targets_rejected": rec.n_targets,
                                 "dropped_at_the_ends": rec.n_edge,
                                 "images": len(conditions),
                                 "repetitions_kept": int(chosen.shape[1])}
        log.info("%s: %d image events (%d targets rejected), %d images x %d repetitions kept",
                 rel, len(rec.events) + rec.n_edge, rec.n_targets, len(conditions),
                 chosen.shape[1])
    return out


def _finish(sessions: list[SessionEpochs], split: str, p: PreprocessParams, sigmas: dict,
            state: dict, out_dir: Path, source: Path) -> tuple[int, ...]:
    """Whiten (per session, by ``sigmas``), merge, shuffle and write one split's file."""
    for s in sessions:
        if p.mvnn != "none":
            whiten(s.data, inverse_sqrt(sigmas[s.session],
                                        f"{source}/{session_folder(s.session)}"))
    data = merge(sessions, p.seed, f"{source} ({split})")
    sessions.clear()
    save_npy_dict(out_dir / OUT_FILES[split], {"preprocessed_eeg_data": data,
                                               "ch_names": list(state["ch_names"]),
                                               "times": state["times"].copy()})
    log.info("%s: %s (image, repetition, channel, time)", OUT_FILES[split], data.shape)
    return data.shape


def preprocess_subject(source: str | Path, out_dir: str | Path, p: PreprocessParams) -> dict:
    """A subject's raw layout in ``source`` to the release's two files in ``out_dir`` (and
    ``preprocess.json``: the parameters, library versions and what each session held)."""
    import mne
    import sklearn

    source, out_dir = Path(source), Path(out_dir)
    missing = missing_raw_files(source)
    if missing:
        raise DataError(f"{source}: expected the raw layout ses-01 .. ses-04 with "
                        f"{' and '.join(RAW_FILES.values())}; missing {missing}")
    state: dict = {"summary": {}}
    shapes = {}
    train = _split_sessions(source, "train", p, state)
    sigmas = {s.session: s.cov for s in train}
    if p.mvnn_fit == "train" or p.mvnn == "none":
        shapes["train"] = _finish(train, "train", p, sigmas, state, out_dir, source)
        test = _split_sessions(source, "test", p, state)
    else:  # the release: each session's covariance averaged over both partitions
        test = _split_sessions(source, "test", p, state)
        sigmas = {s.session: (sigmas[s.session] + s.cov) / 2 for s in test}
        shapes["train"] = _finish(train, "train", p, sigmas, state, out_dir, source)
    shapes["test"] = _finish(test, "test", p, sigmas, state, out_dir, source)
    summary = {"params": p.model_dump(mode="json"), "mne": mne.__version__,
               "scikit-learn": sklearn.__version__, "recording_sfreq": state["sfreq"],
               "ch_names": list(state["ch_names"]),
               "shapes": {OUT_FILES[k]: list(v) for k, v in shapes.items()},
               "sessions": state["summary"]}
    save_json(out_dir / SUMMARY_FILE, summary)
    return summary
