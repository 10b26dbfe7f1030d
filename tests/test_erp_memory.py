"""ERP features in blocks of images: same numbers as one pass, a fraction of the memory."""

import tracemalloc

import numpy as np
import pytest

from neurovision.erp import Epochs, erp_features
from neurovision.errors import DataError
from neurovision.params import RELEASE_CHANNELS, ErpParams

TIMES = np.round((np.arange(100) - 20) / 100.0, 2)


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
        avg = avg[[ep.ch_names.index(c) for c in p.channel_list()]]
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
    with pytest.raises(DataError, match=r"1 NaN or Inf value\(s\) \(first at image 5, repetition 2"):
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
