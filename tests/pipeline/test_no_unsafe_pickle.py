"""Lint: no project code unpickles with the unsafe loaders.

The release's pickled files are loaded only by ``neurovision.io.load_npy_dict`` (a restricted
unpickler).  This check parses every project ``.py`` file outside ``tests/`` and fails on

- ``np.load(...)`` / ``numpy.load(...)`` with ``allow_pickle`` set to anything but ``False``
  (or with ``**kwargs``, which could set it);
- ``pickle.load`` / ``pickle.loads`` / ``pickle.Unpickler(...)`` (also via ``_pickle``,
  ``dill``, ``cloudpickle``, and names imported ``from pickle``);
- ``pandas.read_pickle``, ``joblib.load``, and ``torch.load`` without an explicit
  ``weights_only=True``.

Not flagged, on purpose: ``np.save(..., allow_pickle=True)`` (writing), a class that
*subclasses* ``pickle.Unpickler`` (that is how the restricted unpickler is built).
``joblib.load`` is flagged too: model files are skops files (neurovision.model_files).
Tests are not scanned: they load only files they wrote themselves (test_io.py compares with
numpy's own loader on purpose).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle"}
PICKLE_CALLS = {"load", "loads", "Unpickler"}
SKIP_DIRS = {"tests", ".git", ".dvc", ".venv", "venv", "build", "dist", "node_modules",
             "__pycache__", "data", "embeds", "models", "metrics"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it stands for: 'numpy', 'pickle', 'numpy.load', 'pickle.load' ..."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else \
                    a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _target(func: ast.expr, names: dict[str, str]) -> str | None:
    """The dotted name a call goes to, resolved through imports ('numpy.load' ...)."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name) or func.id not in names:
        return None
    return ".".join([names[func.id], *reversed(parts)])


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def unsafe_calls(source: str, filename: str = "<snippet>") -> list[str]:
    """``file:line: what`` for every unsafe unpickling call in ``source``."""
    tree = ast.parse(source, filename)
    names = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _target(node.func, names)
        if target is None:
            continue
        kw = {k.arg: k.value for k in node.keywords}
        where = f"{filename}:{node.lineno}"
        if target == "numpy.load":
            if None in kw or ("allow_pickle" in kw and not _is_false(kw["allow_pickle"])):
                found.append(f"{where}: np.load with allow_pickle")
        elif target.split(".")[0] in PICKLE_MODULES and target.split(".")[-1] in PICKLE_CALLS:
            found.append(f"{where}: {target}")
        elif target == "pandas.read_pickle":
            found.append(f"{where}: pandas.read_pickle")
        elif target == "joblib.load":
            found.append(f"{where}: joblib.load (a pickle: use neurovision.model_files)")
        elif target == "torch.load" and not (isinstance(kw.get("weights_only"), ast.Constant)
                                             and kw["weights_only"].value is True):
            # explicit: torch < 2.6 (allowed by pyproject) defaults to weights_only=False
            found.append(f"{where}: torch.load without weights_only=True")
    return found


def project_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py")
                  if not SKIP_DIRS & set(p.relative_to(ROOT).parts[:-1]))


def test_project_has_no_unsafe_unpickling():
    files = project_files()
    rel = {str(p.relative_to(ROOT)) for p in files}
    # the scan really covers the library and the stages
    assert {"src/neurovision/io.py", "src/neurovision/osf.py", "stages/download.py",
            "stages/evaluate.py"} <= rel
    problems = [hit for p in files
                for hit in unsafe_calls(p.read_text(), str(p.relative_to(ROOT)))]
    assert problems == [], "unsafe unpickling (use neurovision.io.load_npy_dict):\n" + \
        "\n".join(problems)


@pytest.mark.parametrize("code", [
    "import numpy as np\nnp.load(p, allow_pickle=True)",
    "import numpy\nnumpy.load(p, mmap_mode='r', allow_pickle=1)",
    "import numpy as np\nflag = True\nnp.load(p, allow_pickle=flag)",
    "import numpy as np\nnp.load(p, **options)",
    "from numpy import load\nload(p, allow_pickle=True)",
    "from numpy import load as ld\nld(p, allow_pickle=True).item()",
    "import pickle\npickle.load(f)",
    "import pickle as pk\npk.loads(data)",
    "from pickle import load\nload(f)",
    "from pickle import Unpickler\nUnpickler(f).load()",
    "import pickle\npickle.Unpickler(f).load()",
    "import _pickle\n_pickle.loads(b)",
    "import dill\ndill.load(f)",
    "import pandas as pd\npd.read_pickle(p)",
    "import torch\ntorch.load(p, weights_only=False)",
    "import torch\ntorch.load(p)",
    "import joblib\njoblib.load(path)",
    "from joblib import load\nload(path)",
])
def test_checker_catches(code):
    assert len(unsafe_calls(code)) == 1, code


@pytest.mark.parametrize("code", [
    "import numpy as np\nnp.load(p)",
    "import numpy as np\nnp.load(p, allow_pickle=False)",
    "import numpy as np\nnp.save(f, obj, allow_pickle=True)",
    textwrap.dedent("""\
        import pickle
        class Restricted(pickle.Unpickler):
            def find_class(self, module, name):
                raise pickle.UnpicklingError(name)
        Restricted(f).load()
        pickle.dumps(obj)
    """),
    "import torch\ntorch.load(p, weights_only=True)",
    "import json\njson.load(f)",
    "def load(x, allow_pickle=True):\n    pass\nload(1, allow_pickle=True)",
])
def test_checker_allows(code):
    assert unsafe_calls(code) == [], code
