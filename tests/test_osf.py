"""Downloads from OSF, for real, against a local stand-in of the OSF API (tests/osf_server.py):
listing with osfclient, hash verification, resume, retries, clear failures, and the
things-eeg2 source through the stages and through `dvc repro`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_project, dvc, load_stage, project_cache, run_queue, write_params
from loopback import closed_port, files_in
from neurovision import osf
from neurovision.errors import DataError
from neurovision.params import OsfParams
from osf_server import MINI_DEMO, OsfServer, release_files, subject_zip_bytes, write_release

FAST = {"retries": 3, "backoff": 0.01, "timeout": 10.0, "min_interval": 0.0}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict:
    """The tiny release's files: {component: {path: bytes}}."""
    root = write_release(tmp_path_factory.mktemp("release"), MINI_DEMO, subjects=(1, 2))
    return release_files(root, subjects=(1, 2))


@pytest.fixture
def server(release):
    with OsfServer() as srv:
        srv.state.add_all(release)
        yield srv


def params(server: OsfServer, **over) -> OsfParams:
    return OsfParams(api_url=server.api_url, **{**FAST, **over})


# --------------------------------------------------------------------------------------
# Listing and verified download


def test_listing_with_osfclient_gives_names_sizes_hashes_and_links(server, release):
    files = osf.list_files(osf.OsfSession(params(server)), "y63gw")
    by_name = {f.name: f for f in files}
    # four files over two pages, one of them in a subfolder (osfclient recurses)
    assert set(by_name) == {"image_metadata.npy", "training_images.zip", "test_images.zip",
                            "LICENSE.txt"}
    assert by_name["LICENSE.txt"].path == "/licence/LICENSE.txt"
    zipped = release["y63gw"]["test_images.zip"]
    f = by_name["test_images.zip"]
    assert f.size == len(zipped) and f.path == "/test_images.zip"
    import hashlib
    assert f.hashes == {"md5": hashlib.md5(zipped).hexdigest(),
                        "sha256": hashlib.sha256(zipped).hexdigest()}
    assert f.url.startswith(server.api_url.removesuffix("v2/"))
    with pytest.raises(DataError, match=r"no file named 'sub-11.zip'.*sub-01.zip"):
        osf.find_file(osf.list_files(osf.OsfSession(params(server)), "anp5v"), "anp5v",
                      "sub-11.zip")


def test_download_verifies_and_is_not_fetched_again(server, release, tmp_path):
    p = params(server)
    got = osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, p, progress=False)
    path = tmp_path / "anp5v" / "sub-01.zip"
    assert got == {"sub-01.zip": path}
    assert path.read_bytes() == release["anp5v"]["sub-01.zip"]
    assert files_in(path.parent) == ["sub-01.zip", "sub-01.zip.verified.json"]
    assert len(server.state.downloads("sub-01.zip")) == 1
    osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, p, progress=False)
    assert len(server.state.downloads("sub-01.zip")) == 1  # verified copy reused
    # a copy changed behind our back is checked, found wrong, and downloaded again
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, p, progress=False)
    assert len(server.state.downloads("sub-01.zip")) == 2
    assert path.read_bytes() == release["anp5v"]["sub-01.zip"]


def test_corrupted_byte_fails_naming_both_hashes_and_leaves_nothing(server, release, tmp_path):
    import hashlib
    server.state.fault("sub-01.zip", "corrupt")
    good = release["anp5v"]["sub-01.zip"]
    with pytest.raises(DataError) as err:
        osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server), progress=False)
    msg = str(err.value)
    assert "hash mismatch" in msg and hashlib.sha256(good).hexdigest() in msg
    bad = bytearray(good)
    bad[len(good) // 2] ^= 0xFF
    assert hashlib.sha256(bytes(bad)).hexdigest() in msg  # the hash of what arrived
    assert files_in(tmp_path / "anp5v") == []  # no file, no .part, no stamp
    # the next run downloads a good copy
    osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server), progress=False)
    assert (tmp_path / "anp5v" / "sub-01.zip").read_bytes() == good


