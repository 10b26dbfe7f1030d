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
    path.write_bytes(data[:cut])
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


def _npy_with_payload(path: Path, payload: bytes) -> Path:
    """A .npy file whose header says 'a saved dict' and whose body is ``payload``."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(payload)
    return path


class _Reduce:
    """Pickles as ``func(*args)``: how a payload smuggles in a call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _payloads(marker: Path) -> dict[str, bytes]:
    import builtins
    import subprocess

    code = f"open({str(marker)!r}, 'w').write('ran')"
    touch = f"touch {marker}"
    dump = lambda obj: pickle.dumps({"preprocessed_eeg_data": obj}, protocol=2)  # noqa: E731
    return {
        "os.system": dump(_Reduce(os.system, touch)),
        "builtins.exec": dump(_Reduce(builtins.exec, code)),
        "builtins.eval": dump(_Reduce(builtins.eval, code)),
        "subprocess.Popen": dump(_Reduce(subprocess.Popen, ["touch", str(marker)])),
        # getattr(__import__('os'), 'system')('touch marker'), written opcode by opcode
        "getattr chain": (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V"
                          + touch.encode() + b"\ntR."),
        # a global numpy name that is not on the allow-list
        "numpy.load": dump(_Reduce(np.load, str(marker))),
        # the payload hidden inside an object array's elements
        "object array": dump(np.array([1, _Reduce(builtins.exec, code)], dtype=object)),
        # an ndarray subclass through numpy's own _reconstruct
        "ndarray subclass": dump(np.arange(3).view(np.recarray)),
        "recarray of records": dump(np.rec.fromarrays([np.arange(2)])),
        # a persistent id (pickle's hook for external objects)
        "persistent id": b"(I1\nP1\n.",
    }


PAYLOADS = ("os.system", "builtins.exec", "builtins.eval", "subprocess.Popen", "getattr chain",
            "numpy.load", "object array", "ndarray subclass", "recarray of records",
            "persistent id")


def test_the_payload_list_is_complete():
    assert tuple(_payloads(Path("x"))) == PAYLOADS


@pytest.mark.parametrize("kind", PAYLOADS)
def test_every_kind_of_code_payload_is_refused_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = _npy_with_payload(tmp_path / "evil.npy", _payloads(marker)[kind])
    with pytest.raises(DataError, match=r"refused"):
        load_npy_dict(path)
    assert not marker.exists()


def test_only_arrays_and_plain_values_are_allowed():
    from neurovision.io import _ALLOWED

    # the allow-list: numpy's array and scalar reconstruction, nothing else
    assert {name for _, name in _ALLOWED} == {"_reconstruct", "scalar", "ndarray", "dtype"}
    assert {module for module, _ in _ALLOWED} <= {"numpy", "numpy.core.multiarray",
                                                   "numpy._core.multiarray"}


@pytest.mark.parametrize("dtype", ["V8", "O", "M8[s]", "m8[s]"])
def test_arrays_of_refused_dtypes_are_refused(tmp_path, dtype):
    arr = np.zeros(2, dtype=dtype) if dtype != "O" else np.array([1, "a"], dtype=object)
    path = tmp_path / "x.npy"
    np.save(path, np.array({"a": arr}, dtype=object), allow_pickle=True)
    if dtype == "O":  # plain values inside an object array are fine
        assert list(load_npy_dict(path)["a"]) == [1, "a"]
        return
    with pytest.raises(DataError, match="refused"):
        load_npy_dict(path)
