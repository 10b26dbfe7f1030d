"""HTTP retries: urllib3's ``Retry``, with bounded waits, a rate limit and a warning per retry;
and the resumable download of a large file that both sources (OSF, Figshare) use.

urllib3 decides what is retried and how often (``total``, ``status_forcelist``, ...); this
module only sets the wait before each retry and logs every retry, so that a user sees it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import RequestHistory, Retry

from neurovision.errors import DataError

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0  # seconds: the longest wait between two tries
RETRIED_STATUS = frozenset({429, *range(500, 600)})


def describe(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 error, on one line."""
    reason = exc
    for _ in range(5):
        if isinstance(reason, urllib3.exceptions.MaxRetryError) and reason.reason is not None:
            reason = reason.reason
        elif reason.args and isinstance(reason.args[0], BaseException):
            reason = reason.args[0]
        else:
            break
    text = reason.args[0] if reason.args and isinstance(reason.args[0], str) else str(reason)
    text = re.sub(r"^\w*Connection(Pool)?\(host=[^)]*\):\s*", "", text or type(reason).__name__)
    return " ".join(text.split())[:300]


class LoggedRetry(Retry):
    """urllib3's ``Retry`` that waits ``backoff_factor`` before the first retry (urllib3 retries
    the first at once) and doubles, or what a readable ``Retry-After`` says, both at most
    ``backoff_max``, and at least ``min_interval`` (a rate limit); it logs each retry."""

    min_interval = 0.0

    def new(self, **kw) -> LoggedRetry:
        retry = super().new(**kw)
        retry.min_interval = self.min_interval
        return retry

    def get_backoff_time(self) -> float:
        failed = len(self.history)
        return min(self.backoff_factor * 2 ** (failed - 1), self.backoff_max) if failed else 0.0

    def wait(self, retry_after: str | None = None) -> float:
        """Seconds before the next try, given the last answer's ``Retry-After`` (if any)."""
        if retry_after is not None and self.respect_retry_after_header:
            try:
                return min(self.parse_retry_after(retry_after), self.backoff_max)
            except urllib3.exceptions.InvalidHeader:
                pass  # unreadable: the backoff applies
        return self.get_backoff_time()

    def _pause(self, response=None) -> float:
        retry_after = None if response is None else response.headers.get("Retry-After")
        return max(self.wait(retry_after), self.min_interval)

    def sleep(self, response=None) -> None:
        time.sleep(self._pause(response))

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None) -> LoggedRetry:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        where = f"{_pool.scheme}://{_pool.host}:{_pool.port}{url}" if _pool else url
        why = (describe(error) if error is not None else
               f"answered HTTP {response.status} {response.reason or ''}".strip())
        done = len(retry.history)
        log.warning("%s %s; retrying in %.1f s (%d of %d)", where, why, retry._pause(response),
                    done, done + (retry.total or 0))
        return retry


def retry_policy(retries: int, backoff: float, min_interval: float = 0.0) -> LoggedRetry:
    """GET retried ``retries`` times in all after 429 or 5xx answers or failed connections;
    the last answer is returned, not raised, once the retries are spent."""
    retry = LoggedRetry(total=retries, status_forcelist=RETRIED_STATUS, allowed_methods={"GET"},
                        backoff_factor=backoff, backoff_max=MAX_BACKOFF,
                        respect_retry_after_header=True, raise_on_status=False)
    retry.min_interval = min_interval
    return retry


def wait_after(policy: LoggedRetry, failed: int, retry_after: str | None = None) -> float:
    """Seconds ``policy`` waits after ``failed`` failed tries (the rate limit aside)."""
    history = (RequestHistory("GET", None, None, None, None),) * failed
    return policy.new(history=history).wait(retry_after)


# --------------------------------------------------------------------------------------
# Resumable downloads (OSF and Figshare share this; urllib3's Retry covers a failed request,
# this the body of a large file that breaks off mid-way, which no HTTP library resumes)

CHUNK = 1 << 16  # bytes per read: a broken connection loses at most this much


