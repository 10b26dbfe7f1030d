import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from neurovision.errors import DataError
from neurovision.io import (
    atomic_dir,
    atomic_path,
    file_hashes,
    load_json,
    load_npy,
    load_npy_dict,
    save_csv,
    save_json,
    save_npy,
    save_npy_dict,
)


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
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: refused "):
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
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: refused array dtype "):
        load_npy_dict(path)


# --------------------------------------------------------------------------------------
# Plain arrays, JSON, CSV


@pytest.mark.parametrize("array", [np.arange(12, dtype=np.float32).reshape(3, 4),
                                   np.array([3, -1, 7]), np.array(2.5), [[1, 2], [3, 4]]],
                         ids=["float32", "int", "0-d", "list"])
def test_save_npy_round_trips_plain_arrays(tmp_path, array):
    save_npy(tmp_path / "a.npy", array)
    out = load_npy(str(tmp_path / "a.npy"))
    np.testing.assert_array_equal(out, np.asarray(array))
    assert out.dtype == np.asarray(array).dtype
    assert np.load(tmp_path / "a.npy", allow_pickle=False).shape == np.shape(array)


def test_save_npy_refuses_object_arrays_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="allow_pickle"):
        save_npy(tmp_path / "a.npy", np.array([{"a": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_load_npy_names_the_file_and_what_it_expected(tmp_path):
    path = tmp_path / "a.npy"
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: file not found \(expected "
                                        r"the output of an earlier stage: run dvc repro\)$"):
        load_npy(path)
    path.write_bytes(b"hello")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: expected a plain \.npy "
                                        r"array, got 5 bytes numpy cannot read \("):
        load_npy(path)


def test_load_npy_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    size = path.stat().st_size
    with pytest.raises(DataError, match=rf"expected a plain \.npy array, got {size} bytes"):
        load_npy(path)
    assert not marker.exists()


def test_save_json_writes_indented_json_in_key_order(tmp_path):
    path = tmp_path / "m.json"
    obj = {"b": 1, "a": [1.5, None], "c": {"z": "x", "y": True}}
    save_json(path, obj)
    assert path.read_text() == ('{\n  "b": 1,\n  "a": [\n    1.5,\n    null\n  ],\n'
                                '  "c": {\n    "z": "x",\n    "y": true\n  }\n}\n')
    assert load_json(str(path)) == obj


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_save_json_refuses_nan_and_keeps_the_old_file(tmp_path, bad):
    path = tmp_path / "m.json"
    save_json(path, {"top1": 0.5})
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        save_json(path, {"top1": bad})
    assert load_json(path) == {"top1": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_load_json_names_the_file_and_what_it_expected(tmp_path):
    path = tmp_path / "m.json"
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: file not found \(expected "
                                        r"the output of an earlier stage: run dvc repro\)$"):
        load_json(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: expected JSON, got text "
                                        r"that does not parse \(Expecting property name"):
        load_json(path)


def test_save_csv_writes_a_header_and_rows(tmp_path):
    path = tmp_path / "t.csv"
    save_csv(path, ["k", "accuracy"], [[1, 0.5], [2, "a,b"]])
    assert path.read_bytes() == b'k,accuracy\r\n1,0.5\r\n2,"a,b"\r\n'


# --------------------------------------------------------------------------------------
# File hashes


@pytest.fixture(autouse=True)
def _private_tqdm_lock(monkeypatch):
    """tqdm's default lock is shared with forked processes, and a bar that fails while
    holding it blocks every later bar in all of them: give each test its own lock."""
    from tqdm.auto import tqdm

    monkeypatch.setattr(tqdm, "_lock", threading.RLock(), raising=False)


def test_file_hashes_match_hashlib_across_blocks(tmp_path):
    data = np.random.default_rng(0).bytes((4 << 20) + 3)  # one full 4 MiB block and a tail
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    assert file_hashes(str(path), ("md5", "sha256")) == {
        "md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
    assert file_hashes(path) == {"sha256": hashlib.sha256(data).hexdigest()}
    (tmp_path / "empty").write_bytes(b"")
    assert file_hashes(tmp_path / "empty", ("md5",)) == {"md5": hashlib.md5(b"").hexdigest()}


def test_file_hashes_stream_the_file(tmp_path):
    size = 40 << 20
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(size)  # sparse zeros: quick to write and to read
    tracemalloc.start()
    try:
        digest = file_hashes(path, ("sha256",))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest["sha256"] == hashlib.sha256(bytes(size)).hexdigest()
    assert peak < size // 2, peak  # blocks, not the whole file at once


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("label, shown", [("release.zip", "release.zip"), (None, "x.bin")])
def test_file_hashes_progress_bar(tmp_path, monkeypatch, label, shown):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\1" * 10229)  # 9.99 KiB (9.98 with a divisor of 1025, 10.2 with 1000)
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    file_hashes(path, progress=True, label=label)
    # labelled, sized in binary units of bytes, and cleared when done (leave=False)
    assert term.getvalue().startswith(f"\rverify {shown}:   0%|          | 0.00/9.99k [00:00<?, "
                                      f"?B/s]\r")
    assert term.getvalue().endswith(" \r")
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    file_hashes(path, label=label)  # no bar unless asked for, even on a terminal
    file_hashes(path, progress=False)
    assert quiet.getvalue() == ""


# --------------------------------------------------------------------------------------
# Stale temporaries of killed writers


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # exited and reaped: no process has this id now
    return proc.pid


#: A live process that records every signal it receives until its stdin closes.
_RECORD_SIGNALS = """
import signal, sys
got = []
for s in signal.valid_signals():
    if s not in (signal.SIGKILL, signal.SIGSTOP):
        try:
            signal.signal(s, lambda n, f: got.append(n))
        except (OSError, ValueError):
            pass
print("ready", flush=True)
sys.stdin.read()
print(got)
"""


@pytest.fixture
def live_writer():
    proc = subprocess.Popen([sys.executable, "-c", _RECORD_SIGNALS], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    yield proc
    proc.kill()
    proc.wait()


def _stale_layout(folder: Path, dead: int, live: int) -> tuple[list[str], list[str]]:
    """Temporaries of ``out`` left by a dead writer (to go) and other files (to stay)."""
    stale = [f".out.{dead}.a1.tmp", f".out.{dead}.tmp", f".out.{dead}.b2.old",
             f".out.{dead}.c3.tmp", f".out.{dead}.d4.old"]
    (folder / stale[0]).write_text("half")
    (folder / stale[1]).write_text("half")
    (folder / stale[2]).mkdir()
    (folder / stale[2] / "x").write_text("old")
    (folder / stale[3]).mkdir()
    target = folder / "linked"  # a stale symlink to a directory: the link goes, not its files
    target.mkdir()
    (target / "keep").write_text("k")
    (folder / stale[4]).symlink_to(target, target_is_directory=True)
    keep = [f".out.{live}.e5.tmp",  # a live writer's
            f".out.{os.getpid()}.f6.tmp",  # this process's own
            ".out.abc.g7.tmp",  # no process id
            f".out.{dead}.h8.bak",  # not a temporary
            f".other.{dead}.i9.tmp",  # another output's
            f"keep.{dead}.j0.tmp",  # not hidden
            *(f"z{i}.txt" for i in range(10)), "linked"]
    for name in keep[:-1]:
        (folder / name).write_text("k")
    return stale, keep


@pytest.mark.parametrize("writer", [atomic_path, atomic_dir])
def test_the_next_writer_removes_only_dead_writers_temporaries(tmp_path, writer, live_writer):
    stale, keep = _stale_layout(tmp_path, _dead_pid(), live_writer.pid)
    with writer(tmp_path / "out"):
        pass
    assert not [name for name in stale if os.path.lexists(tmp_path / name)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "out"])
    assert (tmp_path / "linked" / "keep").read_text() == "k"
    # the live writer was checked, not signalled
    assert live_writer.communicate("", timeout=30) == ("[]\n", None)


def test_a_writer_that_may_not_be_signalled_counts_as_alive(tmp_path, monkeypatch):
    dead = _dead_pid()
    (tmp_path / f".out.{dead}.a1.tmp").write_text("half")

    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")  # another user's process

    monkeypatch.setattr(os, "kill", kill)
    save_json(tmp_path / "out", [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".out.{dead}.a1.tmp", "out"]


def test_a_stale_temporary_that_cannot_be_removed_does_not_stop_the_write(tmp_path, monkeypatch):
    dead = _dead_pid()
    stuck = {f".out.{dead}.a1.tmp", f".out.{dead}.b2.old"}
    (tmp_path / f".out.{dead}.a1.tmp").write_text("half")
    (tmp_path / f".out.{dead}.b2.old").mkdir()
    real_unlink, real_rmdir = os.unlink, os.rmdir

    def refuse(real):
        def call(path, *args, **kwargs):
            if Path(path).name in stuck:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "unlink", refuse(real_unlink))
    monkeypatch.setattr(os, "rmdir", refuse(real_rmdir))
    save_json(tmp_path / "out", {"ok": True})
    assert load_json(tmp_path / "out") == {"ok": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*stuck, "out"])


# --------------------------------------------------------------------------------------
# Restricted unpickling: what loads, and what each refusal says


class _ReduceState:
    """Pickles as ``func(*args)`` followed by ``__setstate__(state)``."""

    def __init__(self, func, args, state):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args, self.state)


def _in_npy(tmp_path: Path, obj, version=(1, 0)) -> Path:
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        header = {"descr": "|O", "fortran_order": False, "shape": ()}
        if version == (1, 0):
            np.lib.format.write_array_header_1_0(f, header)
        else:
            np.lib.format.write_array_header_2_0(f, header)
        pickle.dump(obj, f, protocol=3)  # as np.save writes it
    return path


def test_layouts_scalars_and_tuples_load_as_numpy_loads_them(tmp_path):
    from numpy._core.multiarray import scalar

    d = {"fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
         "fortran_objects": np.array([[1, "a"], [2, "b"], [3, "c"]], dtype=object, order="F"),
         "objects": np.array([[1, "a"], [2, "b"]], dtype=object),
         "str": np.str_("ab"), "bytes": np.bytes_(b"cd"), "int": np.int16(-3),
         "pair": (np.arange(2), "x")}
    save_npy_dict(tmp_path / "x.npy", d)
    out = load_npy_dict(tmp_path / "x.npy")
    ref = np.load(tmp_path / "x.npy", allow_pickle=True).item()
    for key in ("fortran", "fortran_objects", "objects"):
        np.testing.assert_array_equal(out[key], d[key])
        np.testing.assert_array_equal(out[key], ref[key])
    for key in ("str", "bytes", "int"):
        assert out[key] == d[key] and type(out[key]) is type(d[key]), key
    assert isinstance(out["pair"], tuple) and out["pair"][1] == "x"
    np.testing.assert_array_equal(out["pair"][0], np.arange(2))
    # a scalar with trailing bytes: numpy reads the first itemsize bytes, and so do we
    raw = np.float64(1.5).tobytes() + b"\x01"
    path = _in_npy(tmp_path, {"s": _Reduce(scalar, np.dtype("f8"), raw)})
    assert load_npy_dict(path)["s"] == scalar(np.dtype("f8"), raw) == 1.5


def test_a_plain_dict_payload_and_a_version_2_header_load(tmp_path):
    assert load_npy_dict(_in_npy(tmp_path, {"a": 1, "b": [2.0]})) == {"a": 1, "b": [2.0]}
    out = load_npy_dict(_in_npy(tmp_path, {"a": np.arange(3)}, version=(2, 0)), ("a",))
    np.testing.assert_array_equal(out["a"], np.arange(3))


def test_an_array_record_without_its_data_loads_as_none(tmp_path):
    from numpy._core.multiarray import _reconstruct

    path = _in_npy(tmp_path, {"a": _Reduce(_reconstruct, np.ndarray, (0,), b"b")})
    assert load_npy_dict(path) == {"a": None}


def _corrupt(path: Path, why: str) -> str:
    return (rf"^{re.escape(str(path))}: expected a complete saved dict, got a truncated or "
            rf"corrupt pickle payload in {path.stat().st_size} bytes \({why}\)$")


def _refused(path: Path, what: str) -> str:
    return rf"^{re.escape(str(path))}: refused {what}$"


def _state(shape, dtype, data):
    from numpy._core.multiarray import _reconstruct

    return {"a": _ReduceState(_reconstruct, (np.ndarray, (0,), b"b"),
                              (1, shape, dtype, False, data))}


@pytest.mark.parametrize("payload, message", [
    (lambda: _state((2,), "f8", b"\0" * 16), "array state without a numpy dtype"),
    (lambda: _state((2,), np.dtype(object), b"xx"), "object array state is not a list"),
    (lambda: _state((2,), np.dtype("f8"), [1.0, 2.0]), "array state without raw bytes"),
    (lambda: _state((2,), np.dtype("f8"), b"\0" * 8),
     "array of shape (2,) and dtype float64 needs 16 bytes, the file holds 8"),
    (lambda: {"s": _Reduce(np.dtype, "f8")}, None),  # a dtype alone is fine
], ids=["no dtype", "object not list", "no bytes", "short", "dtype"])
def test_malformed_array_records_are_corrupt_payloads(tmp_path, payload, message):
    path = _in_npy(tmp_path, payload())
    if message is None:
        assert load_npy_dict(path) == {"s": np.dtype("f8")}
        return
    with pytest.raises(DataError, match=_corrupt(path, re.escape(message))):
        load_npy_dict(path)


def test_malformed_scalars_are_corrupt_payloads(tmp_path):
    from numpy._core.multiarray import scalar

    path = _in_npy(tmp_path, {"s": _Reduce(scalar, np.dtype("f8"), "abc")})
    with pytest.raises(DataError, match=_corrupt(path, "numpy scalar without raw bytes")):
        load_npy_dict(path)


def _refusals():
    from numpy._core.multiarray import _reconstruct, scalar

    return {
        "subtype": ({"a": _Reduce(_reconstruct, "notatype", (0,), b"b")},
                    "array subtype 'notatype'"),
        "datetime scalar": ({"s": _Reduce(scalar, np.dtype("M8[D]"), b"\0" * 8)},
                            "numpy scalar of dtype dtype('<M8[D]')"),
        "void scalar": ({"s": _Reduce(scalar, np.dtype("V4"), b"\0" * 4)},
                        "numpy scalar of dtype dtype('V4')"),
        "scalar without dtype": ({"s": _Reduce(scalar, "f8", b"\0" * 8)},
                                 "numpy scalar of dtype 'f8'"),
        "dtype spec": ({"s": _Reduce(np.dtype, 5)}, "dtype spec 5"),
        "datetime array": ({"a": np.zeros(2, dtype="M8[s]")}, "array dtype datetime64[s]"),
    }


@pytest.mark.parametrize("kind", list(_refusals()))
def test_refused_numpy_records_name_what_was_refused(tmp_path, kind):
    obj, what = _refusals()[kind]
    path = _in_npy(tmp_path, obj)
    with pytest.raises(DataError, match=_refused(path, re.escape(what))):
        load_npy_dict(path)


def test_not_a_dict_or_missing_keys_is_named(tmp_path):
    path = _in_npy(tmp_path, [1, 2])
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: expected a dict, got list$"):
        load_npy_dict(path)
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{}, {}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"expected a saved dict \(0-d object array\), got an "
                                        r"array of shape \(2,\) and dtype object$"):
        load_npy_dict(path)
    save_npy_dict(path, {"a": 1, 2: "c"})
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: missing key\(s\) \['b'\]; "
                                        r"expected keys \['a', 'b'\], found \['2', 'a'\]$"):
        load_npy_dict(path, ("a", "b"))


def test_a_missing_or_empty_payload_is_named_with_its_size(tmp_path):
    path = tmp_path / "x.npy"
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: file not found \(expected "
                                        r"a file here\)$"):
        load_npy_dict(path)
    with open(path, "wb") as f:  # a dict's header, then nothing
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False,
                                                 "shape": ()})
    with pytest.raises(DataError, match=_corrupt(path, "EOFError: Ran out of input")):
        load_npy_dict(path)
