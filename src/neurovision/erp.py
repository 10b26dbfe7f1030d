"""ERP features from the preprocessed EEG arrays.

Axis convention of the release (and of every array here), named once:
``(image, repetition, channel, time)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurovision.channels import RAW_CHANNELS
from neurovision.errors import DataError
from neurovision.io import load_npy_dict
from neurovision.params import ErpParams
from neurovision.release import EEG_FILES, RELEASE_CHANNELS, RELEASE_SHAPES

log = logging.getLogger(__name__)

IMAGE_AXIS, REP_AXIS = 0, 1
EEG_KEYS = ("preprocessed_eeg_data", "ch_names", "times")


@dataclass(frozen=True)
class Epochs:
    """One preprocessed-EEG file: data (image, repetition, channel, time) with labels."""

    data: np.ndarray
    ch_names: tuple[str, ...]
    times: np.ndarray
    source: str = "<array>"


def load_epochs(path: str | Path) -> Epochs:
    """Load and check a release EEG file (safe unpickling; see :mod:`neurovision.io`)."""
    d = load_npy_dict(path, EEG_KEYS)
    data = d["preprocessed_eeg_data"]
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu":
        raise DataError(f"{path}: expected a numeric array in 'preprocessed_eeg_data', got "
                        f"{type(data).__name__} {getattr(data, 'dtype', '')}")
    if data.ndim != 4:
        raise DataError(f"{path}: expected 4 axes (image, repetition, channel, time) in "
                        f"'preprocessed_eeg_data', got shape {data.shape}")
    ch_names = tuple(str(c) for c in np.asarray(d["ch_names"]).tolist())
    times = np.asarray(d["times"], dtype=np.float64)
    n_img, n_rep, n_ch, n_t = data.shape
    if n_img == 0 or n_rep == 0:
        raise DataError(f"{path}: expected at least one image and one repetition, got shape "
                        f"{data.shape} (image, repetition, channel, time)")
    if len(ch_names) != n_ch:
        raise DataError(f"{path}: 'ch_names' lists {len(ch_names)} channels, expected {n_ch} "
                        f"(the channels on axis 2 of the data)")
    if len(set(ch_names)) != len(ch_names):
        dup = sorted({c for c in ch_names if ch_names.count(c) > 1})
        raise DataError(f"{path}: expected unique 'ch_names', got {dup} repeated")
    if times.ndim != 1 or len(times) != n_t:
        raise DataError(f"{path}: 'times' has {times.size} values, expected {n_t} (the samples "
                        f"on axis 3 of the data, time)")
    if not np.all(np.diff(times) > 0):
        raise DataError(f"{path}: expected strictly increasing 'times', got a decrease or a "
                        f"repeat at index {int(np.argmin(np.diff(times) > 0)) + 1}")
    return Epochs(data=data, ch_names=ch_names, times=times, source=str(path))


def check_same_times(times: np.ndarray, reference: np.ndarray, source: str,
                     reference_source: str) -> None:
    """The test file must sample the epoch exactly like the training file."""
    if times.shape == reference.shape and np.allclose(times, reference, rtol=0, atol=1e-9):
        return
    where = ""
    if times.shape == reference.shape:
        k = int(np.argmax(~np.isclose(times, reference, rtol=0, atol=1e-9)))
        where = f", first differing at sample {k} ({times[k]:.3f} vs {reference[k]:.3f} s)"
    raise DataError(f"{source}: expected the same 'times' as {reference_source} "
                    f"({len(reference)} samples, {reference[0]:.3f} .. {reference[-1]:.3f} s), "
                    f"got {len(times)} samples, {times[0]:.3f} .. {times[-1]:.3f} s{where}")


def channel_list(p: ErpParams, ch_names: Sequence[str] | None = None) -> tuple[str, ...]:
    """The channels ``erp.channels`` selects, in feature order.

    ``all`` is the release's 17 (in the release's order), then every other of the 63
    recorded channels (:data:`neurovision.channels.RAW_CHANNELS`) that the file's
    ``ch_names`` holds, in montage order: the release's 17 on the release's files, all 63
    after ``preprocess.channels: all``.  The order does not depend on the file's, so the
    features of files that store channels differently line up.
    """
    if p.channels != "all":
        return tuple(p.channels)
    extra = [] if ch_names is None else [c for c in RAW_CHANNELS
                                         if c in ch_names and c not in RELEASE_CHANNELS]
    return (*RELEASE_CHANNELS, *extra)


def channel_indices(ch_names: tuple[str, ...], wanted: tuple[str, ...], source: str) -> np.ndarray:
    """Positions of ``wanted`` channels in ``ch_names``, selected by name."""
    missing = [c for c in wanted if c not in ch_names]
    if missing:
        raise DataError(f"{source}: erp.channels asks for {missing}, which the file lacks: "
                        f"expected {missing} among its channels, got ch_names {list(ch_names)}")
    return np.array([ch_names.index(c) for c in wanted], dtype=int)


def time_mask(times: np.ndarray, tmin: float, tmax: float, what: str, source: str) -> np.ndarray:
    """Boolean mask of samples with tmin <= t <= tmax (with a 1%-of-a-sample tolerance).

    The window must lie inside the epoch, which spans ``times[0]`` to one sample period
    after ``times[-1]`` (the release's 100 samples at -0.2 .. 0.79 s cover -0.2 .. 0.8 s).
    """
    dt = 0.0 if len(times) < 2 else float(np.median(np.diff(times)))
    eps = 1e-6 if len(times) < 2 else 0.01 * float(np.min(np.diff(times)))
    mask = (times >= tmin - eps) & (times <= tmax + eps)
    start, end = float(times[0]), float(times[-1]) + dt
    if not mask.any():
        raise DataError(f"{source}: {what} [{tmin}, {tmax}] s holds no sample: expected a window "
                        f"inside the epoch ({start:.3f} .. {end:.3f} s), got [{tmin}, {tmax}] s")
    if tmin < start - eps or tmax > end + eps:
        raise DataError(f"{source}: {what} [{tmin}, {tmax}] s reaches outside the epoch: "
                        f"expected a window inside the epoch ({start:.3f} .. {end:.3f} s), got "
                        f"[{tmin}, {tmax}] s")
    return mask


def erp_features(epochs: Epochs, p: ErpParams, block: int = 1024) -> np.ndarray:
    """Repetition-averaged ERP features, shape (n_images, n_channels x n_bins), float64.

    Steps: average the repetitions (axis 1), select channels by name, optionally subtract
    the mean of the baseline window, keep ``tmin..tmax``, average consecutive ``bin_size``
    samples (a trailing partial bin is dropped), flatten channel-major.

    Every step is per image, so images are processed ``block`` at a time: beyond the input
    (0.9 GB for a release training file) only the output and one block's temporaries are
    allocated, and the result does not depend on ``block``.
    """
    data = epochs.data
    chans = channel_indices(epochs.ch_names, channel_list(p, epochs.ch_names), epochs.source)
    bmask = None
    if p.baseline is not None:
        bmask = time_mask(epochs.times, p.baseline[0], p.baseline[1], "erp.baseline",
                          epochs.source)
    tmask = time_mask(epochs.times, p.tmin, p.tmax, "erp.tmin..erp.tmax", epochs.source)
    n_win = int(tmask.sum())
    n_bins = n_win // p.bin_size
    if n_bins == 0:
        raise DataError(f"{epochs.source}: erp.bin_size: expected at most {n_win} (the "
                        f"samples in erp.tmin..erp.tmax), got {p.bin_size}")
    n_img = data.shape[IMAGE_AXIS]
    out = np.empty((n_img, len(chans) * n_bins), dtype=np.float64)
    for start in range(0, n_img, block):
        stop = min(start + block, n_img)
        part = data[start:stop]
        if not np.isfinite(part).all():
            _raise_not_finite(epochs)
        erp = part.mean(axis=REP_AXIS)  # (image, channel, time)
        erp = erp[:, chans, :]
        if bmask is not None:
            erp = erp - erp[:, :, bmask].mean(axis=2, keepdims=True)
        erp = erp[:, :, tmask]
        erp = erp[:, :, : n_bins * p.bin_size]
        erp = erp.reshape(erp.shape[0], erp.shape[1], n_bins, p.bin_size).mean(axis=3)
        out[start:stop] = erp.reshape(erp.shape[0], -1)
    return out


def _raise_not_finite(epochs: Epochs) -> None:
    bad = ~np.isfinite(epochs.data)
    i, r, c, t = (int(v[0]) for v in np.nonzero(bad))
    raise DataError(f"{epochs.source}: expected finite values in the EEG, got "
                    f"{int(bad.sum())} NaN or Inf value(s) (first at image {i}, repetition "
                    f"{r}, channel '{epochs.ch_names[c]}', time {epochs.times[t]:.3f} s)")


def check_subject(folder: str | Path) -> dict[str, tuple[int, ...]]:
    """Check a subject's two EEG files (keys, axes, channels, times); return their shapes.

    Loads with the restricted unpickler (:func:`neurovision.io.load_npy_dict`), so a file
    that carries code is refused here, before any later stage reads it.
    """
    folder = Path(folder)
    epochs = {}
    for name in EEG_FILES:
        ep = load_epochs(folder / name)
        if ep.data.shape[0] < 2:
            raise DataError(f"{folder / name}: expected at least 2 images on axis 0, got shape "
                            f"{ep.data.shape} (image, repetition, channel, time)")
        epochs[name] = (ep.data.shape, ep.ch_names, ep.times)
        del ep
    (_tr_shape, tr_ch, tr_t), (_te_shape, te_ch, te_t) = epochs.values()
    if set(tr_ch) != set(te_ch):
        raise DataError(f"{folder}: training and test files have different channels: "
                        f"{list(tr_ch)} vs {list(te_ch)}")
    if len(tr_t) != len(te_t) or not np.allclose(tr_t, te_t):
        raise DataError(f"{folder}: training and test files have different 'times'")
    shapes = {name: shape for name, (shape, _, _) in epochs.items()}
    for name, shape in shapes.items():
        if shape != RELEASE_SHAPES[name]:
            log.info("%s: shape %s (the official release has %s)", folder / name, shape,
                     RELEASE_SHAPES[name])
    return shapes
