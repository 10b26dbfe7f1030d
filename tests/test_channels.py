import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from neurovision import channels
from neurovision.channels import RAW_CHANNELS, positions, positions_3d, with_position
from neurovision.release import RELEASE_CHANNELS

#: The Colin27 head is a real head: mirror electrodes sit up to 3.5 mm (0.035 head radii) off
#: perfect left/right symmetry.
ASYMMETRY = 0.04


def _mirror(name: str) -> str:
    """The 10-10 name on the other side: odd numbers are left, the next even one right."""
    m = re.fullmatch(r"([A-Za-z]+?)(\d+)", name)
    if m is None:  # ...z: on the midline
        return name
    k = int(m.group(2))
    return f"{m.group(1)}{k + 1 if k % 2 else k - 1}"


def test_raw_channel_set():
    assert len(RAW_CHANNELS) == len(set(RAW_CHANNELS)) == 63
    assert set(RELEASE_CHANNELS) <= set(RAW_CHANNELS)
    assert "Fz" not in RAW_CHANNELS  # the online reference
    assert {_mirror(c) for c in RAW_CHANNELS} == set(RAW_CHANNELS)


def test_positions_for_every_channel_in_input_order():
    names = list(RAW_CHANNELS)
    xy, xyz = positions(names), positions_3d(names)
    assert xy.shape == (63, 2) and xyz.shape == (63, 3)
    assert np.isfinite(xy).all() and np.isfinite(xyz).all()
    assert len({tuple(p) for p in xy.round(6)}) == 63  # no two electrodes coincide
    order = np.random.default_rng(0).permutation(63)
    np.testing.assert_array_equal(positions([names[i] for i in order]), xy[order])
    np.testing.assert_array_equal(positions_3d([names[i] for i in order]), xyz[order])
    assert positions([]).shape == (0, 2)


def test_unknown_channel_is_named():
    with pytest.raises(KeyError, match=r"\['Fz', 'EOG'\].*63 THINGS-EEG2 channels"):
        positions(["Oz", "Fz", "EOG"])
    with pytest.raises(KeyError, match="'oz'"):  # names are case-sensitive, as in the release
        positions_3d(["oz"])


def test_with_position_keeps_known_channels_in_order():
    assert with_position(["stim", "Oz", "Fz", "P3", "Cz"]) == ["Oz", "P3", "Cz"]


def test_geometry_nose_up_right_positive_left_right_symmetric():
    names = list(RAW_CHANNELS)
    p = dict(zip(names, positions(names)))
    for name in names:
        x, y = p[name]
        if _mirror(name) == name:
            assert abs(x) < ASYMMETRY, name  # midline
        else:
            mx, my = p[_mirror(name)]
            assert abs(x + mx) < ASYMMETRY and abs(y - my) < ASYMMETRY, name
    assert p["P3"][0] < 0 < p["P4"][0] and p["O1"][0] < 0 < p["O2"][0]  # +x is right
    assert p["P3"][0] == pytest.approx(-p["P4"][0], abs=ASYMMETRY)
    assert p["Oz"][0] == pytest.approx(0, abs=ASYMMETRY)
    # front to back along the midline: nose up
    ys = [p[c][1] for c in ("AFz", "FCz", "Cz", "CPz", "Pz", "POz", "Oz")]
    assert ys == sorted(ys, reverse=True)
    assert p["Oz"][1] < p["Pz"][1] < 0 < p["AFz"][1]
    # units of the head radius: the vertex near the centre, the temporal row inside the circle
    # (MNE's default head sphere is larger than the Colin27 electrode cloud)
    assert np.hypot(*p["Cz"]) < 0.25
    assert 0.6 < np.hypot(*p["T7"]) < 1.0 and 0.6 < np.hypot(*p["T8"]) < 1.0


def test_against_mne_montage_brute_force():
    """Recompute every position from MNE's montage, one channel at a time."""
    mne = pytest.importorskip("mne")
    info = mne.create_info(list(RAW_CHANNELS), 1000.0, "eeg")
    info.set_montage(mne.channels.make_standard_montage(channels.montage_name()))
    ch_pos = info.get_montage().get_positions()["ch_pos"]
    assert channels.HEAD_RADIUS_M == mne.defaults.HEAD_SIZE_DEFAULT
    for name in RAW_CHANNELS:
        x, y, z = (float(v) for v in ch_pos[name])
        r = math.sqrt(x * x + y * y + z * z)
        theta, phi = math.acos(z / r), math.atan2(y, x)
        rho = r * theta / (math.pi / 2) / 0.095
        np.testing.assert_allclose(positions_3d([name])[0], [x, y, z], rtol=0, atol=1e-12)
        np.testing.assert_allclose(positions([name])[0],
                                   [rho * math.cos(phi), rho * math.sin(phi)],
                                   rtol=0, atol=1e-12, err_msg=name)


def test_matches_mnes_own_topomap_layout():
    """MNE's sensor topomap (public plot_sensors) puts every electrode where we do."""
    mne = pytest.importorskip("mne")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(RAW_CHANNELS)
    info = mne.create_info(names, 1000.0, "eeg")
    info.set_montage(mne.channels.make_standard_montage(channels.montage_name()))
    fig = info.plot_sensors(kind="topomap", show=False)
    try:
        drawn = np.asarray(fig.axes[0].collections[0].get_offsets(), dtype=float)
    finally:
        plt.close(fig)
    np.testing.assert_allclose(positions(names), drawn / 0.095, rtol=0, atol=1e-9)


def test_topomap_projection_on_the_sphere():
    R = 0.095
    pts = np.array([[0, 0, R], [R, 0, 0], [0, -R, 0], [0, 0, 2 * R],
                    [0, R * math.sin(math.pi / 6), R * math.cos(math.pi / 6)]])
    expected = [[0, 0], [R, 0], [0, -R], [0, 0], [0, R / 3]]  # 30 deg from the vertex: 1/3
    np.testing.assert_allclose(channels.topomap_projection(pts), expected, atol=1e-15)


def test_import_does_not_load_mne():
    code = "import sys, neurovision.channels; assert 'mne' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
