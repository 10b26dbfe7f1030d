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
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from neurovision.errors import DataError
from neurovision.io import atomic_path

log = logging.getLogger(__name__)

EEG_COMPONENT = "anp5v"
IMAGES_COMPONENT = "y63gw"
EEG_FILES = ("preprocessed_eeg_training.npy", "preprocessed_eeg_test.npy")
METADATA_FILE = "image_metadata.npy"
IMAGE_ARCHIVES = ("training_images.zip", "test_images.zip")
IMAGE_FILES = (METADATA_FILE, *IMAGE_ARCHIVES)
#: Shapes of the official release (image, repetition, channel, time), for the log.
RELEASE_SHAPES = {"preprocessed_eeg_training.npy": (16540, 4, 17, 100),
                  "preprocessed_eeg_test.npy": (200, 80, 17, 100)}
CHUNK = 1 << 20


def subject_folder(subject: int) -> str:
    """``sub-01`` ... ``sub-10``: the release's name for subject N."""
    return f"sub-{subject:02d}"


def subject_zip(subject: int) -> str:
    return f"{subject_folder(subject)}.zip"


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


# --------------------------------------------------------------------------------------
# Layout checks


def check_subject(folder: str | Path) -> dict[str, tuple[int, ...]]:
    """Check a subject's two EEG files (keys, axes, channels, times); return their shapes.

    Loads with the restricted unpickler (:func:`neurovision.io.load_npy_dict`), so a file
    that carries code is refused here, before any later stage reads it.
    """
    from neurovision.erp import load_epochs

    folder = Path(folder)
    epochs = {}
    for name in EEG_FILES:
        ep = load_epochs(folder / name)
        if ep.data.shape[0] < 2:
            raise DataError(f"{folder / name}: expected at least 2 images on axis 0, got shape "
                            f"{ep.data.shape} (image, repetition, channel, time)")
        epochs[name] = (ep.data.shape, ep.ch_names, ep.times)
        del ep
    (tr_shape, tr_ch, tr_t), (te_shape, te_ch, te_t) = epochs.values()
    if set(tr_ch) != set(te_ch):
        raise DataError(f"{folder}: training and test files have different channels: "
                        f"{list(tr_ch)} vs {list(te_ch)}")
    if len(tr_t) != len(te_t) or not np.allclose(tr_t, te_t):
        raise DataError(f"{folder}: training and test files have different 'times'")
    shapes = {name: shape for name, (shape, _, _) in epochs.items()}
    for name, shape in shapes.items():
        if shape != RELEASE_SHAPES[name]:
            log.info("%s: shape %s (the official release has %s)", folder / name, shape,
                     RELEASE_SHAPES[name])
    return shapes


def check_images(folder: str | Path) -> dict[str, int]:
    """Check ``image_metadata.npy`` and that each split's images are in its zip or folder."""
    from neurovision.embed import SPLIT_FOLDERS, ImageSource, image_members, load_metadata

    folder = Path(folder)
    meta = load_metadata(folder / METADATA_FILE)
    counts = {}
    for split, sub in SPLIT_FOLDERS.items():
        if (folder / f"{sub}.zip").is_file():
            open_archive(folder / f"{sub}.zip").close()
        source = ImageSource(folder, split)
        source.check(image_members(meta, split))
        counts[split] = len(meta[f"{split}_img_files"])
    return counts


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


def local_subject(local_dir: str | Path, subject: int, out_dir: str | Path,
                  progress: bool = True) -> None:
    """Bring subject N's two EEG files from a folder in the release layout into ``out_dir``."""
    root = Path(local_dir)
    folder = root / subject_folder(subject)
    archive = root / subject_zip(subject)
    if not root.is_dir():
        raise DataError(f"data.local_dir: {root} is not a directory (expected a folder in the "
                        f"release layout; see README, 'Real data (THINGS-EEG2)')")
    if all((folder / name).is_file() for name in EEG_FILES):
        for name in EEG_FILES:
            link_or_copy(folder / name, Path(out_dir) / name)
    elif archive.is_file():
        extract_subject(archive, subject, out_dir, progress=progress)
    else:
        raise DataError(f"{root}: subject {subject}: expected {folder.name}/{EEG_FILES[0]} and "
                        f"{folder.name}/{EEG_FILES[1]} (or {archive.name}) in the release "
                        f"layout; found {sorted(p.name for p in root.iterdir())[:20]}")


def local_images(local_dir: str | Path, out_dir: str | Path) -> None:
    """Bring the metadata and the two image sets (zips or folders) into ``out_dir``."""
    root, out = Path(local_dir), Path(out_dir)
    if not root.is_dir():
        raise DataError(f"data.local_dir: {root} is not a directory (expected a folder in the "
                        f"release layout; see README, 'Real data (THINGS-EEG2)')")
    if not (root / METADATA_FILE).is_file():
        raise DataError(f"{root}: expected {METADATA_FILE} (release layout); found "
                        f"{sorted(p.name for p in root.iterdir())[:20]}")
    link_or_copy(root / METADATA_FILE, out / METADATA_FILE)
    for archive in IMAGE_ARCHIVES:
        unpacked = root / archive.removesuffix(".zip")
        if (root / archive).is_file():
            link_or_copy(root / archive, out / archive)
        elif unpacked.is_dir():
            _link_tree(unpacked, out / unpacked.name)
        else:
            raise DataError(f"{root}: expected {archive} or an unpacked {unpacked.name}/ "
                            f"folder (release layout); found neither")
