import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from neurovision.errors import DataError
from neurovision.io import atomic_dir, atomic_path, load_npy_dict, save_npy_dict


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_release_dict(tmp_path):
    d = {"preprocessed_eeg_data": np.arange(24, dtype=np.float64).reshape(1, 2, 3, 4),
         "ch_names": ["O1", "Oz", "O2"], "times": np.array([0.0, 0.01, 0.02, 0.03]),
         "labels": np.array(["a", "bb"]), "n": 3, "scalar": np.float32(2.5)}
    save_npy_dict(tmp_path / "x.npy", d)
    out = load_npy_dict(tmp_path / "x.npy", ("preprocessed_eeg_data", "ch_names"))
    np.testing.assert_array_equal(out["preprocessed_eeg_data"], d["preprocessed_eeg_data"])
    assert out["preprocessed_eeg_data"].dtype == np.float64
    assert out["ch_names"] == d["ch_names"] and out["n"] == 3
    assert list(out["labels"]) == ["a", "bb"] and out["scalar"] == np.float32(2.5)
    # the same file loads with numpy's own (unsafe) loader to the same content
    ref = np.load(tmp_path / "x.npy", allow_pickle=True).item()
    np.testing.assert_array_equal(ref["times"], out["times"])


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array({"preprocessed_eeg_data": _Evil(marker)}, dtype=object),
            allow_pickle=True)
    with pytest.raises(DataError, match=r"refused to load global '(posix|os|nt)\.system'"):
        load_npy_dict(path)
    assert not marker.exists()
    # plain pickle (not .npy) of the same payload is refused as not-a-npy file
    path.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(DataError):
        load_npy_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("cut", [0, 10, 200, -5])
def test_truncated_file_is_a_clear_error(tmp_path, cut):
    path = tmp_path / "x.npy"
    save_npy_dict(path, {"a": np.zeros((10, 10))})
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(DataError, match=str(path)):
        load_npy_dict(path)


def test_plain_array_is_not_a_dict(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(DataError, match="expected a saved dict"):
        load_npy_dict(tmp_path / "a.npy")


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_replaces_whole_directory(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "old").write_text("x")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new").write_text("y")
        raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["old"]
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
