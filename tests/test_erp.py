"""ERP features in blocks of images: same numbers as one pass, a fraction of the memory."""

import tracemalloc

import numpy as np
import pytest

from neurovision.erp import Epochs, channel_list, erp_features, load_epochs
from neurovision.errors import DataError
from neurovision.io import save_npy_dict
from neurovision.params import ErpParams
from neurovision.release import RELEASE_CHANNELS

TIMES = np.round((np.arange(100) - 20) / 100.0, 2)


def make_epochs(n_img=3, n_rep=5, chans=("O1", "Oz", "O2"), n_t=100, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n_img, n_rep, len(chans), n_t))
    return Epochs(data=data, ch_names=tuple(chans), times=TIMES[:n_t])


def test_averages_repetitions_not_channels():
    # As many repetitions as channels: averaging the wrong axis gives the same shape, so only
    # the values can tell; the reference is an explicit loop over (image, channel, time).
    ep = make_epochs(n_img=2, n_rep=3, chans=("O1", "Oz", "O2"), n_t=20)
    p = ErpParams(channels=("O1", "Oz", "O2"), tmin=-0.2, tmax=-0.01, standardize=False)
    feats = erp_features(ep, p)
    ref = np.array([[sum(ep.data[i, r, c, t] for r in range(3)) / 3
                     for c in range(3) for t in range(20)] for i in range(2)])
    np.testing.assert_allclose(feats, ref)
    wrong = ep.data.mean(axis=2).reshape(2, -1)  # channel average of single trials
    assert wrong.shape == feats.shape and not np.allclose(wrong, feats)


def test_channels_selected_by_name_with_shuffled_order():
    chans = ("Oz", "O2", "O1", "POz")
    ep = make_epochs(chans=chans, n_rep=2)
    p = ErpParams(channels=("O1", "O2"), tmin=0.0, tmax=0.79)
    feats = erp_features(ep, p).reshape(3, 2, -1)
    avg = ep.data.mean(axis=1)
    np.testing.assert_allclose(feats[:, 0], avg[:, 2, 20:])  # O1 is stored third
    np.testing.assert_allclose(feats[:, 1], avg[:, 1, 20:])  # O2 is stored second


def test_time_window_baseline_and_bins():
    ep = make_epochs(n_img=1, n_rep=1, chans=("Oz",))
    p = ErpParams(channels=("Oz",), tmin=0.0, tmax=0.09, baseline=(-0.2, -0.01), bin_size=5)
    feats = erp_features(ep, p)
    x = ep.data[0, 0, 0]
    x = x - x[:20].mean()
    np.testing.assert_allclose(feats[0], [x[20:25].mean(), x[25:30].mean()])


def test_missing_channel_names_file_and_channel(tmp_path):
    ep = make_epochs(chans=("O1", "Oz"))
    with pytest.raises(DataError, match=r"asks for \['PO8'\]"):
        erp_features(ep, ErpParams(channels=("O1", "PO8")))


def test_window_outside_epoch():
    with pytest.raises(DataError, match="holds no sample"):
        erp_features(make_epochs(), ErpParams(channels=("O1",), tmin=1.0, tmax=2.0))


def test_load_epochs_checks_axes_and_labels(tmp_path):
    path = tmp_path / "eeg.npy"
    save_npy_dict(path, {"preprocessed_eeg_data": np.zeros((2, 3, 4)), "ch_names": ["a"] * 3,
                         "times": np.arange(4)})
    with pytest.raises(DataError, match="4 axes"):
        load_epochs(path)
    save_npy_dict(path, {"preprocessed_eeg_data": np.zeros((2, 3, 2, 4)), "ch_names": ["a", "b"],
                         "times": np.arange(5)})
    with pytest.raises(DataError, match="'times' has 5 values"):
        load_epochs(path)
    save_npy_dict(path, {"preprocessed_eeg_data": np.zeros((2, 3, 2, 4)), "ch_names": ["a"],
                         "times": np.arange(4)})
    with pytest.raises(DataError, match="lists 1 channels"):
        load_epochs(path)
    save_npy_dict(path, {"preprocessed_eeg_data": np.zeros((2, 3, 2, 4)),
                         "times": np.arange(4)})
    with pytest.raises(DataError, match="missing key"):
        load_epochs(path)


def test_nan_is_refused():
    ep = make_epochs()
    ep.data[0, 0, 0, 50] = np.nan
    with pytest.raises(DataError, match="NaN or Inf"):
        erp_features(ep, ErpParams(channels=("O1",)))


def _epochs(n_img: int, n_rep: int = 4, seed: int = 0) -> Epochs:
    rng = np.random.default_rng(seed)
    order = tuple(rng.permutation(RELEASE_CHANNELS))  # stored order differs from the release's
    return Epochs(data=rng.normal(size=(n_img, n_rep, len(order), len(TIMES))), ch_names=order,
                  times=TIMES)


def _reference(ep: Epochs, p: ErpParams) -> np.ndarray:
    """One image at a time, spelled out."""
    rows = []
    for img in ep.data:
        avg = img.mean(axis=0)  # over repetitions -> (channel, time)
        avg = avg[[ep.ch_names.index(c) for c in channel_list(p)]]
        if p.baseline is not None:
            b = (ep.times >= p.baseline[0] - 1e-3) & (ep.times <= p.baseline[1] + 1e-3)
            avg = avg - avg[:, b].mean(axis=1, keepdims=True)
        avg = avg[:, (ep.times >= p.tmin - 1e-3) & (ep.times <= p.tmax + 1e-3)]
        n_bins = avg.shape[1] // p.bin_size
        avg = avg[:, : n_bins * p.bin_size].reshape(len(avg), n_bins, p.bin_size).mean(axis=2)
        rows.append(avg.ravel())
    return np.stack(rows)


@pytest.mark.parametrize("p", [ErpParams(), ErpParams(baseline=(-0.2, 0.0), bin_size=3,
                                                      channels=("PO8", "O1", "Pz"))])
def test_blocks_do_not_change_the_result(p):
    ep = _epochs(11)
    whole = erp_features(ep, p, block=1024)
    np.testing.assert_allclose(whole, _reference(ep, p), rtol=0, atol=1e-12)
    for block in (1, 3, 4, 11):
        assert np.array_equal(erp_features(ep, p, block=block), whole), block


def test_nan_in_a_later_block_is_reported_with_its_position():
    ep = _epochs(7)
    data = ep.data.copy()
    data[5, 2, 0, 30] = np.nan
    bad = Epochs(data=data, ch_names=ep.ch_names, times=ep.times, source="x.npy")
    with pytest.raises(DataError,
                       match=r"1 NaN or Inf value\(s\) \(first at image 5, repetition 2"):
        erp_features(bad, ErpParams(), block=2)


def test_peak_memory_beyond_the_output_is_a_small_fraction_of_the_input():
    ep = _epochs(2000)  # 109 MB of float64, like a slice of a release training file
    tracemalloc.start()
    try:
        out = erp_features(ep, ErpParams(), block=250)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One pass over all images needs ~0.3-0.4x the input on top of the output.
    assert peak - out.nbytes < 0.1 * ep.data.nbytes, (peak, out.nbytes, ep.data.nbytes)
