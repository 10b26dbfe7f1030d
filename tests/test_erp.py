"""ERP features in blocks of images: same numbers as one pass, a fraction of the memory."""

import logging
import re
import tracemalloc

import numpy as np
import pytest

from neurovision.erp import (
    Epochs,
    channel_list,
    check_same_times,
    check_subject,
    erp_features,
    load_epochs,
    time_mask,
)
from neurovision.errors import DataError
from neurovision.io import save_npy_dict
from neurovision.params import ErpParams
from neurovision.release import EEG_FILES, RELEASE_CHANNELS, RELEASE_SHAPES

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


class _RecordedReads:
    """An EEG array (like a memory-mapped file) that records which images are read."""

    def __init__(self, data: np.ndarray):
        self.array, self.shape, self.reads = data, data.shape, []

    def __getitem__(self, key: slice) -> np.ndarray:
        self.reads.append((key.start, key.stop))
        return self.array[key]


def test_each_image_is_read_once_a_block_at_a_time():
    ep = _epochs(11)
    data = _RecordedReads(ep.data)
    out = erp_features(Epochs(data=data, ch_names=ep.ch_names, times=ep.times), ErpParams(),
                       block=4)
    assert data.reads == [(0, 4), (4, 8), (8, 11)]
    assert np.array_equal(out, erp_features(ep, ErpParams()))


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


# --------------------------------------------------------------------------------------
# Loading and checking the release's files


def _save(path, data=None, ch_names=("O1", "Oz"), times=None, **extra):
    data = np.zeros((2, 3, len(ch_names), 4)) if data is None else data
    times = np.arange(data.shape[-1]) / 100 if times is None else times
    save_npy_dict(path, {"preprocessed_eeg_data": data, "ch_names": list(ch_names),
                         "times": times, **extra})
    return path


def test_load_epochs_returns_the_file_as_epochs(tmp_path):
    data = np.random.default_rng(0).normal(size=(1, 1, 2, 4)).astype(np.float32)
    path = _save(tmp_path / "eeg.npy", data=data, times=np.array([-20, -10, 0, 10]))
    ep = load_epochs(str(path))
    np.testing.assert_array_equal(ep.data, data)
    assert ep.data.dtype == np.float32
    assert ep.ch_names == ("O1", "Oz") and all(type(c) is str for c in ep.ch_names)
    np.testing.assert_array_equal(ep.times, [-20.0, -10.0, 0.0, 10.0])
    assert ep.times.dtype == np.float64  # integer times become float seconds
    assert ep.source == str(path)


@pytest.mark.parametrize("data, got", [
    (np.array([[[["a"]]]]), "ndarray <U1"),
    (np.zeros((1, 1, 1, 1), dtype=bool), "ndarray bool"),
    ([[[[1.0]]]], "list "),
], ids=["strings", "bool", "list"])
def test_load_epochs_refuses_non_numeric_data_naming_its_type(tmp_path, data, got):
    path = tmp_path / "eeg.npy"
    save_npy_dict(path, {"preprocessed_eeg_data": data, "ch_names": ["O1"], "times": [0.0]})
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: expected a numeric array in "
                                        rf"'preprocessed_eeg_data', got {re.escape(got)}$"):
        load_epochs(path)


@pytest.mark.parametrize("shape", [(0, 3, 2, 4), (2, 0, 2, 4), (0, 0, 2, 4)])
def test_load_epochs_needs_an_image_and_a_repetition(tmp_path, shape):
    path = _save(tmp_path / "eeg.npy", data=np.zeros(shape))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: expected at least one image "
                                        rf"and one repetition, got shape {re.escape(str(shape))} "
                                        r"\(image, repetition, channel, time\)$"):
        load_epochs(path)


def test_load_epochs_names_repeated_channels(tmp_path):
    path = _save(tmp_path / "eeg.npy", data=np.zeros((1, 1, 4, 2)),
                 ch_names=("Oz", "O1", "Oz", "O2"))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: expected unique 'ch_names', "
                                        r"got \['Oz'\] repeated$"):
        load_epochs(path)


@pytest.mark.parametrize("times, message", [
    (np.zeros((4, 1)), "'times' has 4 values, expected 4 (the samples on axis 3 of the data, "
                       "time)"),
    (np.array([0.0, 0.1, 0.1, 0.3]), "expected strictly increasing 'times', got a decrease or "
                                     "a repeat at index 2"),
    (np.array([0.0, 0.1, 0.2, 0.15]), "expected strictly increasing 'times', got a decrease or "
                                      "a repeat at index 3"),
], ids=["2-d", "repeat", "decrease"])
def test_load_epochs_checks_times(tmp_path, times, message):
    path = _save(tmp_path / "eeg.npy", times=times)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: {re.escape(message)}$"):
        load_epochs(path)


def test_check_same_times_accepts_the_reference_within_a_nanosecond():
    check_same_times(TIMES + 5e-10, TIMES, "test.npy", "train.npy")


