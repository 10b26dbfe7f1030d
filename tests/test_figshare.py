"""Downloads from Figshare, for real, against a local stand-in (tests/figshare_server.py):
listing page by page, md5 verification, resume, retries, clear failures, and the raw
recordings of ``data.eeg: raw`` with ``data.source: things-eeg2`` through the download stage."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from pathlib import Path

import pytest

from conftest import load_stage, write_params
from figshare_server import FigshareServer
from loopback import closed_port, files_in
from neurovision import demo_raw, downloads, figshare, release
from neurovision.errors import DataError
from neurovision.params import DemoParams, FigshareParams

FAST = {"retries": 3, "backoff": 0.01, "timeout": 10.0}
ARTICLE = 18470912
#: Simulated raw recordings small enough to zip and serve in a second or two.
RAW_MINI = {"seed": 0, "n_train_concepts": 8, "train_images_per_concept": 2, "n_test": 6,
            "train_reps": 4, "test_reps": 8, "image_size": 32, "noise": 1.0}


def raw_archive_bytes(root: Path, subject: int, prefix: str | None = None) -> bytes:
    """``sub-0N.zip`` as the pipeline expects it: ``sub-0N/ses-0M/raw_eeg_*.npy``."""
    prefix = f"sub-{subject:02d}/" if prefix is None else prefix
    path = root / f"archive-{subject}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(prefix, b"")
        for rel in release.raw_layout():
            zf.write(root / f"sub-{subject}" / rel, prefix + rel)
    return path.read_bytes()


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("figshare")
    out = {}
    for s in (1, 2):
        demo_raw.write_subject(root / f"sub-{s}", DemoParams(**RAW_MINI), s)
        out[release.raw_archive(s)] = raw_archive_bytes(root, s)
    out["README.txt"] = b"raw EEG of THINGS-EEG2 (test copy)\n"
    return out


@pytest.fixture
def server(archives):
    with FigshareServer() as srv:
        for name, data in archives.items():
            srv.state.add(ARTICLE, name, data)
        yield srv


def params(server: FigshareServer, **over) -> FigshareParams:
    return FigshareParams(api_url=server.api_url, **{**FAST, **over})


NAME = "sub-01.zip"


def cache_of(tmp_path: Path) -> Path:
    return tmp_path / f"figshare-{ARTICLE}"


# --------------------------------------------------------------------------------------
# Listing and verified download


def test_listing_reads_every_page_with_names_sizes_md5s_and_links(server, archives):
    files = figshare.list_files(figshare.FigshareSession(params(server)), ARTICLE)
    assert [f.name for f in files] == list(archives)  # 3 files over 2 pages of 2
    assert server.state.listings() == 3  # pages 1, 2 and the empty page 3
    f = files[0]
    assert f.size == len(archives[NAME]) and f.md5 == hashlib.md5(archives[NAME]).hexdigest()
    assert f.url.startswith(server.api_url.removesuffix("v2/") + "ndownloader/files/")
    with pytest.raises(DataError, match=r"article 18470912: no file named 'sub-03.zip'; it "
                                        r"holds \['README.txt', 'sub-01.zip', 'sub-02.zip'\] "
                                        r"\(the raw recordings' file names on Figshare are "
                                        r"unverified.*data.source: local"):
        figshare.find_file(files, ARTICLE, "sub-03.zip")


def test_download_verifies_and_is_not_fetched_again(server, archives, tmp_path, monkeypatch):
    p = params(server)
    got = figshare.fetch_files(ARTICLE, [NAME], tmp_path, p, progress=False)
    path = cache_of(tmp_path) / NAME
    assert got == {NAME: path} and path.read_bytes() == archives[NAME]
    assert files_in(path.parent) == [NAME, f"{NAME}.verified.json"]
    assert len(server.state.downloads(NAME)) == 1  # through the redirect to the storage host
    with monkeypatch.context() as m:  # the stamp says it is verified: not even hashed again
        m.setattr(downloads, "file_hashes", lambda *a, **k: pytest.fail("hashed again"))
        figshare.fetch_files(ARTICLE, [NAME], tmp_path, p, progress=False)
    assert len(server.state.downloads(NAME)) == 1  # verified copy reused
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    figshare.fetch_files(ARTICLE, [NAME], tmp_path, p, progress=False)
    assert len(server.state.downloads(NAME)) == 2 and path.read_bytes() == archives[NAME]


def test_corrupted_byte_fails_naming_both_md5s_and_leaves_nothing(server, archives, tmp_path):
    server.state.fault(NAME, "corrupt")
    good = archives[NAME]
    with pytest.raises(DataError) as err:
        figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server), progress=False)
    msg = str(err.value)
    bad = bytearray(good)
    bad[len(good) // 2] ^= 0xFF
    assert "hash mismatch" in msg and hashlib.md5(good).hexdigest() in msg
    assert hashlib.md5(bytes(bad)).hexdigest() in msg
    assert files_in(cache_of(tmp_path)) == []
    figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server), progress=False)
    assert (cache_of(tmp_path) / NAME).read_bytes() == good


def test_connection_cut_mid_file_then_next_run_resumes(server, archives, tmp_path):
    good = archives[NAME]
    assert len(good) > 4 * figshare.CHUNK
    server.state.fault(NAME, "cut")
    with pytest.raises(DataError, match=r"interrupted.*data.figshare.retries: 0.*rerun to "
                                        r"resume"):
        figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server, retries=0),
                             progress=False)
    part = cache_of(tmp_path) / f"{NAME}.part"
    assert files_in(part.parent) == [f"{NAME}.part"]
    have = part.stat().st_size
    assert 0 < have < len(good) and part.read_bytes() == good[:have]
    figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server), progress=False)
    assert server.state.downloads(NAME) == [None, f"bytes={have}-"]
    assert (cache_of(tmp_path) / NAME).read_bytes() == good


def test_cuts_within_one_run_are_resumed(server, archives, tmp_path):
    server.state.fault(NAME, "cut", "cut")
    figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server), progress=False)
    ranges = server.state.downloads(NAME)
    assert len(ranges) == 3 and ranges[0] is None and all(r.startswith("bytes=")
                                                          for r in ranges[1:])
    assert (cache_of(tmp_path) / NAME).read_bytes() == archives[NAME]


def test_server_that_ignores_range_restarts_cleanly(server, archives, tmp_path):
    server.state.ignore_range = True
    server.state.fault(NAME, "cut")
    figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server), progress=False)
    assert len(server.state.downloads(NAME)) == 2
    assert (cache_of(tmp_path) / NAME).read_bytes() == archives[NAME]


def test_429_and_5xx_are_retried_with_backoff(server, archives, tmp_path):
    server.state.fault("api", "503")  # the listing is retried too
    server.state.fault(NAME, "500", "429", "502")
    t0 = time.monotonic()
    figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server, backoff=0.1), progress=False)
    # 0.1 (listing) + 0.1 + (429: Retry-After 0) + 0.4 (file): at least 0.5 s waited
    assert time.monotonic() - t0 >= 0.5
    assert len(server.state.downloads(NAME)) == 4
    assert (cache_of(tmp_path) / NAME).read_bytes() == archives[NAME]


def test_retries_are_bounded(server, tmp_path):
    server.state.fault(NAME, *["500"] * 10)
    with pytest.raises(DataError, match=r"Figshare: http://127.0.0.1:\d+/ndownloader/files/"
                                        r"\d+ answered HTTP 500.* 3 times \(data.figshare."
                                        r"retries: 2\)"):
        figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server, retries=2),
                             progress=False)
    assert len(server.state.downloads(NAME)) == 3 and files_in(cache_of(tmp_path)) == []


def test_404_is_a_clear_error_without_retries(server, tmp_path):
    server.state.fault(NAME, "404")
    with pytest.raises(DataError, match=r"Figshare: \S+/ndownloader/files/\d+ answered "
                                        r"HTTP 404"):
        figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server), progress=False)
    assert len(server.state.downloads(NAME)) == 1
    with pytest.raises(DataError, match=r"articles/123/files\?page=1&page_size=100 answered "
                                        r"HTTP 404.*check data.figshare.article"):
        figshare.fetch_files(123, [NAME], tmp_path, params(server), progress=False)


def test_unreachable_figshare_fails_at_once_with_what_to_do(tmp_path):
    p = FigshareParams(api_url=f"http://127.0.0.1:{closed_port()}/v2/", retries=5, backoff=5.0)
    t0 = time.monotonic()
    with pytest.raises(figshare.FigshareUnreachable) as err:
        figshare.fetch_files(ARTICLE, [NAME], tmp_path, p, progress=False)
    assert time.monotonic() - t0 < 3
    msg = str(err.value)
    assert "cannot reach Figshare" in msg and "Connection refused" in msg
    assert "data.source: demo" in msg and "data.source: local" in msg
    assert "data.eeg: preprocessed" in msg


def test_unreachable_figshare_uses_copies_verified_earlier(server, archives, tmp_path):
    figshare.fetch_files(ARTICLE, [NAME], tmp_path, params(server), progress=False)
    off = FigshareParams(api_url=f"http://127.0.0.1:{closed_port()}/v2/", **FAST)
    got = figshare.fetch_files(ARTICLE, [NAME], tmp_path, off, progress=False)
    assert got[NAME].read_bytes() == archives[NAME]
    with pytest.raises(figshare.FigshareUnreachable):
        figshare.fetch_files(ARTICLE, [NAME, "sub-02.zip"], tmp_path, off, progress=False)


@pytest.mark.parametrize("entry, match", [
    ({"computed_md5": ""}, r"sub-09.zip: Figshare reports no md5 \(computed_md5 ''\): cannot "
                           r"verify a download of it"),
    ({"supplied_md5": "0" * 32}, r"sub-09.zip: Figshare reports two different md5s"),
    ({"is_link_only": True}, r"sub-09.zip is only a link to elsewhere"),
    ({"size": None}, r"sub-09.zip: expected a size in bytes, got None"),
])
def test_listing_entries_that_cannot_be_verified_are_refused(entry, match, tmp_path):
    with FigshareServer() as srv:
        srv.state.add(ARTICLE, "sub-09.zip", b"whatever", **entry)
        with pytest.raises(DataError, match=match):
            figshare.fetch_files(ARTICLE, ["sub-09.zip"], tmp_path, params(srv),
                                 progress=False)
        assert srv.state.downloads("sub-09.zip") == []
    assert files_in(cache_of(tmp_path)) == []


# --------------------------------------------------------------------------------------
# The download stage with data.eeg: raw and data.source: things-eeg2


def stage(tmp_path: Path, server: FigshareServer, subject: int = 1) -> Path:
    prm = write_params(tmp_path / "params.yaml",
                       data={"source": "things-eeg2", "eeg": "raw", "subjects": [subject],
                             "local_dir": None, "demo": RAW_MINI,
                             "figshare": {"api_url": server.api_url, **FAST}})
    out = tmp_path / f"raw/sub-{subject}"
    load_stage("download").main(["--params", str(prm), "--subject", str(subject), "--out",
                                 str(out), "--ceiling", str(tmp_path / "ceiling.json"),
                                 "--cache", str(tmp_path / "downloads")])
    return out


def test_download_stage_fetches_the_subjects_archive_into_the_raw_layout(server, archives,
                                                                        tmp_path):
    out = stage(tmp_path, server, 2)
    assert release.missing_raw_files(out) == []
    with zipfile.ZipFile(cache_of(tmp_path / "downloads") / "sub-02.zip") as zf:
        for rel in release.raw_layout():
            assert (out / rel).read_bytes() == zf.read(f"sub-02/{rel}")
    ceiling = json.loads((tmp_path / "ceiling.json").read_text())
    assert ceiling["source"] == "things-eeg2" and ceiling["top1"] is None
    assert server.state.downloads("sub-01.zip") == []  # only the subject's own archive


def test_download_stage_with_an_archive_of_another_packaging_fails_clearly(server, tmp_path):
    server.state.add(ARTICLE, "sub-03.zip", _zip({"sub-03/raw_eeg_training.npy": b"x"}))
    with pytest.raises(DataError, match=r"sub-03.zip: expected one member ses-01/"
                                        r"raw_eeg_training.npy .*found none.*unverified"):
        stage(tmp_path, server, 3)
    assert not (tmp_path / "raw").exists() or files_in(tmp_path / "raw") == []


def _zip(members: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
