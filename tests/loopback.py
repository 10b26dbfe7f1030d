"""What the loopback OSF and Figshare servers share: file bytes with ranges and faults, and a
threaded HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: object  # the fake service: next_fault(name), ignore_range


class ServesBytes:
    """A handler mixin: ``_bytes(f)`` answers with ``f.data``, honouring an open-ended
    ``Range: bytes=N-`` unless the state ignores ranges, and the state's next fault for the
    file: "ok", "cut" (half the bytes, then the connection drops), "corrupt" (one byte
    flipped) or an HTTP status."""

    def _bytes(self, f) -> None:
        state = self.server.state
        fault = state.next_fault(f.name)
        if fault not in ("ok", "cut", "corrupt"):
            return self._error(int(fault))
        data, start = f.data, 0
        rng = self.headers.get("Range")
        if rng and not state.ignore_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(data):
                return self._error(416)
        body = data[start:]
        if fault == "corrupt":
            i = len(body) // 2
            body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        self.wfile.write(body)
        return None


class Loopback:
    """Run ``handler`` over ``state`` on 127.0.0.1 in a thread; ``api_url`` is its API root."""

    def __init__(self, state, handler):
        self.state = state
        self.httpd = Server(("127.0.0.1", 0), handler)
        self.httpd.state = self.state
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v2/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
