"""The THINGS-EEG2 release: where its files are, safe extraction, and layout checks.

On OSF (project 3jk45) the preprocessed EEG is in component ``anp5v``, one zip per subject
(``sub-01.zip`` holds ``sub-01/preprocessed_eeg_training.npy`` and
``sub-01/preprocessed_eeg_test.npy``); component ``y63gw`` holds ``image_metadata.npy``,
``training_images.zip`` and ``test_images.zip``.  A folder "in the release layout" (the
``local`` source) holds the same files, the subject zips optionally unpacked::

    image_metadata.npy
    training_images.zip        (or an unpacked training_images/ folder)
    test_images.zip            (or an unpacked test_images/ folder)
    sub-01/preprocessed_eeg_training.npy   (or sub-01.zip)
    sub-01/preprocessed_eeg_test.npy
    ...

The raw recordings (``data.eeg: raw``) are on Figshare+ (article 18470912, where the OSF
raw component's wiki points); a folder in the *raw* layout holds, per subject, its four
sessions, unpacked or as the subject's archive::

    sub-01/ses-01/raw_eeg_training.npy   (or sub-01.zip holding them)
    sub-01/ses-01/raw_eeg_test.npy
    ...
    sub-01/ses-04/raw_eeg_test.npy

The Figshare file names and packaging are unverified (one public downloader unzips
``sub-XX.zip`` files from that article): :func:`raw_archive` names the file the pipeline
looks for and :func:`raw_members` maps the archive's members to the layout, and both fail,
listing what is there, when the article or an archive holds something else.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurovision.errors import DataError
from neurovision.io import atomic_path, load_npy_dict

log = logging.getLogger(__name__)

EEG_COMPONENT = "anp5v"
IMAGES_COMPONENT = "y63gw"
EEG_FILES = ("preprocessed_eeg_training.npy", "preprocessed_eeg_test.npy")
METADATA_FILE = "image_metadata.npy"
IMAGE_ARCHIVES = ("training_images.zip", "test_images.zip")
IMAGE_FILES = (METADATA_FILE, *IMAGE_ARCHIVES)
#: image_metadata.npy's keys (a pickled dict of lists of strings).
METADATA_KEYS = ("train_img_files", "train_img_concepts", "train_img_concepts_THINGS",
                 "test_img_files", "test_img_concepts", "test_img_concepts_THINGS")
#: The folder of each split's images inside its zip (or unpacked next to the metadata).
SPLIT_FOLDERS = {"train": "training_images", "test": "test_images"}
#: The 17 occipito-parietal channels of the preprocessed release; files may store them in
#: any order, so they are always selected by name.
RELEASE_CHANNELS = (
    "O1", "Oz", "O2", "PO7", "PO3", "POz", "PO4", "PO8",
    "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
)
#: Shapes of the official release (image, repetition, channel, time), for the log.
RELEASE_SHAPES = {"preprocessed_eeg_training.npy": (16540, 4, 17, 100),
                  "preprocessed_eeg_test.npy": (200, 80, 17, 100)}
CHUNK = 1 << 20

#: The Figshare+ article of the raw recordings (OSF component crxs4's wiki points there).
RAW_ARTICLE = 18470912
RAW_SESSIONS = (1, 2, 3, 4)
#: Each session's two raw files, by split.
RAW_FILES = {"train": "raw_eeg_training.npy", "test": "raw_eeg_test.npy"}


def subject_folder(subject: int) -> str:
    """``sub-01`` ... ``sub-10``: the release's name for subject N."""
    return f"sub-{subject:02d}"


def subject_zip(subject: int) -> str:
    return f"{subject_folder(subject)}.zip"


def session_folder(session: int) -> str:
    """``ses-01`` ... ``ses-04``: the raw layout's name for session N."""
    return f"ses-{session:02d}"


def raw_layout() -> list[str]:
    """The eight files of a subject's raw recordings, relative to its folder, in order."""
    return [f"{session_folder(s)}/{name}" for s in RAW_SESSIONS for name in RAW_FILES.values()]


def raw_archive(subject: int) -> str:
    """The name of subject N's archive of raw recordings on Figshare (unverified)."""
    return subject_zip(subject)


def missing_raw_files(folder: str | Path) -> list[str]:
    """The files of the raw layout that ``folder`` lacks (relative names)."""
    return [rel for rel in raw_layout() if not (Path(folder) / rel).is_file()]


# --------------------------------------------------------------------------------------
# Image metadata


def load_metadata(path: str | Path) -> dict[str, list[str]]:
    """``image_metadata.npy`` as lists of strings, checked for consistency."""
    raw = load_npy_dict(path, METADATA_KEYS)
    meta = {}
    for key in METADATA_KEYS:
        value = raw[key]
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(f"{path}: '{key}' must be a list of strings, got "
                            f"{type(raw[key]).__name__}")
        meta[key] = value
    for split in SPLIT_FOLDERS:
        n_files = len(meta[f"{split}_img_files"])
        n_conc = len(meta[f"{split}_img_concepts"])
        if n_files != n_conc or n_files == 0:
            raise DataError(f"{path}: '{split}_img_files' lists {n_files} images and "
                            f"'{split}_img_concepts' {n_conc}; expected equal, non-zero counts")
    return meta