@pytest.mark.parametrize("change, where", [
    (lambda t: t[:50], ""),  # got 50 samples, -0.200 .. 0.290 s
    (lambda t: np.concatenate([t[:7], t[7:8] + 0.001, t[8:]]),
     ", first differing at sample 7 (-0.129 vs -0.130 s)"),
    # a relative error of 1e-6 from sample 30 on (0.1 s and later), or 5 ns at sample 40
    (lambda t: np.concatenate([t[:30], t[30:] * (1 + 1e-6)]),
     ", first differing at sample 30 (0.100 vs 0.100 s)"),
    (lambda t: np.concatenate([t[:40], t[40:41] + 5e-9, t[41:]]),
     ", first differing at sample 40 (0.200 vs 0.200 s)"),
], ids=["shorter", "shifted sample", "relative", "5 ns"])
def test_check_same_times_names_both_files_and_the_first_difference(change, where):
    times = change(TIMES.copy())
    got = f"{len(times)} samples, {times[0]:.3f} .. {times[-1]:.3f} s"
    with pytest.raises(DataError, match=rf"^test\.npy: expected the same 'times' as train\.npy "
                                        rf"\(100 samples, -0\.200 \.\. 0\.790 s\), got "
                                        rf"{re.escape(got + where)}$"):
        check_same_times(times, TIMES, "test.npy", "train.npy")


# --------------------------------------------------------------------------------------
# Time windows and their errors


@pytest.mark.parametrize("times, tmin, tmax, expected", [
    # 1% of a sample period of tolerance on both sides: 0.1 + 5e-5 still keeps 0.1
    (TIMES, 0.1 + 5e-5, 0.2 - 5e-5, (TIMES >= 0.095) & (TIMES <= 0.205)),
    # the tolerance is inclusive (here 1.0 s exactly: samples every 100 s)
    (np.array([0.0, 100.0, 200.0, 300.0]), 1.0, 199.0, [True, True, True, False]),
    # the window may reach exactly tolerance beyond the epoch (0 .. 400 s)
    (np.array([0.0, 100.0, 200.0, 300.0]), -1.0, 401.0, [True, True, True, True]),
    # two samples: the epoch spans two periods, 0 .. 0.2 s, with 1e-3 s of tolerance
    (np.array([0.0, 0.1]), 0.0015, 0.2, [False, True]),
    (np.array([0.0, 0.1]), -5e-4, 0.2005, [True, True]),
    # one sample: the epoch is that instant, with 1e-6 s of tolerance
    (np.array([0.5]), 0.5 - 5e-7, 0.5 + 5e-7, [True]),
], ids=["tolerance", "inclusive", "edge of epoch", "two samples", "two samples, edges",
        "one sample"])
def test_time_mask_keeps_the_samples_of_the_window(times, tmin, tmax, expected):
    np.testing.assert_array_equal(time_mask(times, tmin, tmax, "erp.tmin..erp.tmax", "x.npy"),
                                  expected)


@pytest.mark.parametrize("times, tmin, tmax, epoch", [
    (TIMES, -0.3, 0.5, "-0.200 .. 0.800"),
    (TIMES, 0.0, 0.81, "-0.200 .. 0.800"),
    (np.array([0.0, 0.1]), 0.0, 0.21, "0.000 .. 0.200"),
    (np.array([0.5]), 0.5, 0.6, "0.500 .. 0.500"),
], ids=["starts before", "ends after", "two samples", "one sample"])
def test_time_mask_refuses_a_window_reaching_outside_the_epoch(times, tmin, tmax, epoch):
    with pytest.raises(DataError, match=rf"^x\.npy: erp\.baseline \[{tmin}, {tmax}\] s reaches "
                                        r"outside the epoch: expected a window inside the epoch "
                                        rf"\({epoch} s\), got \[{tmin}, {tmax}\] s$"):
        time_mask(times, tmin, tmax, "erp.baseline", "x.npy")


def test_time_mask_refuses_a_window_without_samples():
    with pytest.raises(DataError, match=r"^x\.npy: erp\.baseline \[1\.5, 1\.6\] s holds no "
                                        r"sample: expected a window inside the epoch \(0\.500 "
                                        r"\.\. 0\.500 s\), got \[1\.5, 1\.6\] s$"):
        time_mask(np.array([0.5]), 1.5, 1.6, "erp.baseline", "x.npy")


@pytest.mark.parametrize("p, message", [
    (ErpParams(channels=("O1", "PO8")), "erp.channels asks for ['PO8'], which the file lacks: "
                                        "expected ['PO8'] among its channels, got ch_names "
                                        "['O1', 'Oz', 'O2']"),
    (ErpParams(channels=("O1",), baseline=(-0.5, 0.0)), "erp.baseline [-0.5, 0.0] s reaches "
                                                        "outside the epoch"),
    (ErpParams(channels=("O1",), tmin=1.0, tmax=2.0), "erp.tmin..erp.tmax [1.0, 2.0] s holds "
                                                      "no sample"),
    (ErpParams(channels=("O1",), tmin=0.0, tmax=0.09, bin_size=11),
     "erp.bin_size: expected at most 10 (the samples in erp.tmin..erp.tmax), got 11"),
], ids=["channel", "baseline", "window", "bin size"])
def test_erp_feature_errors_name_the_file_and_the_parameter(p, message):
    ep = make_epochs()
    ep = Epochs(data=ep.data, ch_names=ep.ch_names, times=ep.times, source="sub-01/x.npy")
    with pytest.raises(DataError, match=rf"^sub-01/x\.npy: {re.escape(message)}"):
        erp_features(ep, p)


