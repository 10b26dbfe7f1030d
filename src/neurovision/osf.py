"""Verified downloads from OSF (osf.io) with osfclient.

Files are located by listing a component's ``osfstorage`` with osfclient (never by guessing
URLs), fetched from the download link osfclient itself uses (``links.upload``), and verified
against the md5 and sha256 that OSF reports in each file's metadata
(``attributes.extra.hashes``).

Faults, and what happens:

- a download goes to ``<name>.part`` and is renamed to ``<name>`` only once its size and
  hashes match; a mismatch deletes it and names both hashes;
- a connection broken mid-file keeps the ``.part``: the next try (in this run, or the next
  run) asks for the rest with an HTTP ``Range`` request, or starts over if the server
  ignores it;
- HTTP 429 and 5xx answers (and, once OSF has answered, failed connections) are retried by
  urllib3 with exponential backoff (honouring ``Retry-After``), a bounded number of times;
  other HTTP errors (404 ...) fail at once, naming the URL;
- an OSF that cannot be reached at all fails at the first request, in seconds, with one
  message saying how to go on without it;
- a file already downloaded and verified (a ``<name>.verified.json`` stamp next to it
  records its hashes, size and mtime) is not fetched again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import requests
from osfclient import OSF
from osfclient.exceptions import OSFException
from osfclient.models.session import OSFSession

from neurovision import downloads, http
from neurovision.errors import DataError
from neurovision.http import describe
from neurovision.params import OsfParams

log = logging.getLogger(__name__)

CHUNK = http.CHUNK  # bytes per read: a broken connection loses at most this much
CONNECT_TIMEOUT = 10.0
HASHES = ("sha256", "md5")


class OsfUnreachable(DataError):
    """OSF did not answer at all (no network, DNS failure, connection refused)."""


def unreachable_message(api_url: str, exc: BaseException) -> str:
    return (f"cannot reach OSF at {api_url} ({describe(exc)}). data.source: things-eeg2 "
            f"downloads the release from OSF and needs the network. To go on without it: run "
            f"the simulated dataset (data.source: demo, e.g. dvc exp run -S data.source=demo), "
            f"or download the release where there is network access and point the pipeline at "
            f"it (data.source: local with data.local_dir: <folder in the release layout>; see "
            f"README, 'Real data (THINGS-EEG2)').")


def _backoff(p: OsfParams, attempt: int, retry_after: str | None = None) -> float:
    """Seconds the session waits after try ``attempt + 1`` failed (the rate limit aside)."""
    return http.wait_after(http.retry_policy(p.retries, p.backoff), attempt + 1, retry_after)


# --------------------------------------------------------------------------------------
# HTTP session: osfclient's, with timeouts, rate limit, retries and clear errors


class OsfSession(http.ServiceSession, OSFSession):
    """osfclient's session with timeouts, a rate limit, bounded retries and errors that say
    what to do (:class:`neurovision.http.ServiceSession`).

    osfclient sends every API request through ``session.get``; so does :func:`fetch` for the
    file bytes.
    """

    service = "OSF"
    section = "data.osf"
    hints: ClassVar[dict[int, str]] = {
        401: "the THINGS-EEG2 release is public: no login is needed; check data.osf.api_url",
        403: "OSF refused access; check data.osf.api_url",
        404: "the file or component is not (or no longer) on OSF; check the component ids "
             "in src/neurovision/release.py against osf.io/3jk45"}
    unreachable = OsfUnreachable

    def __init__(self, p: OsfParams):
        super().__init__()
        self.p = p
        self.base_url = p.api_url.rstrip("/")  # osfclient's build_url adds the slashes
        self._last = 0.0
        self.mount_retries(http.retry_policy(p.retries, p.backoff, p.min_interval))

    def unreachable_message(self, exc: BaseException) -> str:
        return unreachable_message(self.p.api_url, exc)

    def _throttle(self) -> None:
        wait = self._last + self.p.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()

    def get(self, url: str, *args, **kwargs) -> requests.Response:
        self._throttle()
        return self.checked_get(url, *args, connect_timeout=CONNECT_TIMEOUT, **kwargs)


# --------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class RemoteFile:
    """One file of an OSF component's storage, as its metadata describes it."""

    component: str
    name: str
    path: str  # materialized path in the storage, e.g. "/sub-01.zip"
    size: int | None
    hashes: dict  # {"md5": ..., "sha256": ...} as OSF reports them (lower-case hex)
    url: str  # the link osfclient downloads from (File.write_to): links.upload