def test_connection_cut_mid_file_then_next_run_resumes(server, release, tmp_path):
    good = release["anp5v"]["sub-01.zip"]
    assert len(good) > 4 * osf.CHUNK  # big enough that a cut leaves a partial file
    server.state.fault("sub-01.zip", "cut")
    with pytest.raises(DataError, match=r"interrupted.*rerun to resume"):
        osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server, retries=0),
                        progress=False)
    part = tmp_path / "anp5v" / "sub-01.zip.part"
    assert files_in(part.parent) == ["sub-01.zip.part"]
    have = part.stat().st_size
    assert 0 < have < len(good) and part.read_bytes() == good[:have]
    osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server), progress=False)
    assert server.state.downloads("sub-01.zip") == [None, f"bytes={have}-"]
    assert (tmp_path / "anp5v" / "sub-01.zip").read_bytes() == good
    assert files_in(part.parent) == ["sub-01.zip", "sub-01.zip.verified.json"]


def test_cuts_within_one_run_are_resumed(server, release, tmp_path):
    server.state.fault("sub-02.zip", "cut", "cut")
    osf.fetch_files("anp5v", ["sub-02.zip"], tmp_path, params(server), progress=False)
    ranges = server.state.downloads("sub-02.zip")
    assert len(ranges) == 3 and ranges[0] is None and all(r.startswith("bytes=")
                                                          for r in ranges[1:])
    assert (tmp_path / "anp5v" / "sub-02.zip").read_bytes() == release["anp5v"]["sub-02.zip"]


def test_server_that_ignores_range_restarts_cleanly(server, release, tmp_path):
    server.state.ignore_range = True
    server.state.fault("sub-01.zip", "cut")
    osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server), progress=False)
    assert len(server.state.downloads("sub-01.zip")) == 2
    assert (tmp_path / "anp5v" / "sub-01.zip").read_bytes() == release["anp5v"]["sub-01.zip"]


def test_429_and_500_are_retried_with_backoff(server, release, tmp_path):
    server.state.fault("api", "503")  # the listing is retried too
    server.state.fault("sub-01.zip", "429", "500", "429")
    t0 = time.monotonic()
    osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server, backoff=0.1),
                    progress=False)
    # backoff 0.1 s doubling: 0.1 (api) + 0.1 + 0.2 + 0.4 (file); Retry-After: 0 on 429
    # overrides the backoff, so at least 0.1 + 0.2 s were waited
    assert time.monotonic() - t0 >= 0.3
    assert len(server.state.downloads("sub-01.zip")) == 4
    assert (tmp_path / "anp5v" / "sub-01.zip").read_bytes() == release["anp5v"]["sub-01.zip"]


def test_retries_are_bounded(server, tmp_path):
    server.state.fault("sub-01.zip", *["500"] * 10)
    with pytest.raises(DataError, match=r"answered HTTP 500.* 3 times \(data.osf.retries: 2\)"):
        osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server, retries=2),
                        progress=False)
    assert len(server.state.downloads("sub-01.zip")) == 3
    assert files_in(tmp_path / "anp5v") == []


def test_404_is_a_clear_error_without_retries(server, tmp_path):
    server.state.fault("sub-01.zip", "404")
    with pytest.raises(DataError, match=r"OSF: http://127.0.0.1:\d+/wb/\S+ answered HTTP 404"):
        osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server), progress=False)
    assert len(server.state.downloads("sub-01.zip")) == 1
    with pytest.raises(DataError, match=r"guids/zzzzz/ answered HTTP 404"):
        osf.fetch_files("zzzzz", ["sub-01.zip"], tmp_path, params(server), progress=False)