def test_one_bin_may_take_the_whole_window():
    ep = make_epochs(n_img=2)
    feats = erp_features(ep, ErpParams(channels=("Oz", "O1"), tmin=0.0, tmax=0.09, bin_size=10))
    np.testing.assert_allclose(feats, ep.data.mean(axis=1)[:, [1, 0], 20:30].mean(axis=2))


# --------------------------------------------------------------------------------------
# A subject's two files


def _subject(folder, train=(2, 1, 3, 4), test=(2, 1, 3, 4), train_ch=("O1", "Oz", "O2"),
             test_ch=("O1", "Oz", "O2"), test_times=None):
    folder.mkdir(exist_ok=True)
    _save(folder / EEG_FILES[0], data=np.zeros(train), ch_names=train_ch)
    _save(folder / EEG_FILES[1], data=np.zeros(test), ch_names=test_ch, times=test_times)
    return folder


def test_check_subject_returns_both_shapes_and_logs_unofficial_ones(tmp_path, caplog):
    folder = _subject(tmp_path / "sub-01", train=(3, 1, 3, 4), test=(2, 5, 3, 4),
                      test_ch=("O2", "O1", "Oz"))  # the same channels in another order
    with caplog.at_level(logging.INFO, logger="neurovision.erp"):
        shapes = check_subject(str(folder))
    assert shapes == {EEG_FILES[0]: (3, 1, 3, 4), EEG_FILES[1]: (2, 5, 3, 4)}
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder / EEG_FILES[0]}: shape (3, 1, 3, 4) (the official release has "
        f"{RELEASE_SHAPES[EEG_FILES[0]]})",
        f"{folder / EEG_FILES[1]}: shape (2, 5, 3, 4) (the official release has "
        f"{RELEASE_SHAPES[EEG_FILES[1]]})"]


@pytest.mark.parametrize("which", [0, 1])
def test_check_subject_needs_two_images_per_file(tmp_path, which):
    shapes = [(2, 1, 3, 4), (2, 1, 3, 4)]
    shapes[which] = (1, 1, 3, 4)
    folder = _subject(tmp_path / "sub-01", *shapes)
    path = folder / EEG_FILES[which]
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: expected at least 2 images "
                                        r"on axis 0, got shape \(1, 1, 3, 4\) \(image, "
                                        r"repetition, channel, time\)$"):
        check_subject(folder)


def test_check_subject_refuses_different_channels(tmp_path):
    folder = _subject(tmp_path / "sub-01", test_ch=("O1", "Oz", "PO8"))
    with pytest.raises(DataError, match=rf"^{re.escape(str(folder))}: training and test files "
                                        r"have different channels: \['O1', 'Oz', 'O2'\] vs "
                                        r"\['O1', 'Oz', 'PO8'\]$"):
        check_subject(folder)


@pytest.mark.parametrize("test, test_times", [
    ((2, 1, 3, 5), None),  # one more sample
    ((2, 1, 3, 4), np.array([0.0, 0.01, 0.02, 0.04])),  # as many, one moved
], ids=["length", "values"])
def test_check_subject_refuses_different_times(tmp_path, test, test_times):
    folder = _subject(tmp_path / "sub-01", test=test, test_times=test_times)
    with pytest.raises(DataError, match=rf"^{re.escape(str(folder))}: training and test files "
                                        r"have different 'times'$"):
        check_subject(folder)


def test_all_channels_follow_the_release_then_the_montage_whatever_the_file_order():
    from neurovision.channels import RAW_CHANNELS

    p = ErpParams(channels="all")
    extra = [c for c in RAW_CHANNELS if c not in RELEASE_CHANNELS][:3]
    stored = (extra[2], *reversed(RELEASE_CHANNELS), extra[0], extra[1])
    assert channel_list(p, stored) == (*RELEASE_CHANNELS, *extra)
    assert channel_list(p, RELEASE_CHANNELS) == channel_list(p) == tuple(RELEASE_CHANNELS)



def test_all_channels_of_a_file_with_more_than_the_release_reach_the_features():
    from neurovision.channels import RAW_CHANNELS

    extra = [c for c in RAW_CHANNELS if c not in RELEASE_CHANNELS][:2]
    chans = (*reversed(RELEASE_CHANNELS), *reversed(extra))
    ep = make_epochs(n_img=2, n_rep=2, chans=chans, n_t=100)
    feats = erp_features(ep, ErpParams(channels="all", tmin=0.0, tmax=0.79)).reshape(2, 19, -1)
    avg = ep.data.mean(axis=1)
    for i, name in enumerate((*RELEASE_CHANNELS, *extra)):
        np.testing.assert_allclose(feats[:, i], avg[:, chans.index(name), 20:])
