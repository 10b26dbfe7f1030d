"""Fitted models on disk in a form that cannot run code when loaded: skops, byte-reproducible.

Models travel (a DVC remote, the explorer's bundle), so a model file is a file from someone
else: it is written with ``skops.io`` and loaded with an explicit list of trusted types, so
a file naming any other type (``os.system``, ``builtins.eval``, a class of its own ...) is
refused before anything is built, and a pickle is not read at all.

skops names the arrays inside its zip after object ids and stamps the zip with the time, so
the same model would give different bytes in every process; the pipeline promises
byte-identical outputs for identical inputs, so :func:`dump_model` rewrites the archive in a
canonical form (ids and member names numbered in the schema's order, a fixed timestamp).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from neurovision.errors import DataError
from neurovision.io import atomic_path

#: Types of the pipeline's models that skops does not trust by itself; with skops's own
#: list (numpy arrays, scikit-learn estimators, builtins) they are all a model file may
#: name.
TRUSTED = (
    "neurovision.contrastive.ContrastiveMapper",
    "neurovision.align.AlignMapper",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
)
_STAMP = (1980, 1, 1, 0, 0, 0)


def _canonical(raw: bytes) -> bytes:
    """The skops archive ``raw`` with object ids and member names numbered in order."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    members = set(src.namelist()) - {"schema.json"}
    schema = json.loads(src.read("schema.json"))
    ids: dict[int, int] = {}
    names: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = ids.setdefault(value, len(ids))
                elif isinstance(value, str) and value in members:
                    out[key] = names.setdefault(value, f"{len(names)}{Path(value).suffix}")
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    if set(names) != members:
        raise ValueError(f"skops archive members not named in its schema: "
                         f"{sorted(members - set(names))}")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("schema.json", _STAMP),
                    json.dumps(schema, separators=(",", ":")), zipfile.ZIP_DEFLATED)
        for old, new in sorted(names.items(), key=lambda kv: int(Path(kv[1]).stem)):
            zf.writestr(zipfile.ZipInfo(new, _STAMP), src.read(old), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def dump_model(model: Any, path: str | Path) -> None:
    """Write ``model`` (a fitted mapper or PCA, or None) to ``path``, atomically."""
    import skops.io as sio

    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(_canonical(sio.dumps(model)))


def load_model(path: str | Path) -> Any:
    """A model written by :func:`dump_model`; a file that names a type outside the trusted
    list, or that is not such a file at all, is a :class:`DataError` and builds nothing."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the output of an earlier stage: "
                        f"run dvc repro)")
    data = path.read_bytes()
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: expected a model file written by the pipeline (skops), got "
                        f"{len(data)} bytes that are not one ({type(exc).__name__}); a "
                        f"pickle is never loaded") from None
    refused = sorted(set(untrusted) - set(TRUSTED))
    if refused:
        raise DataError(f"{path}: refused to load: it names type(s) {refused}, expected only "
                        f"the pipeline's models ({', '.join(TRUSTED)}, numpy and "
                        f"scikit-learn)")
    try:
        return sio.loads(data, trusted=list(TRUSTED))
    except UntrustedTypesFoundException as exc:
        raise DataError(f"{path}: refused to load: {exc}") from None
    except Exception as exc:  # a damaged archive: skops raises many kinds
        raise DataError(f"{path}: expected a complete model file, got one skops cannot read "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
