"""Channel names of THINGS-EEG2 and their scalp positions from MNE's standard 10-05 montage.

Positions are MNE's own topomap projection of the montage (the one ``mne.viz.plot_topomap``
draws with its default head sphere): nose up, +x to the subject's right, in units of the head
radius, so the head outline is the unit circle.  They are computed on first use (MNE is
imported only then) and cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

#: The 63 EEG channels of the THINGS-EEG2 raw recordings: 10-10 positions of a 64-channel
#: BrainVision cap (actiCHamp amplifier) less Fz, the online reference (Gifford et al. 2022,
#: NeuroImage 264:119754, "EEG recording and preprocessing").  Listed in the order public
#: loaders of the 63-channel data print; the raw files' own order is unverified, so select by
#: name.  The release keeps the 17 O* and P* channels (``neurovision.release.RELEASE_CHANNELS``).
RAW_CHANNELS = (
    "Fp1", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F7", "F5", "F3", "F1", "F2", "F4", "F6",
    "F8", "FT9", "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "FT10", "T7",
    "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8", "TP9", "TP7", "CP5", "CP3", "CP1", "CPz",
    "CP2", "CP4", "CP6", "TP8", "TP10", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
    "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2",
)

#: Radius of MNE's default head sphere (``mne.defaults.HEAD_SIZE_DEFAULT``), centred on the
#: origin of MNE's head coordinate frame: the unit of :func:`positions`.
HEAD_RADIUS_M = 0.095

_KNOWN = frozenset(RAW_CHANNELS)


def montage_name() -> str:
    """Name of MNE's standard 10-05 montage on the Colin27 head.

    MNE 1.13 renamed ``standard_1005`` to ``colin27_1005`` (same positions) and deprecates the
    old name; earlier versions know only the old one.
    """
    import mne

    builtin = mne.channels.get_builtin_montages()
    return "colin27_1005" if "colin27_1005" in builtin else "standard_1005"


@lru_cache(maxsize=1)
def _head_positions() -> dict[str, np.ndarray]:
    """3-D positions (metres, MNE's head frame) of the :data:`RAW_CHANNELS`.

    The montage comes in MRI coordinates; attaching it to an ``Info`` converts it to the
    head frame (origin between the preauricular points, +y through the nasion), the frame
    MNE's topomaps project from.
    """
    import mne

    info = mne.create_info(list(RAW_CHANNELS), sfreq=1000.0, ch_types="eeg")
    info.set_montage(mne.channels.make_standard_montage(montage_name()))
    pos = info.get_montage().get_positions()
    if pos["coord_frame"] != "head":
        raise RuntimeError(f"MNE returned montage positions in the {pos['coord_frame']!r} "
                           "frame, expected 'head'")
    return {name: np.asarray(pos["ch_pos"][name], dtype=float) for name in RAW_CHANNELS}


def topomap_projection(xyz: np.ndarray) -> np.ndarray:
    """(n, 2) topomap coordinates, metres, of (n, 3) head-frame positions in metres.

    MNE's azimuthal equidistant projection about the vertex of a head sphere centred on the
    origin: a point at distance ``r``, polar angle ``theta`` from +z and azimuth ``phi`` lands
    at radius ``r * theta / (pi / 2)`` in direction ``phi``, so points on the sphere's equator
    land on the head circle.
    """
    xyz = np.asarray(xyz, dtype=float)
    r = np.linalg.norm(xyz, axis=1)
    theta = np.arccos(np.clip(xyz[:, 2] / r, -1.0, 1.0))
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    return (r * theta / (np.pi / 2))[:, None] * np.column_stack([np.cos(phi), np.sin(phi)])


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[float, float]]:
    names = list(RAW_CHANNELS)
    xy = topomap_projection(positions_3d(names)) / HEAD_RADIUS_M
    return {name: (float(x), float(y)) for name, (x, y) in zip(names, xy)}


def with_position(ch_names: Sequence[str]) -> list[str]:
    """The channels of ``ch_names`` whose scalp position is known, in that order."""
    return [c for c in ch_names if c in _KNOWN]


def _check_known(ch_names: Sequence[str]) -> None:
    unknown = [c for c in ch_names if c not in _KNOWN]
    if unknown:
        raise KeyError(f"no scalp position for channel(s) {unknown}: expected names of the "
                       f"{len(RAW_CHANNELS)} THINGS-EEG2 channels (neurovision.channels."
                       "RAW_CHANNELS)")


def positions_3d(ch_names: Sequence[str]) -> np.ndarray:
    """(n_chans, 3) positions for ``ch_names``, in that order: metres, MNE's head frame."""
    _check_known(ch_names)
    table = _head_positions()
    return np.array([table[c] for c in ch_names], dtype=float).reshape(len(ch_names), 3)


def positions(ch_names: Sequence[str]) -> np.ndarray:
    """(n_chans, 2) topomap positions for ``ch_names``, in that order.

    Nose up (+y), +x to the subject's right, in units of the head radius (the head outline is
    the unit circle), as MNE's topomaps place them.
    """
    _check_known(ch_names)
    table = _table()
    return np.array([table[c] for c in ch_names], dtype=float).reshape(len(ch_names), 2)
