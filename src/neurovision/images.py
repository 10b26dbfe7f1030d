"""Reading the release's images: one reader for the stages, the bundle and the explorer.

A split's images live in its zip (``training_images.zip``, ``test_images.zip``) or in the
unpacked folder of the same name; :class:`ImageSource` reads either by the member name
``<split folder>/<concept>/<file>`` that :func:`neurovision.release.image_members` derives
from the metadata, and :func:`decode_image` turns the bytes into 8-bit RGB.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from neurovision.errors import DataError
from neurovision.release import (
    METADATA_FILE,
    SPLIT_FOLDERS,
    image_members,
    load_metadata,
    open_archive,
)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB: grey, CMYK, palette, 16-bit and alpha images included.

    Transparent pixels are composited onto white; 16/32-bit grey is rescaled to 8 bits.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("P", "LA", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return img.convert("RGB")


def decode_image(data: bytes, name: str) -> Image.Image:
    """Decode image bytes into RGB; a corrupt image is a :class:`DataError` naming it."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: cannot decode image: expected a readable image, got "
                        f"{len(data)} bytes that PIL cannot decode ({exc})") from exc


class ImageSource:
    """Images of one split, from a release zip or an unpacked folder, by member name."""

    def __init__(self, root: str | Path, split: str):
        root = Path(root)
        folder = SPLIT_FOLDERS[split]
        self.zip_path = root / f"{folder}.zip"
        self.dir_path = root
        if self.zip_path.is_file():
            self.kind = "zip"
        elif (root / folder).is_dir():
            self.kind = "dir"
        else:
            raise DataError(f"{root}: expected {folder}.zip or a {folder}/ folder, found neither")
        self._zip: zipfile.ZipFile | None = None
        self._pid: int | None = None

    @property
    def location(self) -> Path:
        """The zip file or the folder the images are read from."""
        return self.zip_path if self.kind == "zip" else self.dir_path

    def label(self, member: str) -> str:
        """How messages name one image: ``<zip>:<member>`` or the loose file's path."""
        return f"{self.zip_path}:{member}" if self.kind == "zip" else str(self.dir_path / member)

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():  # one handle per worker process
            try:
                self._zip = zipfile.ZipFile(self.zip_path)
            except zipfile.BadZipFile as exc:
                raise DataError(f"{self.zip_path}: expected a zip archive, got "
                                f"{self.zip_path.stat().st_size} bytes that are not one "
                                f"({exc})") from exc
            self._pid = os.getpid()
        return self._zip

    def check(self, members: Sequence[str]) -> None:
        """Fail early, naming the first few images the source lacks."""
        if self.kind == "zip":
            names = set(self._archive().namelist())
            missing = [m for m in members if m not in names]
        else:
            missing = [m for m in members if not (self.dir_path / m).is_file()]
        if missing:
            raise DataError(f"{self.location}: expected all {len(members)} images listed in "
                            f"image_metadata.npy, got {len(missing)} missing, e.g. "
                            f"{missing[:3]}")

    def read(self, member: str) -> bytes:
        if self.kind == "zip":
            try:
                return self._archive().read(member)
            except KeyError:
                raise DataError(f"{self.zip_path}: no member '{member}'") from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataError(f"{self.zip_path}: cannot read '{member}' ({exc})") from exc
        path = self.dir_path / member
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read image ({exc.strerror})") from exc

    def image(self, member: str) -> Image.Image:
        """The image ``member``, decoded to RGB."""
        return decode_image(self.read(member), self.label(member))

    def fingerprints(self, members: Sequence[str]) -> list[str]:
        """A content fingerprint per member, for cache keys: the zip directory's CRC-32 and
        size (nothing is decompressed), or the SHA-256 of a loose file."""
        if self.kind == "zip":
            archive = self._archive()
            out = []
            for member in members:
                try:
                    info = archive.getinfo(member)
                except KeyError:
                    raise DataError(f"{self.zip_path}: no member '{member}'") from None
                out.append(f"crc32:{info.CRC:08x}:{info.file_size}")
            return out
        return [f"sha256:{hashlib.sha256(self.read(m)).hexdigest()}" for m in members]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zip"] = None
        return state


def check_images(folder: str | Path) -> dict[str, int]:
    """Check ``image_metadata.npy`` and that each split's images are in its zip or folder."""
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
