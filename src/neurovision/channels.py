"""Channel names and approximate scalp positions of the 17 occipito-parietal channels.

Positions are 2-D projections of the standard 10-20 / 10-10 montage (nose up, +x right,
units of head radius), good enough for simulated topographies and scalp maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POSITIONS: dict[str, tuple[float, float]] = {
    "P7": (-0.51, -0.53), "P5": (-0.40, -0.46), "P3": (-0.28, -0.43), "P1": (-0.14, -0.40),
    "Pz": (0.00, -0.39), "P2": (0.14, -0.40), "P4": (0.28, -0.43), "P6": (0.40, -0.46),
    "P8": (0.51, -0.53),
    "PO7": (-0.38, -0.70), "PO3": (-0.17, -0.60), "POz": (0.00, -0.59), "PO4": (0.17, -0.60),
    "PO8": (0.38, -0.70),
    "O1": (-0.18, -0.80), "Oz": (0.00, -0.82), "O2": (0.18, -0.80),
}


def with_position(ch_names: Sequence[str]) -> list[str]:
    """The channels of ``ch_names`` whose scalp position is known, in that order."""
    return [c for c in ch_names if c in POSITIONS]


def positions(ch_names: Sequence[str]) -> np.ndarray:
    """(n_chans, 2) positions for ``ch_names``, in that order."""
    unknown = [c for c in ch_names if c not in POSITIONS]
    if unknown:
        raise KeyError(f"no position known for channel(s) {unknown}")
    return np.array([POSITIONS[c] for c in ch_names], dtype=float)
