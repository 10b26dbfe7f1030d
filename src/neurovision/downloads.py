"""Verified downloads kept between runs, for both sources (OSF, Figshare).

A downloaded file is kept only once its size and every hash the source reports match; a
``<name>.verified.json`` stamp next to it records them with the file's size and mtime, so a
later run reuses it without hashing it again, and a file changed since is checked (or
downloaded) anew.  The sources differ only in how they list files and which hashes they
report; the bytes arrive through :func:`neurovision.http.download_resuming`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from neurovision import http
from neurovision.errors import DataError
from neurovision.io import file_hashes, save_json

log = logging.getLogger(__name__)


def stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified.json")


def write_stamp(dest: Path, hashes: dict) -> None:
    st = dest.stat()
    save_json(stamp_path(dest), {"file": dest.name, "size": st.st_size,
                                 "mtime_ns": st.st_mtime_ns, **hashes})


def stamp_matches(dest: Path, expected: dict | None = None) -> bool:
    """``dest`` is unchanged since it was verified (and, if given, had ``expected`` hashes)."""
    try:
        stamp = json.loads(stamp_path(dest).read_text())
        st = dest.stat()
    except (OSError, ValueError):
        return False
    if stamp.get("size") != st.st_size or stamp.get("mtime_ns") != st.st_mtime_ns:
        return False
    return all(stamp.get(k) == v for k, v in (expected or {}).items())


def verify(path: Path, name: str, size: int | None, hashes: dict, source: str,
           progress: bool = True) -> dict:
    """Check ``path``'s size and every hash ``source`` reports; on a mismatch delete it and
    fail.  Returns the hashes computed."""
    have = path.stat().st_size
    if size is not None and have != size:
        path.unlink()
        raise DataError(f"{name}: size mismatch: {source} reports {size} bytes, the download "
                        f"has {have}; it was deleted, rerun to download it again")
    got = file_hashes(path, tuple(hashes), progress=progress, label=name)
    bad = [a for a in hashes if got[a] != hashes[a]]
    if bad:
        path.unlink()
        detail = "; ".join(f"{a}: {source} reports {hashes[a]}, the downloaded file has "
                           f"{got[a]}" for a in bad)
        raise DataError(f"{name}: hash mismatch ({detail}). The download was deleted; rerun to "
                        f"download it again (if it repeats, the file on {source} or something "
                        f"between you and {source} is altering it)")
    return got


def fetch_verified(session, *, url: str, name: str, size: int | None, hashes: dict,
                   dest: str | Path, source: str, retries: int, retries_param: str,
                   backoff: Callable[[int], float], progress: bool = True) -> Path:
    """``dest``, verified against ``hashes``: reused when its stamp matches, checked once
    when present without one, else downloaded (resuming a ``.part`` left by an earlier
    try) and verified before it takes the name ``dest``."""
    dest = Path(dest)
    if not hashes:
        raise DataError(f"{source} reports no hash for {name}: cannot verify a download of "
                        f"it, so it is not downloaded")
    if stamp_matches(dest, hashes):
        log.info("%s: already downloaded and verified (%s)", name, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # present but not (or differently) verified: check it once
        got = file_hashes(dest, tuple(hashes), progress=progress)
        if all(got[a] == h for a, h in hashes.items()):
            write_stamp(dest, got)
            log.info("%s: found at %s with the right hashes", name, dest)
            return dest
        log.warning("%s: %s does not match the hashes %s reports; downloading it again",
                    name, dest, source)
        dest.unlink()
        stamp_path(dest).unlink(missing_ok=True)
    part = dest.with_name(dest.name + ".part")
    http.download_resuming(session, url, name, size, part, retries=retries,
                           retries_param=retries_param, backoff=backoff, progress=progress)
    got = verify(part, name, size, hashes, source, progress=progress)
    os.replace(part, dest)
    write_stamp(dest, got)
    log.info("%s: downloaded and verified (%s)", name, dest)
    return dest


def fetch_listed(service: str, target: Path, names, listing: Callable[[], list],
                 fetch_one: Callable[[list, str, Path], Path],
                 unreachable: type[Exception]) -> dict[str, Path]:
    """``{name: target / name}``, each file fetched (``fetch_one(files, name, dest)``) from the
    service's listing (``listing()``).  When the service cannot be reached (``unreachable``)
    but every file was downloaded and verified before and is unchanged since, those copies
    are used; otherwise the error stands."""
    try:
        files = listing()
    except unreachable:
        cached = {name: target / name for name in names}
        if all(stamp_matches(path) for path in cached.values()):
            log.warning("%s is unreachable; using the copies downloaded and verified earlier "
                        "in %s", service, target)
            return cached
        raise
    return {name: fetch_one(files, name, target / name) for name in names}