def image_members(meta: dict[str, list[str]], split: str) -> list[str]:
    """Archive member names ``<split folder>/<concept>/<file>`` in metadata order."""
    folder = SPLIT_FOLDERS[split]
    return [f"{folder}/{c}/{f}" for c, f in zip(meta[f"{split}_img_concepts"],
                                               meta[f"{split}_img_files"])]


# --------------------------------------------------------------------------------------
# Safe zip extraction


def unsafe_member(name: str) -> bool:
    """A member name that could write outside the target folder (zip slip)."""
    if not name or "\x00" in name:
        return True
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in re.split(r"[\\/]", name)


def open_archive(path: str | Path) -> zipfile.ZipFile:
    """Open a zip, refusing it if any member name is absolute or climbs out with ``..``."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive: truncated or corrupt ({exc}); "
                        f"replace it with a complete copy") from exc
    bad = [i.filename for i in zf.infolist() if unsafe_member(i.filename)]
    if bad:
        zf.close()
        raise DataError(f"{path}: refused: {len(bad)} member(s) with an absolute path or '..' "
                        f"(zip slip), e.g. {bad[:3]}; nothing was extracted")
    return zf


def extract_members(archive: str | Path, wanted: dict[str, str | Path],
                    progress: bool = True) -> None:
    """Extract exactly the members named in ``wanted`` (member name -> destination file).

    Destinations come from the caller, never from member names; each is written to a
    temporary name and renamed when its CRC has been checked.
    """
    from tqdm.auto import tqdm

    archive = Path(archive)
    with open_archive(archive) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        missing = [m for m in wanted if m not in infos or infos[m].is_dir()]
        if missing:
            raise DataError(f"{archive}: expected member(s) {missing}; the archive holds "
                            f"{sorted(infos)[:10]}")
        for member, dest in wanted.items():
            info = infos[member]
            with atomic_path(dest) as tmp:
                try:
                    with zf.open(info) as src, open(tmp, "wb") as out, tqdm(
                            total=info.file_size, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=f"extract {Path(member).name}", disable=not progress) as bar:
                        while block := src.read(CHUNK):
                            out.write(block)
                            bar.update(len(block))
                except (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError,
                        NotImplementedError) as exc:
                    raise DataError(f"{archive}: member {member} is corrupt ({exc}); the "
                                    f"archive is damaged: replace it with a good copy") from exc
                if Path(tmp).stat().st_size != info.file_size:
                    raise DataError(f"{archive}: member {member} is truncated: "
                                    f"{Path(tmp).stat().st_size} of {info.file_size} bytes")
            log.info("extracted %s:%s -> %s", archive.name, member, dest)


def extract_subject(archive: str | Path, subject: int, out_dir: str | Path,
                    progress: bool = True) -> None:
    """The two preprocessed-EEG arrays of a release subject zip, into ``out_dir``."""
    folder = subject_folder(subject)
    extract_members(archive, {f"{folder}/{name}": Path(out_dir) / name for name in EEG_FILES},
                    progress=progress)


def raw_members(names: Sequence[str], subject: int, archive: str | Path) -> dict[str, str]:
    """Which member of a subject's raw archive is which file of the raw layout.

    Each layout file ``ses-0M/raw_eeg_*.npy`` must be exactly one member whose name is it or
    ends in ``/`` + it (leading folders such as ``sub-01/`` are allowed); a leading folder
    that names a subject must name this one.  Returns ``{member: layout name}``.
    """
    files = [n for n in names if not n.endswith("/")]
    out: dict[str, str] = {}
    for rel in raw_layout():
        found = [n for n in files if n == rel or n.endswith("/" + rel)]
        if len(found) != 1:
            got = "none" if not found else f"{len(found)}: {found[:4]}"
            raise DataError(f"{archive}: expected one member {rel} (or <folder>/{rel}) for "
                            f"subject {subject}, found {got}; the archive holds "
                            f"{sorted(files)[:12]} (the raw archives' packaging on Figshare is "
                            f"unverified: if it differs, unpack them into data.local_dir in the "
                            f"raw layout and use data.source: local)")
        member = found[0]
        others = [part for part in member.split("/")[:-2] if re.fullmatch(r"sub-\d+", part)]
        if others and others != [subject_folder(subject)]:
            raise DataError(f"{archive}: member {member} belongs to {others[-1]}, expected "
                            f"{subject_folder(subject)}'s recordings")
        out[member] = rel
    return out


def extract_raw_subject(archive: str | Path, subject: int, out_dir: str | Path,
                        progress: bool = True) -> None:
    """Subject N's eight raw files from its archive into ``out_dir`` in the raw layout."""
    with open_archive(archive) as zf:
        names = zf.namelist()
    members = raw_members(names, subject, archive)
    extract_members(archive, {m: Path(out_dir) / rel for m, rel in members.items()},
                    progress=progress)