def test_unreachable_osf_fails_at_once_with_what_to_do(tmp_path):
    p = OsfParams(api_url=f"http://127.0.0.1:{closed_port()}/v2/", retries=5, backoff=5.0)
    t0 = time.monotonic()
    with pytest.raises(osf.OsfUnreachable) as err:
        osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, p, progress=False)
    assert time.monotonic() - t0 < 3
    msg = str(err.value)
    assert "cannot reach OSF" in msg and "Connection refused" in msg
    assert "data.source: demo" in msg and "data.source: local" in msg


def test_unreachable_osf_uses_copies_verified_earlier(server, release, tmp_path):
    osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, params(server), progress=False)
    off = OsfParams(api_url=f"http://127.0.0.1:{closed_port()}/v2/", **FAST)
    got = osf.fetch_files("anp5v", ["sub-01.zip"], tmp_path, off, progress=False)
    assert got["sub-01.zip"].read_bytes() == release["anp5v"]["sub-01.zip"]
    with pytest.raises(osf.OsfUnreachable):  # not everything is there: fail
        osf.fetch_files("anp5v", ["sub-01.zip", "sub-02.zip"], tmp_path, off, progress=False)


# --------------------------------------------------------------------------------------
# The stages with data.source: things-eeg2


def stage_params(tmp_path: Path, server: OsfServer) -> Path:
    return write_params(tmp_path / "params.yaml",
                        data={"source": "things-eeg2", "subjects": [1], "local_dir": None,
                              "demo": MINI_DEMO, "osf": {"api_url": server.api_url, **FAST}})


def test_download_stages_fetch_extract_and_check(server, tmp_path):
    prm = stage_params(tmp_path, server)
    cache = tmp_path / "downloads"
    load_stage("download").main(["--params", str(prm), "--subject", "1", "--out",
                                 str(tmp_path / "raw/sub-1"), "--ceiling",
                                 str(tmp_path / "ceiling.json"), "--cache", str(cache)])
    assert files_in(tmp_path / "raw/sub-1") == ["preprocessed_eeg_test.npy",
                                                "preprocessed_eeg_training.npy"]
    ceiling = json.loads((tmp_path / "ceiling.json").read_text())
    assert ceiling["source"] == "things-eeg2" and ceiling["subject"] == 1
    assert "top1" in ceiling and ceiling["top1"] is None and ceiling["top5"] is None
    assert all(v is None for k, v in ceiling.items() if k not in ("source", "subject"))
    assert files_in(cache / "anp5v") == ["sub-01.zip", "sub-01.zip.verified.json"]

    load_stage("download_images").main(["--params", str(prm), "--out",
                                        str(tmp_path / "raw/images"), "--cache", str(cache)])
    out = tmp_path / "raw/images"
    assert files_in(out) == ["image_metadata.npy", "test_images.zip", "training_images.zip"]
    for name in files_in(out):  # hard links to the verified downloads: no extra disk space
        assert os.path.samefile(out / name, cache / "y63gw" / name)


def test_malicious_pickle_through_the_download_is_refused_and_does_not_run(server, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array({"preprocessed_eeg_data": Evil(), "ch_names": [], "times": []},
                           dtype=object), allow_pickle=True)
    good = tmp_path / "good.npy"
    np.save(good, np.array({"x": 1}, dtype=object), allow_pickle=True)
    server.state.add("anp5v", "sub-03.zip",
                     subject_zip_bytes(evil.read_bytes(), good.read_bytes(), 3))
    prm = stage_params(tmp_path, server)
    out = tmp_path / "raw/sub-3"
    with pytest.raises(DataError, match=r"refused to load global '(posix|os|nt)\.system'"):
        load_stage("download").main(["--params", str(prm), "--subject", "3", "--out", str(out),
                                     "--ceiling", str(tmp_path / "c.json"), "--cache",
                                     str(tmp_path / "dl")])
    assert not marker.exists()  # the command never ran
    assert not out.exists() and not (tmp_path / "c.json").exists()
    assert files_in(tmp_path / "raw") == []  # no temporary folder left either


