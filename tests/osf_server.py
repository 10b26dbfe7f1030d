"""A stand-in for OSF on 127.0.0.1: the part of the OSF API v2 that osfclient uses, and the
file downloads, with faults on demand.  Also builds a tiny THINGS-EEG2 release from the
demo code, zipped exactly like the real one.

Endpoints (JSON:API documents shaped like api.osf.io's):

- ``GET /v2/guids/<id>/``                         -> {"data": {"type": "nodes", ...}}
- ``GET /v2/nodes/<id>/``                         -> the node, links to its storages
- ``GET /v2/nodes/<id>/files/``                   -> storage providers (osfstorage)
- ``GET /v2/nodes/<id>/files/osfstorage/[<folder>/]`` -> files and folders, paginated
  (``links.next``), each file with ``attributes.extra.hashes`` {md5, sha256} and ``size``
- ``GET /wb/v1/resources/<id>/providers/osfstorage/<file id>`` -> the bytes (``links.upload``,
  what osfclient downloads from), with ``Range`` support
- ``GET /download/<file id>/``                    -> 302 to the above (``links.download``)
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from loopback import Loopback, Server, ServesBytes
from neurovision import demo
from neurovision.io import save_npy_dict
from neurovision.params import DemoParams

#: A release small enough to build in a second and run through the whole pipeline quickly.
MINI_DEMO = {"seed": 0, "n_train_concepts": 16, "train_images_per_concept": 2, "n_test": 10,
             "train_reps": 2, "test_reps": 4, "image_size": 32, "noise": 1.0}


# --------------------------------------------------------------------------------------
# A tiny release, built by the demo code


def subject_zip_bytes(train_npy: bytes, test_npy: bytes, subject: int,
                      extra: dict[str, bytes] | None = None) -> bytes:
    """``sub-0N.zip`` as in the release: a ``sub-0N/`` folder entry and the two arrays."""
    folder = f"sub-{subject:02d}"
    members = {f"{folder}/preprocessed_eeg_training.npy": train_npy,
               f"{folder}/preprocessed_eeg_test.npy": test_npy, **(extra or {})}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(f"{folder}/", (2022, 1, 1, 0, 0, 0)), b"")
        for name, data in members.items():  # extra members: names used verbatim
            zf.writestr(zipfile.ZipInfo(name, (2022, 1, 1, 0, 0, 0)), data,
                        compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def write_release(dest: Path, demo_params: dict = MINI_DEMO, subjects=(1,),
                  zipped: bool = True) -> Path:
    """Write a tiny release into ``dest``: the image files, and per subject ``sub-0N.zip``
    (``zipped``) or an unpacked ``sub-0N/`` folder.  Returns ``dest``."""
    p = DemoParams(**demo_params)
    dest.mkdir(parents=True, exist_ok=True)
    images = demo.write_images(dest, p)
    for s in subjects:
        folder = dest / f"sub-{s:02d}"
        # the demo's EEG files, without its ideal observer (slow, and not part of a release)
        train, test, _, _ = demo.simulate_subject(p, s, images)
        save_npy_dict(folder / "preprocessed_eeg_training.npy", train)
        save_npy_dict(folder / "preprocessed_eeg_test.npy", test)
        if zipped:
            data = subject_zip_bytes((folder / "preprocessed_eeg_training.npy").read_bytes(),
                                     (folder / "preprocessed_eeg_test.npy").read_bytes(), s)
            (dest / f"sub-{s:02d}.zip").write_bytes(data)
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
    return dest


def release_files(release_dir: Path, subjects=(1,)) -> dict[str, dict[str, bytes]]:
    """``{component: {path: bytes}}`` for the server, from :func:`write_release`'s folder."""
    images = {name: (release_dir / name).read_bytes()
              for name in ("image_metadata.npy", "training_images.zip", "test_images.zip")}
    images["licence/LICENSE.txt"] = b"CC-BY 4.0 (test copy)\n"  # a subfolder, as on OSF
    eeg = {f"sub-{s:02d}.zip": (release_dir / f"sub-{s:02d}.zip").read_bytes() for s in subjects}
    return {"anp5v": eeg, "y63gw": images}


# --------------------------------------------------------------------------------------
# The server


