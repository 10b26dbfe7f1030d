"""Where the caches that outlive DVC's outputs live: verified downloads and embed chunks.

DVC deletes a stage's outputs before it reruns it, so what must survive a rerun (a
verified multi-gigabyte download, finished embedding chunks) is kept outside them.  And
``dvc exp run --queue`` / ``--temp`` run each experiment in its own copy of the repository
(under ``.dvc/tmp/exps/``), so a cache inside the workspace would be one per copy: every
queued experiment would download and embed everything again.  Both caches therefore live in
one place outside the workspace, shared by the workspace, every queued or temporary
experiment and every clone on the machine:

1. the environment variable ``NEUROVISION_CACHE``, if set (one machine, one person);
2. else ``cache.dir`` in params.yaml, if not null (a team's shared disk);
3. else the user's cache directory (``platformdirs``: ``~/.cache/neurovision`` on Linux,
   ``~/Library/Caches/neurovision`` on macOS, ``%LOCALAPPDATA%\\neurovision\\Cache`` on
   Windows).

``<root>/downloads/`` holds verified downloads, ``<root>/embed/`` embedding chunks.  Where
the cache lives never changes a result (every entry is verified or keyed by content), so
``cache.dir`` is deliberately no stage's DVC param: moving the cache reruns nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from neurovision.errors import ParamError

log = logging.getLogger(__name__)

CACHE_ENV = "NEUROVISION_CACHE"


def cache_root(param: Optional[str] = None) -> Path:
    """The cache directory: ``$NEUROVISION_CACHE``, else ``param`` (``cache.dir``), else the
    user's cache directory; always absolute, so every copy of the workspace finds the same."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        where, value = CACHE_ENV, env
    elif param:
        where, value = "cache.dir", param
    else:
        import platformdirs

        return Path(platformdirs.user_cache_dir("neurovision", appauthor=False))
    path = Path(value).expanduser()
    if not path.is_absolute():
        what = f"params: {where}" if where == "cache.dir" else f"environment: {where}"
        raise ParamError(f"{what}: expected an absolute path (or ~/...), got {value!r}: a "
                         f"relative one would name another folder in each copy of the "
                         f"workspace that dvc exp run --queue/--temp makes")
    return path


def downloads_dir(param: Optional[str] = None) -> Path:
    """Verified downloads (:mod:`neurovision.osf`), by OSF component."""
    return cache_root(param) / "downloads"


def embed_dir(param: Optional[str] = None) -> Path:
    """Finished embedding chunks (:class:`neurovision.vision.cache.ChunkCache`)."""
    return cache_root(param) / "embed"
