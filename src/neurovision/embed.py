"""OpenCLIP image embeddings of the THINGS images, read straight from the release zips."""

from __future__ import annotations

import io
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from neurovision.errors import DataError
from neurovision.io import load_npy_dict
from neurovision.retrieval import l2_normalize

log = logging.getLogger(__name__)

METADATA_KEYS = ("train_img_files", "train_img_concepts", "train_img_concepts_THINGS",
                 "test_img_files", "test_img_concepts", "test_img_concepts_THINGS")
SPLIT_FOLDERS = {"train": "training_images", "test": "test_images"}


# --------------------------------------------------------------------------------------
# Image metadata and reading


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
    if img.mode == "P" or img.mode == "LA" or img.mode == "PA":
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
        raise DataError(f"{name}: cannot decode image ({exc})") from exc


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
        self._pid = None

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():  # one handle per worker process
            try:
                self._zip = zipfile.ZipFile(self.zip_path)
            except zipfile.BadZipFile as exc:
                raise DataError(f"{self.zip_path}: not a valid zip archive ({exc})") from exc
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
            where = self.zip_path if self.kind == "zip" else self.dir_path
            raise DataError(f"{where}: {len(missing)} image(s) listed in image_metadata.npy are "
                            f"missing, e.g. {missing[:3]}")

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

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zip"] = None
        return state


# --------------------------------------------------------------------------------------
# Model


@dataclass
class Encoder:
    model: Any
    preprocess: Any
    name: str
    pretrained: str


def load_encoder(model_name: str, pretrained: str, seed: int = 0, device: str = "cpu") -> Encoder:
    """An OpenCLIP model in eval mode with its *evaluation* transform.

    ``pretrained``: an OpenCLIP tag (downloaded by open_clip), a path to a checkpoint file,
    or ``"none"`` for a random initialisation seeded by ``seed`` (offline demo).
    """
    import open_clip
    import torch

    if model_name not in open_clip.list_models():
        raise DataError(f"params: embed.model: expected an OpenCLIP model name such as "
                        f"'ViT-B-32' or 'RN50', got {model_name!r}")
    if pretrained.lower() == "none":
        log.warning("embed: %s with RANDOM weights (embed.pretrained: none, seed %d): fine for "
                    "the offline demo, meaningless for real data", model_name, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=None, device=device)
    else:
        # --- pretrained weights: a checkpoint file, or an OpenCLIP tag (issue 4) ---
        is_file = os.path.isfile(pretrained)
        if not is_file and pretrained not in open_clip.list_pretrained_tags_by_model(model_name):
            if os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin",
                                                            ".safetensors")):
                raise DataError(f"params: embed.pretrained: checkpoint file {pretrained!r} "
                                f"not found (a relative path starts at the project root, "
                                f"where dvc runs; the working directory is {os.getcwd()})")
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            raise DataError(f"params: embed.pretrained: expected one of {tags} for "
                            f"{model_name}, a checkpoint path, or 'none', got {pretrained!r}")
        try:
            # open_clip reads a checkpoint file with torch.load(weights_only=True): tensors only
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device)
        except Exception as exc:  # network, hub or checkpoint failures all land here
            if is_file:
                raise DataError(
                    f"embed: checkpoint {pretrained} could not be loaded into {model_name} "
                    f"({type(exc).__name__}: {exc}); expected the state_dict of an OpenCLIP "
                    f"{model_name} (torch.save or .safetensors), e.g. the "
                    f"open_clip_pytorch_model.bin of its Hugging Face repository") from exc
            cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
            hub = (cfg.get("hf_hub") or "").strip("/")
            where = (f"https://huggingface.co/{hub} (file open_clip_pytorch_model.bin or "
                     f"open_clip_model.safetensors)" if hub else cfg.get("url") or "its URL")
            raise DataError(
                f"embed: cannot fetch the weights {model_name}/{pretrained} "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}). Either pre-download "
                f"them where there is network access: python -c \"import open_clip; "
                f"open_clip.create_model_and_transforms('{model_name}', "
                f"pretrained='{pretrained}')\" fills the Hugging Face cache "
                f"(~/.cache/huggingface), which you can copy to this machine (then set "
                f"HF_HUB_OFFLINE=1); or download the checkpoint from {where} and set "
                f"embed.pretrained to that file's path.") from exc
        log.info("embed: %s with pretrained weights %s", model_name, pretrained)
    model.eval()
    return Encoder(model=model, preprocess=preprocess, name=model_name, pretrained=pretrained)


class _Dataset:
    """torch Dataset: decode + preprocess image i (runs in DataLoader workers)."""

    def __init__(self, source: ImageSource, members: Sequence[str], preprocess: Any):
        self.source, self.members, self.preprocess = source, list(members), preprocess

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int):
        name = self.members[i]
        return self.preprocess(decode_image(self.source.read(name), f"{self.source.zip_path}:{name}"
                                            if self.source.kind == "zip" else name))


def embed_images(encoder: Encoder, source: ImageSource, members: Sequence[str],
                 batch_size: int = 64, num_workers: int = 0, progress: bool = True) -> np.ndarray:
    """L2-normalised float32 image embeddings (n_images, dim), in ``members`` order."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    source.check(members)
    loader = DataLoader(_Dataset(source, members, encoder.preprocess), batch_size=batch_size,
                        shuffle=False, num_workers=num_workers)
    out = []
    with torch.inference_mode(), tqdm(total=len(members), unit="img", desc="embed",
                                      disable=not progress) as bar:
        for batch in loader:
            out.append(encoder.model.encode_image(batch).float().cpu().numpy())
            bar.update(len(batch))
    return l2_normalize(np.concatenate(out, axis=0)).astype(np.float32)
