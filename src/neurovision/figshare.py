"""Verified downloads from Figshare (figshare.com and Figshare+) through its public API v2.

An article's files are found by listing them (``GET {api}/articles/{id}/files``, page by
page), never by guessing URLs; each entry gives the file's ``name``, ``size``,
``download_url`` and the md5 Figshare computed (``computed_md5``; ``supplied_md5`` is the
uploader's, checked too when given).

Faults, and what happens (as for OSF, :mod:`neurovision.osf`):

- a download goes to ``<name>.part`` and is renamed to ``<name>`` only once its size and md5
  match; a mismatch deletes it and names both hashes;
- a connection broken mid-file keeps the ``.part``: the next try (in this run, or the next
  run) asks for the rest with an HTTP ``Range`` request, or starts over if the server
  ignores it;
- HTTP 429 and 5xx answers (and, once Figshare has answered, failed connections) are retried
  by urllib3 with exponential backoff (:func:`neurovision.http.retry_policy`), a bounded
  number of times; other HTTP errors (404 ...) fail at once, naming the URL;
- a Figshare that cannot be reached at all fails at the first request, in seconds, with one
  message saying how to go on without it; files downloaded and verified earlier are used;
- a file already downloaded and verified (a ``<name>.verified.json`` stamp next to it
  records its md5, size and mtime) is not fetched again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import requests

from neurovision import downloads, http
from neurovision.errors import DataError
from neurovision.http import describe
from neurovision.params import FigshareParams

log = logging.getLogger(__name__)

CHUNK = http.CHUNK  # bytes per read: a broken connection loses at most this much
CONNECT_TIMEOUT = 10.0
PAGE_SIZE = 100  # files per listing page
MAX_PAGES = 1000
_MD5 = re.compile(r"^[0-9a-f]{32}$")


class FigshareUnreachable(DataError):
    """Figshare did not answer at all (no network, DNS failure, connection refused)."""


def unreachable_message(api_url: str, exc: BaseException) -> str:
    return (f"cannot reach Figshare at {api_url} ({describe(exc)}). data.eeg: raw with "
            f"data.source: things-eeg2 downloads the raw recordings from Figshare+ and needs "
            f"the network. To go on without it: run the simulated recordings (data.source: "
            f"demo), use the release's preprocessed EEG (data.eeg: preprocessed), or download "
            f"the raw recordings where there is network access and point the pipeline at them "
            f"(data.source: local with data.local_dir: <folder in the raw layout>; see README, "
            f"'Raw recordings').")


def _backoff(p: FigshareParams, attempt: int) -> float:
    """Seconds waited after try ``attempt + 1`` of a broken download failed."""
    return http.wait_after(http.retry_policy(p.retries, p.backoff), attempt + 1)


class FigshareSession(http.ServiceSession, requests.Session):
    """A session with timeouts, bounded retries and errors that say what to do
    (:class:`neurovision.http.ServiceSession`)."""

    service = "Figshare"
    section = "data.figshare"
    hints: ClassVar[dict[int, str]] = {
        403: "Figshare refused access; the raw recordings are public: check "
             "data.figshare.api_url",
        404: "the article or file is not (or no longer) on Figshare; check "
             "data.figshare.article"}
    unreachable = FigshareUnreachable

    def __init__(self, p: FigshareParams):
        super().__init__()
        self.p = p
        self.mount_retries(http.retry_policy(p.retries, p.backoff))

    def unreachable_message(self, exc: BaseException) -> str:
        return unreachable_message(self.p.api_url, exc)

    def get(self, url: str, *args, **kwargs) -> requests.Response:
        return self.checked_get(url, *args, connect_timeout=CONNECT_TIMEOUT, **kwargs)


# --------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Figshare article, as the article's file listing describes it."""

    article: int
    id: int
    name: str
    size: int
    md5: str
    url: str


