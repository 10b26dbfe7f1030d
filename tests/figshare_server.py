"""A stand-in for Figshare on 127.0.0.1: the public API's article file listing and the file
downloads (a redirect to a storage host, as ndownloader.figshare.com does), with faults on
demand.

Endpoints, shaped like api.figshare.com's (its documented ``PublicFile`` entries):

- ``GET /v2/articles/<id>/files?page=&page_size=`` -> a JSON list of ``{id, name, size,
  is_link_only, download_url, supplied_md5, computed_md5, mimetype}``, at most
  ``FakeFigshare.page_size`` per page (whatever the client asks), ``[]`` past the end
- ``GET /ndownloader/files/<file id>`` -> 302 to ``/storage/<file id>?signature=...``
- ``GET /storage/<file id>`` -> the bytes, with ``Range`` support
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from loopback import Loopback, Server, ServesBytes


@dataclass
class Served:
    article: int
    id: int
    name: str
    data: bytes
    entry: dict  # extra or overriding listing fields


@dataclass
class FakeFigshare:
    """The server's state: files, queued faults, and a log of every request."""

    files: dict = field(default_factory=dict)  # file id -> Served
    faults: dict = field(default_factory=dict)  # file name or "api" -> list of actions
    requests: list = field(default_factory=list)  # (path, Range header or None)
    page_size: int = 2
    ignore_range: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, article: int, name: str, data: bytes, **entry) -> None:
        fid = 1000 + len(self.files)
        self.files[fid] = Served(article, fid, name, data, entry)

    def fault(self, key: str, *actions: str) -> None:
        """Queue faults for the next requests of file ``key`` (its name) or of ``"api"``:
        ``"429"``, ``"500"``, ``"503"``, ``"404"`` (that status), ``"cut"`` (half the bytes,
        then the connection closes), ``"corrupt"`` (one byte flipped), ``"ok"``."""
        with self.lock:
            self.faults.setdefault(key, []).extend(actions)

    def next_fault(self, key: str) -> str:
        with self.lock:
            queue = self.faults.get(key) or []
            return queue.pop(0) if queue else "ok"

    def downloads(self, name: str) -> list:
        """The Range header (or None) of every byte request for file ``name``."""
        ids = {str(fid) for fid, f in self.files.items() if f.name == name}
        return [rng for path, rng in self.requests
                if path.startswith("/storage/") and path.rsplit("/", 1)[-1] in ids]

    def listings(self) -> int:
        return sum(path.startswith("/v2/") for path, _ in self.requests)


class _Handler(ServesBytes, BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int) -> None:
        body = json.dumps({"message": f"status {status}", "code": "Error"}).encode()
        self._send(status, body, "application/json", {"Retry-After": "0"} if status == 429
                   else None)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _entry(self, f: Served) -> dict:
        md5 = hashlib.md5(f.data).hexdigest()
        return {"id": f.id, "name": f.name, "size": len(f.data), "is_link_only": False,
                "download_url": f"{self.base}/ndownloader/files/{f.id}",
                "supplied_md5": md5, "computed_md5": md5,
                "mimetype": "application/zip", **f.entry}

    def do_GET(self) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        path = split.path
        with state.lock:
            state.requests.append((path, self.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["v2", "articles"] and len(parts) == 4 and parts[3] == "files":
            fault = state.next_fault("api")
            if fault != "ok":
                return self._error(int(fault))
            article = int(parts[2]) if parts[2].isdigit() else -1
            files = [f for f in state.files.values() if f.article == article]
            if not files:
                return self._error(404)
            query = parse_qs(split.query)
            page = int(query.get("page", ["1"])[0])
            size = min(int(query.get("page_size", ["10"])[0]), state.page_size)
            chunk = files[(page - 1) * size: page * size]
            return self._send(200, json.dumps([self._entry(f) for f in chunk]).encode(),
                              "application/json; charset=utf-8")
        if parts[:2] == ["ndownloader", "files"] and len(parts) == 3:
            fid = int(parts[2]) if parts[2].isdigit() else -1
            if fid not in state.files:
                return self._error(404)
            return self._send(302, b"", "text/plain",
                              {"Location": f"{self.base}/storage/{fid}?signature=abc"})
        if parts[0] == "storage" and len(parts) == 2 and parts[1].isdigit() \
                and int(parts[1]) in state.files:
            return self._bytes(state.files[int(parts[1])])
        return self._error(404)


class FigshareServer(Loopback):
    """Run a :class:`FakeFigshare` on 127.0.0.1 in a thread; ``api_url`` is its API root."""

    def __init__(self, state: FakeFigshare | None = None):
        super().__init__(state or FakeFigshare(), _Handler)