def _collect_links(links: dict):
    """A response hook that records ``links.upload`` of every file in a listing page."""
    def hook(resp: requests.Response, *args, **kwargs) -> None:
        if not resp.ok or "json" not in resp.headers.get("Content-Type", ""):
            return
        data = resp.json().get("data")
        for item in data if isinstance(data, list) else ():
            if item.get("attributes", {}).get("kind") == "file":
                links[item.get("id")] = item.get("links", {}).get("upload")
    return hook


def list_files(session: OsfSession, component: str) -> list[RemoteFile]:
    """Every file in ``component``'s osfstorage (recursively), listed with osfclient.

    osfclient keeps each file's download link (``links.upload`` in the listing) to itself, so
    a response hook reads it from the same listing answers as osfclient reads.
    """
    osf = OSF()
    osf.session = session
    links: dict = {}
    session.hooks["response"].append(hook := _collect_links(links))
    try:
        storage = osf.project(component).storage("osfstorage")
        files = list(storage.files)
    except DataError:
        raise
    except (OSFException, RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"OSF component {component}: unexpected answer while listing its "
                        f"storage at {session.p.api_url} ({type(exc).__name__}: {exc})") from exc
    finally:
        session.hooks["response"].remove(hook)
    out = []
    for f in files:
        if not links.get(f.id):
            raise DataError(f"OSF component {component}: the listing gives no download link "
                            f"(links.upload) for {f.path}")
        hashes = {k: str(v).lower() for k, v in (f.hashes or {}).items() if k in HASHES and v}
        out.append(RemoteFile(component=component, name=f.name, path=f.path,
                              size=None if f.size is None else int(f.size), hashes=hashes,
                              url=links[f.id]))
    log.info("OSF component %s: %d files", component, len(out))
    return out


def find_file(files: Iterable[RemoteFile], component: str, name: str) -> RemoteFile:
    """The file called ``name``: the one at the storage root, else the only one anywhere."""
    files = list(files)
    matches = [f for f in files if f.name == name]
    at_root = [f for f in matches if f.path.strip("/") == name]
    if len(at_root) == 1:
        return at_root[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DataError(f"OSF component {component}: no file named {name!r}; it holds "
                        f"{sorted(f.path for f in files)[:20]}")
    raise DataError(f"OSF component {component}: {len(matches)} files named {name!r} "
                    f"({sorted(f.path for f in matches)}); expected one")


# --------------------------------------------------------------------------------------
# Download (neurovision.downloads: the stamp, the checks, the resumable transfer)


def fetch(session: OsfSession, remote: RemoteFile, dest: str | Path,
          progress: bool = True) -> Path:
    """Download ``remote`` to ``dest`` (verified), unless a verified copy is already there."""
    if not remote.hashes:  # fail before downloading what could never be verified
        raise DataError(f"OSF reports no md5 or sha256 for {remote.component}{remote.path}: "
                        f"cannot verify a download of it")
    return downloads.fetch_verified(
        session, url=remote.url, name=remote.name, size=remote.size, hashes=remote.hashes,
        dest=dest, source="OSF", retries=session.p.retries, retries_param="data.osf.retries",
        backoff=lambda attempt: _backoff(session.p, attempt), progress=progress)


def fetch_files(component: str, names: Sequence[str], cache_dir: str | Path, p: OsfParams,
                progress: bool = True) -> dict[str, Path]:
    """Download the named files of an OSF component into ``cache_dir/<component>/``.

    Returns ``{name: local path}``.  When OSF cannot be reached but every file was
    downloaded and verified before (and is unchanged since), those copies are used.
    """
    session = OsfSession(p)
    return downloads.fetch_listed(
        "OSF", Path(cache_dir) / component, names, lambda: list_files(session, component),
        lambda files, name, dest: fetch(session, find_file(files, component, name), dest, progress),
        OsfUnreachable)
