"""File I/O: atomic writes, plain ``.npy`` arrays, JSON, and safe loading of pickled dicts.

Every output is written to a temporary name in the destination directory and renamed into
place only when complete, so a killed stage never leaves a partial file, and an earlier good
output stays intact until the new one is ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from neurovision.errors import DataError


# --------------------------------------------------------------------------------------
# Atomic writes


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory; it replaces ``final`` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / "x")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save a plain (non-object) array atomically, without pickle."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)


def load_npy(path: str | Path) -> np.ndarray:
    """Load a plain ``.npy`` array written by this pipeline (never unpickles)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the stage that writes it: dvc repro)")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: expected a plain .npy array, could not read it: {exc}") from exc


def save_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (run the stage that writes it: dvc repro)")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: expected JSON, could not read it: {exc}") from exc


def save_npy_dict(path: str | Path, obj: dict) -> None:
    """Write a dict the way the THINGS-EEG2 release does (``np.save`` of a dict)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, obj, allow_pickle=True)


# --------------------------------------------------------------------------------------
# Safe loading of the release's pickled dicts


class _ArrayStub:
    """Stands in for an ndarray during restricted unpickling.

    ``numpy`` pickles an array as ``_reconstruct(ndarray, (0,), b'b')`` followed by
    ``__setstate__((version, shape, dtype, fortran, data))``.  The stub receives that state
    and builds the array with ``np.frombuffer`` over the pickled bytes: no code runs, and the
    data is not copied (the array is read-only).
    """

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: tuple) -> None:
        if len(state) == 5:
            state = state[1:]
        shape, dtype, fortran, data = state
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("array state without a numpy dtype")
        order = "F" if fortran else "C"
        if dtype.hasobject:
            if not isinstance(data, list):
                raise pickle.UnpicklingError("object array state is not a list")
            arr = np.empty(len(data), dtype=object)
            arr[:] = [_materialize(x) for x in data]
            self.array = arr.reshape(shape, order=order)
        else:
            if dtype.kind not in "biufcSU":
                raise pickle.UnpicklingError(f"refused array dtype {dtype}")
            if not isinstance(data, (bytes, bytearray)):
                raise pickle.UnpicklingError("array state without raw bytes")
            count = int(np.prod(shape, dtype=np.int64))
            if count * dtype.itemsize != len(data):
                raise pickle.UnpicklingError(
                    f"array of shape {tuple(shape)} and dtype {dtype} needs "
                    f"{count * dtype.itemsize} bytes, the file holds {len(data)}")
            self.array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order=order)


def _reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> _ArrayStub:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refused array subtype {subtype!r}")
    return _ArrayStub()


def _scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufcSU":
        raise pickle.UnpicklingError(f"refused numpy scalar of dtype {dtype!r}")
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError("numpy scalar without raw bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _dtype(code: Any, align: Any = False, copy: Any = True) -> np.dtype:
    if not isinstance(code, str):
        raise pickle.UnpicklingError(f"refused dtype spec {code!r}")
    return np.dtype(code)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global '{module}.{name}': only numpy arrays, dicts, lists, "
                f"strings and numbers are allowed") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused persistent id")


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _ArrayStub):
        return obj.array
    if isinstance(obj, dict):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    return obj


def load_npy_dict(path: str | Path, required_keys: tuple[str, ...] = ()) -> dict:
    """Load a ``np.save``-d dict (the release's format) without running any pickled code.

    Only numpy arrays, numpy scalars, dicts, lists, tuples, strings and numbers are accepted;
    anything else is refused with :class:`DataError`.  Numeric arrays come back read-only and
    are not copied, so peak memory stays close to the file size.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            except (ValueError, OSError, EOFError) as exc:
                raise DataError(f"{path}: not a readable .npy file ({exc})") from exc
            if not dtype.hasobject or shape != ():
                raise DataError(f"{path}: expected a saved dict (0-d object array), got an "
                                f"array of shape {shape} and dtype {dtype}")
            # Unpickle straight from the file: each array's bytes are read once, not copied.
            top = _RestrictedUnpickler(f).load()
    except DataError:
        raise
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: {exc}") from exc
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, OSError) as exc:
        raise DataError(f"{path}: truncated or corrupt pickle payload ({type(exc).__name__}: "
                        f"{exc})") from exc
    obj = _materialize(top)
    if isinstance(obj, np.ndarray) and obj.shape == () and obj.dtype == object:
        obj = obj.item()
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, got {type(obj).__name__}")
    missing = [k for k in required_keys if k not in obj]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; expected keys {list(required_keys)}, "
                        f"found {sorted(map(str, obj))}")
    return obj