class ServiceSession:
    """What the OSF and Figshare sessions share: a ``requests.Session`` mixin with urllib3
    retries, timeouts and errors that name the service, the URL and the parameter to change.

    ``checked_get`` returns only successful answers (2xx, and 416 to a ranged request).  Until
    the service has answered once, a failed connection is not retried, so an unreachable
    service fails at once with ``unreachable``'s message.  A subclass sets the class
    attributes and calls ``mount_retries`` in its ``__init__``.
    """

    service: str  # its name in messages: "OSF"
    section: str  # its params section: "data.osf"
    hints: ClassVar[dict[int, str]] = {}  # HTTP status -> what to check
    unreachable: type[DataError] = DataError

    def unreachable_message(self, exc: BaseException) -> str:
        raise NotImplementedError

    def mount_retries(self, retry: LoggedRetry) -> None:
        self.reached = False  # has the service answered anything yet?
        self._retry = retry
        self._adapter = HTTPAdapter(max_retries=retry.new(connect=0, read=0, other=0))
        self.mount("https://", self._adapter)
        self.mount("http://", self._adapter)

    def checked_get(self, url: str, *args, connect_timeout: float,
                    **kwargs) -> requests.Response:
        p = self.p
        kwargs.setdefault("timeout", (min(connect_timeout, p.timeout), p.timeout))
        ranged = "Range" in (kwargs.get("headers") or {})
        tries = p.retries + 1
        try:
            resp = requests.Session.get(self, url, *args, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if not self.reached:
                raise self.unreachable(self.unreachable_message(exc)) from None
            raise DataError(f"{self.service}: {url}: {describe(exc)}, {tries} tries "
                            f"({self.section}.retries: {p.retries}); rerun later to try "
                            f"again") from None
        if not self.reached:  # it is there: from now on failed connections are retried too
            self.reached = True
            self._adapter.max_retries = self._retry
        code = resp.status_code
        if code < 400 or (code == 416 and ranged):
            return resp
        resp.close()
        reason = f"HTTP {code} {resp.reason or ''}".strip()
        if code in RETRIED_STATUS:  # urllib3 retried it: the retries are spent
            raise DataError(f"{self.service}: {url} answered {reason} {tries} times "
                            f"({self.section}.retries: {p.retries}); {self.service} is "
                            f"overloaded or down: try again later")
        hint = self.hints.get(code, "")
        raise DataError(f"{self.service}: {url} answered {reason}"
                        + (f"; {hint}" if hint else ""))


class Broken(Exception):
    """The body of a download stopped before its end (kept as .part, to resume)."""


def stream_to_part(session, url: str, name: str, size: int | None, part: Path,
                   progress: bool) -> None:
    """One request: append the missing bytes of ``url`` to ``part`` (or start it over)."""
    import requests
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    resp = session.get(url, stream=True, headers=headers)
    try:
        if resp.status_code == 416:  # the range is past the end: the .part is bad
            part.unlink()
            raise Broken(f"server refused to resume at byte {offset}")
        if offset and resp.status_code == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(offset):
                part.unlink()
                raise Broken(f"server resumed at {start!r}, not at byte {offset}")
            mode = "ab"
            log.info("%s: resuming at byte %d", name, offset)
        else:
            if offset:
                log.info("%s: the server does not resume downloads; starting over", name)
            mode, offset = "wb", 0
        with open(part, mode) as f, tqdm(total=size, initial=offset, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=name,
                                         disable=not progress) as bar:
            try:
                for block in resp.iter_content(CHUNK):
                    try:
                        f.write(block)
                    except OSError as exc:
                        raise DataError(f"{part}: cannot write the download "
                                        f"({exc.strerror}); free some disk space and rerun "
                                        f"(it resumes)") from exc
                    bar.update(len(block))
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                raise Broken(describe(exc)) from exc
            f.flush()
            os.fsync(f.fileno())
    finally:
        resp.close()
    have = part.stat().st_size
    if size is not None and have < size:
        raise Broken(f"the connection closed at byte {have} of {size}")


def download_resuming(session, url: str, name: str, size: int | None, part: Path, *,
                      retries: int, retries_param: str, backoff: Callable[[int], float],
                      progress: bool) -> None:
    """Download ``url`` into ``part``, resuming after a broken body up to ``retries`` times
    (``backoff(attempt)`` seconds apart); a download that stays broken is a DataError naming
    ``retries_param`` and keeps the bytes received, so a rerun resumes."""
    attempt = 0
    while size is None or not part.exists() or part.stat().st_size < size:
        try:
            stream_to_part(session, url, name, size, part, progress)
            return
        except Broken as exc:
            have = part.stat().st_size if part.exists() else 0
            if attempt >= retries:
                raise DataError(f"{name}: download interrupted ({exc}) after {attempt + 1} "
                                f"tries ({retries_param}: {retries}); the {have} bytes "
                                f"received are kept in {part}: rerun to resume") from None
            delay = backoff(attempt)
            log.warning("%s: download interrupted (%s) at byte %d; resuming in %.1f s",
                        name, exc, have, delay)
            time.sleep(delay)
            attempt += 1