def _fid(node: str, path: str) -> str:
    return hashlib.sha1(f"{node}/{path}".encode()).hexdigest()[:24]


@dataclass
class Served:
    node: str
    path: str  # e.g. "sub-01.zip" or "licence/LICENSE.txt"
    data: bytes
    hashes: dict

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class FakeOsf:
    """The server's state: files, queued faults, and a log of every request."""

    files: dict = field(default_factory=dict)  # file id -> Served
    faults: dict = field(default_factory=dict)  # file name or "api" -> list of actions
    requests: list = field(default_factory=list)  # (path, Range header or None)
    page_size: int = 2
    ignore_range: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, node: str, path: str, data: bytes, hashes: dict | None = None) -> None:
        hashes = hashes or {"md5": hashlib.md5(data).hexdigest(),
                            "sha256": hashlib.sha256(data).hexdigest()}
        self.files[_fid(node, path)] = Served(node, path, data, hashes)

    def add_all(self, content: dict[str, dict[str, bytes]]) -> None:
        for node, files in content.items():
            for path, data in files.items():
                self.add(node, path, data)

    def fault(self, key: str, *actions: str) -> None:
        """Queue faults for the next requests of file ``key`` (its name) or of ``"api"``.

        Actions: ``"429"``, ``"500"``, ``"503"``, ``"404"`` (answer with that status),
        ``"cut"`` (send half the bytes, then close the connection), ``"corrupt"`` (flip one
        byte of the body), ``"ok"`` (no fault)."""
        with self.lock:
            self.faults.setdefault(key, []).extend(actions)

    def next_fault(self, key: str) -> str:
        with self.lock:
            queue = self.faults.get(key) or []
            return queue.pop(0) if queue else "ok"

    def downloads(self, name: str) -> list:
        """The Range header (or None) of every byte request for file ``name``."""
        ids = {fid for fid, f in self.files.items() if f.name == name}
        return [rng for path, rng in self.requests
                if path.startswith("/wb/") and path.rstrip("/").rsplit("/", 1)[-1] in ids]

    def nodes(self) -> set:
        return {f.node for f in self.files.values()}