def _entry(article: int, item: object, url: str) -> RemoteFile:
    """A listing entry, checked: every field the download needs, and one md5."""
    if not isinstance(item, dict):
        raise DataError(f"Figshare: {url}: expected a list of file entries, got "
                        f"{type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise DataError(f"Figshare: {url}: a file entry without a name: {item!r:.200}")
    if item.get("is_link_only"):
        raise DataError(f"Figshare article {article}: {name} is only a link to elsewhere "
                        f"({item.get('download_url')}), not a file Figshare serves")
    size, link = item.get("size"), item.get("download_url")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DataError(f"Figshare article {article}: {name}: expected a size in bytes, got "
                        f"{size!r}")
    if not isinstance(link, str) or not link.startswith(("http://", "https://")):
        raise DataError(f"Figshare article {article}: {name}: expected a download_url, got "
                        f"{link!r}")
    hashes = {k: str(item.get(k) or "").lower() for k in ("computed_md5", "supplied_md5")}
    md5s = {h for h in hashes.values() if h}
    if not hashes["computed_md5"] or not _MD5.match(hashes["computed_md5"]):
        raise DataError(f"Figshare article {article}: {name}: Figshare reports no md5 "
                        f"(computed_md5 {item.get('computed_md5')!r}): cannot verify a "
                        f"download of it")
    if len(md5s) > 1:
        raise DataError(f"Figshare article {article}: {name}: Figshare reports two different "
                        f"md5s (computed {hashes['computed_md5']}, supplied "
                        f"{hashes['supplied_md5']}): the file cannot match both")
    fid = item.get("id")
    return RemoteFile(article=article, id=fid if isinstance(fid, int) else -1, name=name,
                      size=size, md5=hashes["computed_md5"], url=link)


def list_files(session: FigshareSession, article: int) -> list[RemoteFile]:
    """Every file of ``article``, read page by page until an empty page."""
    base = f"{session.p.api_url.rstrip('/')}/articles/{article}/files"
    out: list[RemoteFile] = []
    for page in range(1, MAX_PAGES + 1):
        url = f"{base}?page={page}&page_size={PAGE_SIZE}"
        resp = session.get(url, headers={"Accept": "application/json"})
        try:
            items = resp.json()
        except ValueError as exc:
            raise DataError(f"Figshare: {url}: expected a JSON list of files, got "
                            f"{resp.headers.get('Content-Type', 'no content type')} that does "
                            f"not parse ({exc})") from exc
        finally:
            resp.close()
        if not isinstance(items, list):
            raise DataError(f"Figshare: {url}: expected a JSON list of files, got "
                            f"{type(items).__name__}")
        if not items:
            break
        out += [_entry(article, item, url) for item in items]
    log.info("Figshare article %d: %d files", article, len(out))
    return out


def find_file(files: Sequence[RemoteFile], article: int, name: str) -> RemoteFile:
    """The one file called ``name`` in the listing."""
    matches = [f for f in files if f.name == name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DataError(f"Figshare article {article}: no file named {name!r}; it holds "
                        f"{sorted(f.name for f in files)[:20]} (the raw recordings' file names "
                        f"on Figshare are unverified: if they differ, download and unpack them "
                        f"into data.local_dir in the raw layout and use data.source: local)")
    raise DataError(f"Figshare article {article}: {len(matches)} files named {name!r}; "
                    f"expected one")


# --------------------------------------------------------------------------------------
# Download (neurovision.downloads: the stamp, the checks, the resumable transfer)


def fetch(session: FigshareSession, remote: RemoteFile, dest: str | Path,
          progress: bool = True) -> Path:
    """Download ``remote`` to ``dest`` (verified), unless a verified copy is already there."""
    return downloads.fetch_verified(
        session, url=remote.url, name=remote.name, size=remote.size,
        hashes={"md5": remote.md5}, dest=dest, source="Figshare", retries=session.p.retries,
        retries_param="data.figshare.retries",
        backoff=lambda attempt: _backoff(session.p, attempt), progress=progress)


def fetch_files(article: int, names: Sequence[str], cache_dir: str | Path, p: FigshareParams,
                progress: bool = True) -> dict[str, Path]:
    """Download the named files of a Figshare article into ``cache_dir/figshare-<id>/``.

    Returns ``{name: local path}``.  When Figshare cannot be reached but every file was
    downloaded and verified before (and is unchanged since), those copies are used.
    """
    session = FigshareSession(p)
    return downloads.fetch_listed(
        "Figshare", Path(cache_dir) / f"figshare-{article}", names,
        lambda: list_files(session, article),
        lambda files, name, dest: fetch(session, find_file(files, article, name), dest, progress),
        FigshareUnreachable)
