"""The release's files: safe zip extraction, layout checks, and the `local` source."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_project, dvc, load_stage, write_params
from neurovision import release
from neurovision.erp import check_subject
from neurovision.errors import DataError
from neurovision.images import check_images
from neurovision.io import save_npy_dict
from osf_server import MINI_DEMO, subject_zip_bytes, write_release

EEG = release.EEG_FILES


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    """A tiny release folder with an unpacked sub-01/ and a zipped sub-02.zip."""
    root = write_release(tmp_path_factory.mktemp("rel"), MINI_DEMO, subjects=(1,), zipped=False)
    zipped = write_release(tmp_path_factory.mktemp("rel2"), MINI_DEMO, subjects=(2,))
    shutil.copy(zipped / "sub-02.zip", root / "sub-02.zip")
    return root


def eeg_bytes(root: Path) -> tuple[bytes, bytes]:
    return tuple((root / "sub-01" / name).read_bytes() for name in EEG)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------
# Safe extraction


def test_extracts_only_the_two_arrays(unpacked, tmp_path):
    train, test = eeg_bytes(unpacked)
    archive = tmp_path / "sub-01.zip"
    archive.write_bytes(subject_zip_bytes(train, test, 1, extra={
        "sub-01/notes.txt": b"x", "other/big.bin": b"\0" * 1000}))
    out = tmp_path / "out"
    release.extract_subject(archive, 1, out, progress=False)
    assert files_in(out) == sorted(EEG)
    assert (out / EEG[0]).read_bytes() == train and (out / EEG[1]).read_bytes() == test
    assert files_in(tmp_path) == ["out", "sub-01.zip"]  # nothing else was written


@pytest.mark.parametrize("name", ["../evil.txt", "sub-01/../../evil.txt", "/tmp/evil.txt",
                                  "..\\evil.txt", "C:/evil.txt", "C:evil.txt"])
def test_zip_slip_members_are_refused(unpacked, tmp_path, name):
    assert release.unsafe_member(name)
    train, test = eeg_bytes(unpacked)
    archive = tmp_path / "sub-01.zip"
    archive.write_bytes(subject_zip_bytes(train, test, 1, extra={name: b"gotcha"}))
    out = tmp_path / "a" / "b"
    with pytest.raises(DataError, match=r"refused.*absolute path or '\.\.' \(zip slip\)"):
        release.extract_subject(archive, 1, out, progress=False)
    assert not out.exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_safe_member_names_are_accepted():
    for name in ("sub-01/preprocessed_eeg_test.npy", "sub-01/", "a/b..c/d", "..a/x"):
        assert not release.unsafe_member(name), name


def test_crc_error_is_clear_and_leaves_no_file(tmp_path):
    payload = bytes(range(256)) * 64
    archive = tmp_path / "sub-01.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for name in EEG:
            zf.writestr(f"sub-01/{name}", payload)
    data = bytearray(archive.read_bytes())
    i = data.find(payload[:512])  # first member's stored bytes
    data[i + 100] ^= 0xFF
    archive.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match=r"sub-01.zip: member sub-01/preprocessed_eeg_training"
                                        r"\.npy is corrupt \(Bad CRC-32"):
        release.extract_subject(archive, 1, out, progress=False)
    assert files_in(out) == []


@pytest.mark.parametrize("keep", [0.5, 0.95, 0.0])
def test_truncated_archive_is_clear(unpacked, tmp_path, keep):
    data = subject_zip_bytes(*eeg_bytes(unpacked), 1)
    archive = tmp_path / "sub-01.zip"
    archive.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match=r"sub-01.zip: not a readable zip archive: truncated or "
                                        r"corrupt"):
        release.extract_subject(archive, 1, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_member_names_what_is_there(tmp_path):
    archive = tmp_path / "sub-01.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("sub-02/preprocessed_eeg_training.npy", b"x")
    with pytest.raises(DataError, match=r"expected member\(s\) \['sub-01/preprocessed_eeg_"
                                        r"training.npy', 'sub-01/preprocessed_eeg_test.npy'\]"
                                        r".*sub-02/preprocessed_eeg_training.npy"):
        release.extract_subject(archive, 1, tmp_path / "out", progress=False)


# --------------------------------------------------------------------------------------
# Layout checks


def test_check_subject_reads_shapes_safely(unpacked):
    shapes = check_subject(unpacked / "sub-01")
    n_train = MINI_DEMO["n_train_concepts"] * MINI_DEMO["train_images_per_concept"]
    assert shapes == {EEG[0]: (n_train, MINI_DEMO["train_reps"], 17, 100),
                      EEG[1]: (MINI_DEMO["n_test"], MINI_DEMO["test_reps"], 17, 100)}


def _subject(folder: Path, train: dict, test: dict) -> Path:
    save_npy_dict(folder / EEG[0], train)
    save_npy_dict(folder / EEG[1], test)
    return folder


def _eeg(n_img=3, n_rep=2, ch=("O1", "Oz", "O2"), n_t=5) -> dict:
    return {"preprocessed_eeg_data": np.zeros((n_img, n_rep, len(ch), n_t)),
            "ch_names": list(ch), "times": np.arange(n_t) / 100}


@pytest.mark.parametrize("train, test, match", [
    ({k: v for k, v in _eeg().items() if k != "times"}, _eeg(),
     r"preprocessed_eeg_training.npy: missing key\(s\) \['times'\]"),
    (_eeg(), {**_eeg(), "ch_names": ["O1", "Oz"]},
     r"preprocessed_eeg_test.npy: 'ch_names' lists 2 channels"),
    (_eeg(), {**_eeg(), "preprocessed_eeg_data": np.zeros((3, 2, 3))},
     r"preprocessed_eeg_test.npy: .*4 axes"),
    (_eeg(), _eeg(ch=("O1", "Oz", "Pz")), r"different channels"),
    (_eeg(), {**_eeg(), "times": np.arange(5) / 50}, r"different 'times'"),
    (_eeg(n_img=1), _eeg(), r"at least 2 images"),
])
def test_check_subject_names_what_is_wrong(tmp_path, train, test, match):
    with pytest.raises(DataError, match=match):
        check_subject(_subject(tmp_path, train, test))


def test_local_subject_links_unpacked_files(unpacked, tmp_path):
    out = tmp_path / "sub-1"
    release.local_subject(unpacked, 1, out, progress=False)
    for name in EEG:
        assert os.path.samefile(out / name, unpacked / "sub-01" / name)  # linked, not copied


def test_local_subject_extracts_a_subject_zip(unpacked, tmp_path):
    out = tmp_path / "sub-2"
    release.local_subject(unpacked, 2, out, progress=False)
    assert files_in(out) == sorted(EEG)
    assert check_subject(out)[EEG[1]][0] == MINI_DEMO["n_test"]


def test_local_subject_missing_names_the_layout(unpacked, tmp_path):
    with pytest.raises(DataError, match=r"subject 3: expected sub-03/preprocessed_eeg_training"
                                        r".npy and sub-03/preprocessed_eeg_test.npy \(or "
                                        r"sub-03.zip\) in the release layout"):
        release.local_subject(unpacked, 3, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match=r"data.local_dir: .* is not a directory"):
        release.local_subject(tmp_path / "nowhere", 1, tmp_path / "out", progress=False)


def test_local_images_from_zips_or_unpacked_folders(unpacked, tmp_path):
    out = tmp_path / "zips"
    release.local_images(unpacked, out)
    assert files_in(out) == ["image_metadata.npy", "test_images.zip", "training_images.zip"]
    counts = check_images(out)
    assert counts == {"train": MINI_DEMO["n_train_concepts"] * MINI_DEMO[
        "train_images_per_concept"], "test": MINI_DEMO["n_test"]}
    # the same release with the image zips unpacked
    other = tmp_path / "unzipped"
    other.mkdir()
    shutil.copy(unpacked / "image_metadata.npy", other)
    for archive in release.IMAGE_ARCHIVES:
        with zipfile.ZipFile(unpacked / archive) as zf:
            zf.extractall(other)  # our own test archive
    out2 = tmp_path / "from-folders"
    release.local_images(other, out2)
    assert check_images(out2) == counts
    # an image listed in the metadata but absent is found before any embedding
    victim = next((out2 / "test_images").rglob("*.jpg"))
    victim.unlink()
    with pytest.raises(DataError, match=r"image_metadata.npy.*missing.*" + victim.name):
        check_images(out2)


def test_image_zip_with_unsafe_member_is_refused(unpacked, tmp_path):
    root = tmp_path / "rel"
    shutil.copytree(unpacked, root)
    with zipfile.ZipFile(root / "test_images.zip", "a") as zf:
        zf.writestr("../../outside.jpg", b"x")
    out = tmp_path / "out"
    release.local_images(root, out)
    with pytest.raises(DataError, match=r"test_images.zip: refused"):
        check_images(out)


# --------------------------------------------------------------------------------------
# data.source: local through the stages and through dvc


def local_params(path: Path, local_dir: Path, **sections) -> Path:
    return write_params(path, data={"source": "local", "subjects": [1, 2],
                                    "local_dir": str(local_dir), "demo": MINI_DEMO}, **sections)


def test_local_source_download_stages(unpacked, tmp_path):
    prm = local_params(tmp_path / "params.yaml", unpacked)
    for s in (1, 2):
        load_stage("download").main(["--params", str(prm), "--subject", str(s), "--out",
                                     str(tmp_path / f"raw/sub-{s}"), "--ceiling",
                                     str(tmp_path / f"ceiling/sub-{s}.json"),
                                     "--cache", str(tmp_path / "dl")])
        assert files_in(tmp_path / f"raw/sub-{s}") == sorted(EEG)
        ceiling = json.loads((tmp_path / f"ceiling/sub-{s}.json").read_text())
        assert ceiling["source"] == "local" and ceiling["top1"] is None
    load_stage("download_images").main(["--params", str(prm), "--out",
                                        str(tmp_path / "raw/images")])
    assert files_in(tmp_path / "raw/images") == ["image_metadata.npy", "test_images.zip",
                                                 "training_images.zip"]
    assert not (tmp_path / "dl").exists()  # the local source downloads nothing


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                       stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.integration
def test_local_source_runs_the_whole_pipeline(unpacked, tmp_path):
    local = tmp_path / "release"  # its own copy: the test checks nothing in it changes
    shutil.copytree(unpacked, local)
    before = _snapshot(local)
    root = copy_project(tmp_path / "project")
    local_params(root / "params.yaml", local, embed={"pretrained": "none"},
                 pca={"n_components": 8})
    dvc(root, "repro")
    metrics = json.loads((root / "metrics/retrieval.json").read_text())
    assert metrics["n_test"] == MINI_DEMO["n_test"] and 0 <= metrics["top1"] <= 1
    for s in (1, 2):
        sub = json.loads((root / f"metrics/subjects/sub-{s}/details.json").read_text())
        assert "ideal_top1" not in sub
    assert "up to date" in dvc(root, "repro").stdout
    assert _snapshot(local) == before  # DVC never wrote through the hard links
