"""ERP features from the preprocessed EEG arrays.

Axis convention of the release (and of every array here), named once:
``(image, repetition, channel, time)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurovision.errors import DataError
from neurovision.io import load_npy_dict
from neurovision.params import ErpParams

IMAGE_AXIS, REP_AXIS, CHAN_AXIS, TIME_AXIS = 0, 1, 2, 3
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
        raise DataError(f"{path}: 'preprocessed_eeg_data' must be a numeric array, got "
                        f"{type(data).__name__} {getattr(data, 'dtype', '')}")
    if data.ndim != 4:
        raise DataError(f"{path}: 'preprocessed_eeg_data' must have 4 axes (image, repetition, "
                        f"channel, time), got shape {data.shape}")
    ch_names = tuple(str(c) for c in np.asarray(d["ch_names"]).tolist())
    times = np.asarray(d["times"], dtype=np.float64)
    n_img, n_rep, n_ch, n_t = data.shape
    if n_img == 0 or n_rep == 0:
        raise DataError(f"{path}: expected at least one image and one repetition, got shape "
                        f"{data.shape} (image, repetition, channel, time)")
    if len(ch_names) != n_ch:
        raise DataError(f"{path}: 'ch_names' lists {len(ch_names)} channels, the data has "
                        f"{n_ch} on axis 2 (channel)")
    if len(set(ch_names)) != len(ch_names):
        dup = sorted({c for c in ch_names if ch_names.count(c) > 1})
        raise DataError(f"{path}: 'ch_names' repeats channel(s) {dup}")
    if times.ndim != 1 or len(times) != n_t:
        raise DataError(f"{path}: 'times' has {times.size} values, the data has {n_t} samples "
                        f"on axis 3 (time)")
    if not np.all(np.diff(times) > 0):
        raise DataError(f"{path}: 'times' must increase strictly")
    return Epochs(data=data, ch_names=ch_names, times=times, source=str(path))


def channel_indices(ch_names: tuple[str, ...], wanted: tuple[str, ...], source: str) -> np.ndarray:
    """Positions of ``wanted`` channels in ``ch_names``, selected by name."""
    missing = [c for c in wanted if c not in ch_names]
    if missing:
        raise DataError(f"{source}: erp.channels asks for {missing}, which the file lacks; it "
                        f"has {list(ch_names)}")
    return np.array([ch_names.index(c) for c in wanted], dtype=int)


def time_mask(times: np.ndarray, tmin: float, tmax: float, what: str, source: str) -> np.ndarray:
    """Boolean mask of samples with tmin <= t <= tmax (with a half-sample tolerance)."""
    eps = 1e-6 if len(times) < 2 else 0.01 * float(np.min(np.diff(times)))
    mask = (times >= tmin - eps) & (times <= tmax + eps)
    if not mask.any():
        raise DataError(f"{source}: {what} [{tmin}, {tmax}] s holds no sample; the epoch spans "
                        f"{times[0]:.3f} .. {times[-1]:.3f} s")
    return mask


def erp_features(epochs: Epochs, p: ErpParams) -> np.ndarray:
    """Repetition-averaged ERP features, shape (n_images, n_channels x n_bins), float64.

    Steps: average the repetitions (axis 1), select channels by name, optionally subtract
    the mean of the baseline window, keep ``tmin..tmax``, average consecutive ``bin_size``
    samples (a trailing partial bin is dropped), flatten channel-major.
    """
    data = epochs.data
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise DataError(f"{epochs.source}: the EEG holds {bad} NaN or Inf value(s)")
    chans = channel_indices(epochs.ch_names, p.channel_list(), epochs.source)
    erp = data.mean(axis=REP_AXIS)  # (image, channel, time)
    erp = erp[:, chans, :]
    if p.baseline is not None:
        bmask = time_mask(epochs.times, p.baseline[0], p.baseline[1], "erp.baseline",
                          epochs.source)
        erp = erp - erp[:, :, bmask].mean(axis=2, keepdims=True)
    tmask = time_mask(epochs.times, p.tmin, p.tmax, "erp.tmin..erp.tmax", epochs.source)
    erp = erp[:, :, tmask]
    n_bins = erp.shape[2] // p.bin_size
    if n_bins == 0:
        raise DataError(f"{epochs.source}: erp.bin_size={p.bin_size} exceeds the "
                        f"{erp.shape[2]} samples in the time window")
    erp = erp[:, :, : n_bins * p.bin_size]
    erp = erp.reshape(erp.shape[0], erp.shape[1], n_bins, p.bin_size).mean(axis=3)
    return erp.reshape(erp.shape[0], -1)
