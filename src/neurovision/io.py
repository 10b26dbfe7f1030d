"""File I/O: atomic writes, plain ``.npy`` arrays, JSON, and safe loading of pickled dicts.

Every output is written to a temporary name in the destination directory and renamed into
place only when complete, so a killed stage never leaves a partial file, and an earlier good
output stays intact until the new one is ready.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurovision.errors import DataError

# --------------------------------------------------------------------------------------
# Atomic writes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _clear_stale(final: Path) -> None:
    """Remove temporaries that a killed writer of ``final`` left next to it.

    Temporary names are ``.<name>.<pid>.<random>.tmp`` (or ``.old``); one whose process no
    longer exists can never be completed, so the next writer deletes it.  Temporaries of a
    live process (a concurrent writer) are left alone.
    """
    prefix = f".{final.name}."
    try:
        siblings = list(final.parent.iterdir())
    except OSError:
        return
    for p in siblings:
        name = p.name
        if not (name.startswith(prefix) and name.endswith((".tmp", ".old"))):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp",
                               dir=final.parent)
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
    _clear_stale(final)
    prefix = f".{final.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=final.parent))
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
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def load_npy(path: str | Path) -> np.ndarray:
    """Load a plain ``.npy`` array written by this pipeline (never unpickles)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the output of an earlier stage: "
                        f"run dvc repro)")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: expected a plain .npy array, got {path.stat().st_size} bytes "
                        f"numpy cannot read ({exc})") from exc


def save_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the output of an earlier stage: "
                        f"run dvc repro)")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: expected JSON, got text that does not parse ({exc})") from exc


def save_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Write a CSV file (a header line, then ``rows``) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def save_npy_dict(path: str | Path, obj: dict) -> None:
    """Write a dict the way the THINGS-EEG2 release does (``np.save`` of a dict)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, obj, allow_pickle=True)


def file_hashes(path: str | Path, algorithms: Sequence[str] = ("sha256",), progress: bool = False,
                label: str | None = None) -> dict[str, str]:
    """Hex digests of the file at ``path`` under each of ``algorithms``, in one pass."""
    from tqdm.auto import tqdm

    path = Path(path)
    digests = {a: hashlib.new(a) for a in algorithms}
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=f"verify {label or path.name}", disable=not progress,
                                      leave=False) as bar:
        while block := f.read(1 << 22):
            for d in digests.values():
                d.update(block)
            bar.update(len(block))
    return {a: d.hexdigest() for a, d in digests.items()}


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
            # numpy lists an object array's elements in C order, whatever its memory layout
            self.array = arr.reshape(shape)
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
                f"refused to load global '{module}.{name}': expected only numpy arrays, "
                f"dicts, lists, strings and numbers") from None

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
        raise DataError(f"{path}: file not found (expected a file here)")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            except (ValueError, OSError, EOFError) as exc:
                raise DataError(f"{path}: expected a .npy file (a saved dict), got {size} bytes "
                                f"without a readable .npy header ({exc})") from exc
            if not dtype.hasobject or shape != ():
                raise DataError(f"{path}: expected a saved dict (0-d object array), got an "
                                f"array of shape {shape} and dtype {dtype}")
            # Unpickle straight from the file: each array's bytes are read once, not copied.
            top = _RestrictedUnpickler(f).load()
    except DataError:
        raise
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refused"):
            raise DataError(f"{path}: {exc}") from exc
        raise DataError(f"{path}: expected a complete saved dict, got a truncated or corrupt "
                        f"pickle payload in {size} bytes ({exc})") from exc
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, OSError) as exc:
        raise DataError(f"{path}: expected a complete saved dict, got a truncated or corrupt "
                        f"pickle payload in {size} bytes ({type(exc).__name__}: {exc})") from exc
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