class _Handler(ServesBytes, BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # -- helpers
    def _json(self, obj: dict, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.api+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int) -> None:
        body = json.dumps({"errors": [{"detail": f"status {status}"}]}).encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _file_json(self, fid: str, f: Served) -> dict:
        api, wb = f"{self.base}/v2", f"{self.base}/wb/v1/resources/{f.node}/providers/osfstorage"
        return {
            "id": fid, "type": "files",
            "attributes": {"kind": "file", "name": f.name, "path": f"/{fid}",
                           "materialized_path": f"/{f.path}", "provider": "osfstorage",
                           "size": len(f.data), "current_version": 1,
                           "date_created": "2022-01-01T00:00:00", "date_modified": None,
                           "extra": {"hashes": dict(f.hashes), "downloads": 0}},
            "links": {"info": f"{api}/files/{fid}/", "self": f"{api}/files/{fid}/",
                      "move": f"{wb}/{fid}", "upload": f"{wb}/{fid}", "delete": f"{wb}/{fid}",
                      "download": f"{self.base}/download/{fid}/",
                      "html": f"{self.base}/{f.node}/files/osfstorage/{fid}"},
            "relationships": {"node": {"links": {"related": {"href": f"{api}/nodes/{f.node}/"}}}},
        }

    def _folder_json(self, node: str, folder: str) -> dict:
        fid = _fid(node, folder + "/")
        api, wb = f"{self.base}/v2", f"{self.base}/wb/v1/resources/{node}/providers/osfstorage"
        return {
            "id": fid, "type": "files",
            "attributes": {"kind": "folder", "name": folder, "path": f"/{fid}/",
                           "materialized_path": f"/{folder}/", "provider": "osfstorage",
                           "size": None, "date_created": None, "date_modified": None,
                           "extra": {"hashes": {"md5": None, "sha256": None}}},
            "links": {"self": f"{api}/files/{fid}/", "move": f"{wb}/{fid}/",
                      "upload": f"{wb}/{fid}/", "delete": f"{wb}/{fid}/",
                      "new_folder": f"{wb}/{fid}/?kind=folder"},
            "relationships": {"files": {"links": {"related": {
                "href": f"{api}/nodes/{node}/files/osfstorage/{fid}/"}}}},
        }

    def _listing(self, node: str, folder_id: str | None, page: int) -> dict:
        state = self.server.state
        entries, folders = [], set()
        for fid, f in sorted(state.files.items(), key=lambda kv: kv[1].path):
            if f.node != node:
                continue
            parent = f.path.rsplit("/", 1)[0] if "/" in f.path else ""
            if folder_id is None:
                if parent == "":
                    entries.append(self._file_json(fid, f))
                elif parent not in folders:
                    folders.add(parent)
                    entries.append(self._folder_json(node, parent))
            elif _fid(node, parent + "/") == folder_id:
                entries.append(self._file_json(fid, f))
        size = state.page_size
        chunk = entries[(page - 1) * size: page * size]
        here = f"{self.base}/v2/nodes/{node}/files/osfstorage/" + (f"{folder_id}/" if folder_id
                                                                    else "")
        more = page * size < len(entries)
        return {"data": chunk, "links": {"first": None, "last": None, "prev": None,
                                         "next": f"{here}?page={page + 1}" if more else None,
                                         "meta": {"total": len(entries), "per_page": size}}}

    # -- routes
    def do_GET(self) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        path = "/" + "/".join(p for p in split.path.split("/") if p)
        with state.lock:
            state.requests.append((path, self.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[0] == "v2":
            fault = state.next_fault("api")
            if fault != "ok":
                return self._error(int(fault))
            return self._api(parts[1:], int(parse_qs(split.query).get("page", ["1"])[0]))
        if parts[0] == "download" and len(parts) == 2 and parts[1] in state.files:
            f = state.files[parts[1]]
            self.send_response(302)
            wb = f"{self.base}/wb/v1/resources/{f.node}/providers/osfstorage"
            self.send_header("Location", f"{wb}/{parts[1]}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if parts[0] == "wb" and parts[-1] in state.files:
            return self._bytes(state.files[parts[-1]])
        return self._error(404)

    def _api(self, parts: list[str], page: int) -> None:
        nodes = self.server.state.nodes()
        api = f"{self.base}/v2"
        if len(parts) == 2 and parts[0] == "guids" and parts[1] in nodes:
            return self._json({"data": {"id": parts[1], "type": "nodes"}})
        if len(parts) >= 2 and parts[0] == "nodes" and parts[1] in nodes:
            node = parts[1]
            if len(parts) == 2:
                return self._json({"data": {
                    "id": node, "type": "nodes",
                    "attributes": {"title": f"component {node}", "category": "data",
                                   "description": "", "date_created": "2022-01-01T00:00:00",
                                   "date_modified": "2022-01-01T00:00:00", "public": True},
                    "links": {"self": f"{api}/nodes/{node}/", "html": f"{self.base}/{node}/"},
                    "relationships": {"files": {"links": {"related": {
                        "href": f"{api}/nodes/{node}/files/"}}}}}})
            if parts[2:] == ["files"]:
                wb = f"{self.base}/wb/v1/resources/{node}/providers/osfstorage/"
                return self._json({"data": [{
                    "id": f"{node}:osfstorage", "type": "files",
                    "attributes": {"kind": "folder", "name": "osfstorage", "path": "/",
                                   "node": node, "provider": "osfstorage"},
                    "links": {"upload": wb, "new_folder": wb + "?kind=folder"},
                    "relationships": {"files": {"links": {"related": {
                        "href": f"{api}/nodes/{node}/files/osfstorage/"}}}}}],
                    "links": {"first": None, "last": None, "prev": None, "next": None}})
            if parts[2:4] == ["files", "osfstorage"] and len(parts) <= 5:
                return self._json(self._listing(node, parts[4] if len(parts) == 5 else None,
                                                page))
        return self._error(404)


class OsfServer(Loopback):
    """Run a :class:`FakeOsf` on 127.0.0.1 in a thread; ``api_url`` is its API root."""

    def __init__(self, state: FakeOsf | None = None):
        super().__init__(state or FakeOsf(), _Handler)