# --------------------------------------------------------------------------------------
# Bringing files in: link when possible, else copy


def link_or_copy(src: str | Path, dest: str | Path) -> None:
    """Hard-link ``src`` to ``dest`` (no extra disk space); copy across file systems."""
    src, dest = Path(src), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)


def _link_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, copy_function=lambda s, d: link_or_copy(s, d))


def _local_root(local_dir: str | Path) -> Path:
    root = Path(local_dir)
    if not root.is_dir():
        raise DataError(f"data.local_dir: {root} is not a directory (expected a folder in the "
                        f"release layout; see README, 'Real data (THINGS-EEG2)')")
    return root


def _listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())[:20]


def local_subject_source(local_dir: str | Path, subject: int) -> Path:
    """Where subject N's EEG is in a folder in the release layout: its unpacked folder
    holding both files, or else its zip."""
    root = _local_root(local_dir)
    folder = root / subject_folder(subject)
    archive = root / subject_zip(subject)
    if all((folder / name).is_file() for name in EEG_FILES):
        return folder
    if archive.is_file():
        return archive
    raise DataError(f"{root}: subject {subject}: expected {folder.name}/{EEG_FILES[0]} and "
                    f"{folder.name}/{EEG_FILES[1]} (or {archive.name}) in the release "
                    f"layout; found {_listing(root)}")


def local_image_sources(local_dir: str | Path) -> list[Path]:
    """The metadata file and each split's zip (or unpacked folder) in a folder in the release
    layout."""
    root = _local_root(local_dir)
    if not (root / METADATA_FILE).is_file():
        raise DataError(f"{root}: expected {METADATA_FILE} (release layout); found "
                        f"{_listing(root)}")
    found = [root / METADATA_FILE]
    for archive in IMAGE_ARCHIVES:
        unpacked = root / archive.removesuffix(".zip")
        if (root / archive).is_file():
            found.append(root / archive)
        elif unpacked.is_dir():
            found.append(unpacked)
        else:
            raise DataError(f"{root}: expected {archive} or an unpacked {unpacked.name}/ "
                            f"folder (release layout); found neither")
    return found


def local_raw_subject_source(local_dir: str | Path, subject: int) -> Path:
    """Where subject N's raw recordings are in ``local_dir``: its folder holding all eight
    files of the raw layout, or else its archive."""
    root = _local_root(local_dir)
    folder = root / subject_folder(subject)
    archive = root / raw_archive(subject)
    missing = missing_raw_files(folder)
    if not missing:
        return folder
    if archive.is_file():
        return archive
    raise DataError(f"{root}: subject {subject}: expected the raw recordings {folder.name}/"
                    f"ses-01 .. ses-04 with {' and '.join(RAW_FILES.values())} (or "
                    f"{archive.name}); missing {folder.name}/{missing[0]}"
                    + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))


def local_raw_subject(local_dir: str | Path, subject: int, out_dir: str | Path,
                      progress: bool = True) -> None:
    """Bring subject N's raw recordings from ``local_dir`` into ``out_dir`` (raw layout)."""
    source = local_raw_subject_source(local_dir, subject)
    if source.is_dir():
        for rel in raw_layout():
            link_or_copy(source / rel, Path(out_dir) / rel)
    else:
        extract_raw_subject(source, subject, out_dir, progress=progress)


def check_local_layout(local_dir: str | Path, subjects: Sequence[int],
                       eeg: str = "preprocessed") -> None:
    """Fail, naming what is missing, unless ``local_dir`` holds the images and every
    subject's EEG (``eeg``: the preprocessed files, or the raw recordings) in the release
    layout (only names are checked: nothing is read)."""
    local_image_sources(local_dir)
    for subject in subjects:
        if eeg == "raw":
            local_raw_subject_source(local_dir, subject)
        else:
            local_subject_source(local_dir, subject)


def local_subject(local_dir: str | Path, subject: int, out_dir: str | Path,
                  progress: bool = True) -> None:
    """Bring subject N's two EEG files from a folder in the release layout into ``out_dir``."""
    source = local_subject_source(local_dir, subject)
    if source.is_dir():
        for name in EEG_FILES:
            link_or_copy(source / name, Path(out_dir) / name)
    else:
        extract_subject(source, subject, out_dir, progress=progress)


def local_images(local_dir: str | Path, out_dir: str | Path) -> None:
    """Bring the metadata and the two image sets (zips or folders) into ``out_dir``."""
    out = Path(out_dir)
    for source in local_image_sources(local_dir):
        if source.is_dir():
            _link_tree(source, out / source.name)
        else:
            link_or_copy(source, out / source.name)