def test_download_stage_without_osf_fails_in_seconds_with_one_clear_line(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    prm = write_params(tmp_path / "params.yaml",
                       data={"source": "things-eeg2", "subjects": [1], "local_dir": None,
                             "demo": MINI_DEMO,
                             "osf": {"api_url": f"http://127.0.0.1:{closed_port()}/v2/"}})
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "stages/download.py"), "--params", str(prm),
                           "--subject", "1", "--out", str(tmp_path / "out"), "--ceiling",
                           str(tmp_path / "c.json"), "--cache", str(tmp_path / "dl")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert time.monotonic() - t0 < 20  # mostly the interpreter importing numpy and friends
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "cannot reach OSF" in errors[0] and "data.source: demo" in errors[0]
    assert "data.source: local" in errors[0]


@pytest.mark.integration
def test_things_eeg2_source_feeds_dvc_repro(server, tmp_path):
    root = copy_project(tmp_path / "project")
    write_params(root / "params.yaml",
                 data={"source": "things-eeg2", "subjects": [1], "local_dir": None,
                       "demo": MINI_DEMO, "osf": {"api_url": server.api_url, **FAST}},
                 embed={"pretrained": "none"}, pca={"n_components": 8})
    dvc(root, "repro")
    metrics = json.loads((root / "metrics/retrieval.json").read_text())
    assert metrics["n_test"] == MINI_DEMO["n_test"] and 0 <= metrics["top1"] <= 1
    assert "ideal_top1" not in json.loads(
        (root / "metrics/subjects/sub-1/details.json").read_text())  # no ceiling on real data
    # verified downloads in the shared cache, outside the workspace
    assert (project_cache(root) / "downloads/anp5v/sub-01.zip.verified.json").is_file()
    assert not (root / "data/downloads").exists()
    fetched = {name: len(server.state.downloads(name))
               for name in ("sub-01.zip", "image_metadata.npy", "training_images.zip",
                            "test_images.zip")}
    assert set(fetched.values()) == {1} and server.state.downloads("sub-02.zip") == []
    # a forced rerun of the downloads reuses the verified files: nothing is fetched again
    out = dvc(root, "repro", "-f", "download_images", "download@1").stdout
    assert "Running stage 'download@1'" in out
    assert {name: len(server.state.downloads(name)) for name in fetched} == fetched
    assert "up to date" in dvc(root, "repro").stdout
    # a queued experiment (its own copy of the workspace) that reruns the downloads finds
    # them in the shared cache: nothing is fetched again
    for args in (("add", "-A"), ("commit", "-qm", "baseline")):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    dvc(root, "exp", "run", "--queue", "-n", "retries", "-S", "data.osf.retries=2")
    _, status = run_queue(root)
    assert "Success" in status, status
    log = dvc(root, "queue", "logs", "retries").stdout
    assert "Running stage 'download@1'" in log and "Running stage 'download_images'" in log
    assert {name: len(server.state.downloads(name)) for name in fetched} == fetched


def test_file_without_hashes_is_not_downloaded(server, tmp_path):
    server.state.add("anp5v", "sub-04.zip", b"whatever", hashes={"md5": None, "sha256": None})
    with pytest.raises(DataError, match=r"OSF reports no md5 or sha256 for anp5v/sub-04.zip"):
        osf.fetch_files("anp5v", ["sub-04.zip"], tmp_path, params(server), progress=False)
    assert server.state.downloads("sub-04.zip") == [] and files_in(tmp_path / "anp5v") == []


@pytest.mark.parametrize("attempt, retry_after, expected", [
    (0, None, 2.0), (2, None, 8.0), (10, None, 60.0),  # doubling, capped at 60 s
    (0, "7", 7.0), (0, "3600", 60.0), (1, "not a date", 4.0),
    (0, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: no wait
])
def test_backoff_doubles_and_honours_retry_after(attempt, retry_after, expected):
    assert osf._backoff(OsfParams(backoff=2.0), attempt, retry_after) == expected
