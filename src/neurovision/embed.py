"""OpenCLIP image embeddings of the THINGS images, read straight from the release zips."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import os
import re
import time
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from neurovision.errors import DataError
from neurovision.io import load_npy_dict, save_npy
from neurovision.params import EMBED_PRECISIONS
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
        self._pid = None

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
            where = self.zip_path if self.kind == "zip" else self.dir_path
            raise DataError(f"{where}: expected all {len(members)} images listed in "
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


# --------------------------------------------------------------------------------------
# Model


@dataclass
class Encoder:
    model: Any
    preprocess: Any
    name: str
    pretrained: str
    seed: int | None = None  # the initialisation seed when ``pretrained`` is "none"
    #: compiled forward passes of ``model``, by (path, batch size): compiled once per process
    compiled: dict = field(default_factory=dict, repr=False, compare=False)


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
    return Encoder(model=model, preprocess=preprocess, name=model_name, pretrained=pretrained,
                   seed=seed if pretrained.lower() == "none" else None)


class _Dataset:
    """torch Dataset: decode + preprocess image i (runs in DataLoader workers)."""

    def __init__(self, source: ImageSource, members: Sequence[str], preprocess: Any,
                 blur_sigma: float = 0.0):
        self.source, self.members, self.preprocess = source, list(members), preprocess
        self.blur_sigma = blur_sigma  # part of every cache key (see chunk_config)

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int):
        name = self.members[i]
        img = decode_image(self.source.read(name), f"{self.source.zip_path}:{name}"
                           if self.source.kind == "zip" else name)
        if self.blur_sigma > 0:  # embed.blur_sigma: the blur prior, in stored-image pixels
            img = img.filter(ImageFilter.GaussianBlur(self.blur_sigma))
        return self.preprocess(img)


# --------------------------------------------------------------------------------------
# Machine settings and precision

#: float32 is exact; the others are faster on CPUs with bf16 / int8 support and lossy.
PRECISIONS = EMBED_PRECISIONS


def prefer_sleeping_openmp_threads() -> bool:
    """Before torch is first imported: let idle OpenMP threads sleep, not spin.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy.  With spinning threads
    (the default) a 2-core machine shared with other work ran ViT inference at 2 threads
    5x slower than at 1 thread; sleeping threads removed the penalty (README
    "Performance").  Call it at the start of a program, never at import; returns whether
    it could still take effect (torch not yet imported).
    """
    import sys

    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, math.floor(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, n)


@contextlib.contextmanager
def torch_threads(n: int | None = None) -> Iterator[int]:
    """Run torch with ``n`` intra-op threads (None: :func:`usable_cpus`), restored on exit."""
    import torch

    n = usable_cpus() if n is None else n
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def inference_model(encoder: Encoder, precision: str) -> tuple[Any, Any]:
    """(model, input dtype) for ``precision``; float32 is the encoder's own model, untouched.

    ``bfloat16`` casts a copy of the weights; ``int8`` quantises a copy's Linear layers
    dynamically (weights int8, activations quantised per batch).  Both change the numbers:
    :func:`precision_fidelity` measures by how much.
    """
    import torch

    if precision == "float32":
        return encoder.model, torch.float32
    if precision == "bfloat16":
        return copy.deepcopy(encoder.model).to(torch.bfloat16), torch.bfloat16
    if precision == "int8":
        import warnings

        with warnings.catch_warnings():  # torch.ao quantisation is deprecated (-> torchao);
            warnings.simplefilter("ignore", DeprecationWarning)  # it works in torch <= 2.14
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")
            model = torch.ao.quantization.quantize_dynamic(
                encoder.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
        return model, torch.float32
    raise DataError(f"params: embed.precision: expected one of {list(PRECISIONS)}, got "
                    f"{precision!r}")


# --------------------------------------------------------------------------------------
# The fastest exact forward pass

#: How images are encoded: open_clip's own forward, or the same with the last block on
#: the class token only (part of the cache key: the two differ in the last bits).
FORWARD_ENCODE_IMAGE = "encode_image"
FORWARD_CLASS_TOKEN = "class-token-only last block"


def _class_token_vit(model: Any) -> bool:
    """Whether ``model`` is an open_clip ViT whose image embedding reads the class token only.

    Checked structurally (exact classes, no attentional pooler, class-token pooling, no
    final norm after pooling, no token output, plain residual blocks) so that a model this
    module does not know falls back to ``encode_image``.
    """
    try:
        from open_clip.transformer import (ResidualAttentionBlock, Transformer,
                                           VisionTransformer)
    except ImportError:  # pragma: no cover - open_clip is a dependency
        return False
    v = getattr(model, "visual", None)
    if type(v) is not VisionTransformer or v.training or not hasattr(v, "_embeds"):
        return False
    t = v.transformer
    return (type(t) is Transformer and getattr(t, "batch_first", False)
            and not t.grad_checkpointing and len(t.resblocks) > 0
            and getattr(v, "attn_pool", None) is None and v.pool_type == "tok"
            and not v.final_ln_after_pool and not v.output_tokens
            and all(type(r) is ResidualAttentionBlock and not hasattr(r, "ln_1_kv")
                    and r.attn.batch_first for r in t.resblocks))


def _class_token_forward(visual: Any) -> Any:
    """``visual(images)`` with the last residual block computed for the class token only.

    A ViT pooled on the class token reads one row of the last block's output, and that
    row needs the block's keys and values for every token but its query, attention
    output, MLP and final norm for the class token alone.  This skips about 1/12 of
    ViT-B-32's work and about 4/5 of the last block's; the result is the same up to
    float rounding (tests/test_embed.py compares it with ``encode_image``).
    """
    blocks = visual.transformer.resblocks

    def forward(images: Any) -> Any:
        x = visual._embeds(images)
        for block in blocks[:-1]:
            x = block(x)
        last = blocks[-1]
        h = last.ln_1(x)
        cls = x[:, :1] + last.ls_1(last.attn(h[:, :1], h, h, need_weights=False)[0])
        cls = cls + last.ls_2(last.mlp(last.ln_2(cls)))
        pooled = visual.ln_post(cls[:, 0])
        return pooled @ visual.proj if visual.proj is not None else pooled

    return forward


def forward_path(model: Any, *, tolerance: float = 1e-5) -> str:
    """Which forward pass :func:`image_forward` uses for ``model`` (float32, eval mode).

    The class-token path is chosen only if the model has the structure it relies on *and*
    it agrees with ``encode_image`` on a seeded random batch to within ``tolerance`` (max
    abs difference of the L2-normalised embeddings); otherwise ``encode_image``.
    """
    if not _class_token_vit(model):
        return FORWARD_ENCODE_IMAGE
    import torch

    checked = _PROBED.get(model)
    if checked is not None and checked[0] == tolerance:
        return checked[1]

    x = _seeded_images(model, 2)
    with torch.inference_mode():
        diff = _max_abs_diff(model.encode_image(x), _class_token_forward(model.visual)(x))
    path = FORWARD_CLASS_TOKEN
    if not diff <= tolerance:
        log.warning("embed: the class-token forward differs from encode_image by %.2g "
                    "(> %.0g): using encode_image", diff, tolerance)
        path = FORWARD_ENCODE_IMAGE
    _PROBED[model] = (tolerance, path)
    return path


#: forward_path's verdict per model object (the weights do not change after loading)
_PROBED: "weakref.WeakKeyDictionary[Any, tuple[float, str]]" = weakref.WeakKeyDictionary()


def _seeded_images(model: Any, n: int) -> Any:
    """``n`` seeded random images of the model's input size: a probe batch for checks."""
    import torch

    size = model.visual.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(0))


def _max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two batches of embeddings, L2-normalised."""
    import torch

    norm = torch.nn.functional.normalize
    return float((norm(a.float(), dim=-1) - norm(b.float(), dim=-1)).abs().max())


def image_forward(model: Any, path: str) -> Any:
    """The function that maps a batch of images to raw embeddings along ``path``."""
    if path == FORWARD_CLASS_TOKEN:
        return _class_token_forward(model.visual)
    return model.encode_image


#: ``embed.compile: auto`` compiles when one stage run embeds at least this many images:
#: compiling takes 13-35 s on 2 cores and saves about 7-10 % of ~50 ms per image.
COMPILE_MIN_IMAGES = 2000
COMPILED = ", compiled (torch.compile, inductor, frozen weights, batch {})"


def resolve_compile(setting: str | bool, n_images: int) -> bool:
    """``embed.compile`` (true, false or "auto") for a run that embeds ``n_images``."""
    if setting == "auto":
        return n_images >= COMPILE_MIN_IMAGES
    if isinstance(setting, bool):
        return setting
    raise DataError(f"params: embed.compile: expected true, false or 'auto', got {setting!r}")


def compiled_forward(encoder: Encoder, path: str, batch_size: int, *,
                     tolerance: float = 1e-5) -> Callable:
    """``torch.compile`` of the float32 forward along ``path`` for batches of ``batch_size``.

    Inductor with frozen weights (constant-folded, pre-packed for oneDNN, bias and GELU
    fused into the matmuls).  Compiled once per encoder, path and batch size (smaller
    batches must be padded to ``batch_size``: one shape, one compilation) and checked
    against the eager forward on a seeded random batch: raises RuntimeError if they
    differ by more than ``tolerance`` (max abs, L2-normalised), or what compiling raised
    (no C++ compiler, say).  Call under ``torch.inference_mode()``.
    """
    import torch

    key = (path, batch_size)
    if key in encoder.compiled:
        return encoder.compiled[key]
    eager = image_forward(encoder.model, path)
    fn = torch.compile(eager, dynamic=False, options={"freezing": True})
    x = _seeded_images(encoder.model, batch_size)
    t0 = time.perf_counter()
    got = fn(x)[:2]
    log.info("embed: compiled the forward pass for batches of %d in %.1f s", batch_size,
             time.perf_counter() - t0)
    diff = _max_abs_diff(got, eager(x[:2]))
    if not diff <= tolerance:
        raise RuntimeError(f"the compiled forward differs from the eager one by {diff:.2g} "
                           f"(> {tolerance:.0g})")
    encoder.compiled[key] = fn
    return fn


# --------------------------------------------------------------------------------------
# Resumable embedding: a chunk cache keyed by everything that determines the numbers

#: Bump when the meaning of a cached chunk changes.
CACHE_FORMAT = 1


def _sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chunk_config(encoder: Encoder, *, precision: str = "float32", blur_sigma: float = 0.0,
                 batch_size: int = 64, forward: str = FORWARD_ENCODE_IMAGE) -> dict:
    """What, besides the images, determines a chunk's embeddings to the last bit.

    Model, weights (tag, checkpoint content, or random-init seed), transform, blur,
    precision, batch size (batch composition can change the last bits of a matmul), the
    forward path (:func:`forward_path`) and the library versions.  Thread count and worker
    count do not enter: they do not change the result.
    """
    import open_clip
    import torch

    if encoder.pretrained.lower() == "none":
        weights = f"random-init seed={encoder.seed}"
    elif os.path.isfile(encoder.pretrained):
        weights = f"checkpoint sha256={_sha256_file(encoder.pretrained)}"
    else:
        weights = f"open_clip tag={encoder.pretrained}"
    return {"format": CACHE_FORMAT, "model": encoder.name, "weights": weights,
            # without object addresses ("<function f at 0x...>"), which change per process
            "transform": re.sub(r" at 0x[0-9a-fA-F]+", "", repr(encoder.preprocess)),
            "blur_sigma": float(blur_sigma), "precision": precision,
            "batch_size": int(batch_size), "forward": forward,
            "torch": torch.__version__, "open_clip": open_clip.__version__}


def chunk_key(config: dict, members: Sequence[str], fingerprints: Sequence[str]) -> str:
    """Cache key of one chunk: the config plus each image's name and content fingerprint."""
    blob = json.dumps({"config": config, "images": [[m, f] for m, f in zip(members, fingerprints)]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class ChunkCache:
    """Finished chunks of raw (not yet normalised) embeddings, one ``<key>.npy`` each.

    Lives outside the DVC outputs (DVC deletes a stage's outputs before rerunning it), is
    written atomically (a killed run leaves no partial chunk), and never needs invalidating:
    a change of anything that matters changes the key.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def load(self, key: str, n_rows: int) -> np.ndarray | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            log.warning("embed cache: recomputing unreadable chunk %s (%s)", path, exc)
            return None
        if arr.dtype != np.float32 or arr.ndim != 2 or arr.shape[0] != n_rows \
                or not np.isfinite(arr).all():
            log.warning("embed cache: recomputing chunk %s (shape %s, dtype %s; expected %d "
                        "finite float32 rows)", path, arr.shape, arr.dtype, n_rows)
            return None
        return arr

    def save(self, key: str, arr: np.ndarray) -> None:
        save_npy(self.path(key), arr)

    def sweep(self, max_age_s: float = 3600.0) -> None:
        """Delete temporary files a killed run left behind (older than ``max_age_s``, so a
        concurrent run's files in progress are kept)."""
        if not self.root.is_dir():
            return
        now = time.time()
        for tmp in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > max_age_s:
                    tmp.unlink()


# --------------------------------------------------------------------------------------
# The embedding loop


def embed_images(encoder: Encoder, source: ImageSource, members: Sequence[str],
                 batch_size: int = 64, num_workers: int = 0, progress: bool = True, *,
                 threads: int | None = None, precision: str = "float32",
                 blur_sigma: float = 0.0, cache_dir: str | Path | None = None,
                 chunk_size: int = 512, compile: bool = False,
                 report: dict | None = None) -> np.ndarray:
    """L2-normalised float32 image embeddings (n_images, dim), in ``members`` order.

    Images are read straight from the source and decoded + preprocessed in ``num_workers``
    worker processes (0: in this process) while this process encodes batches of
    ``batch_size`` under ``torch.inference_mode`` with ``threads`` intra-op threads (None:
    all usable CPUs; the previous setting is restored afterwards).  A ``precision`` other
    than float32 is lossy and logged; :func:`precision_fidelity` measures the loss.

    With ``cache_dir``, the images are processed in chunks of ``chunk_size`` consecutive
    members; each finished chunk is stored under :func:`chunk_key` and found chunks are not
    recomputed, so an interrupted run resumes where it stopped, and its result is
    byte-identical to an uninterrupted run's (batches never straddle chunks, so every
    image is encoded in the same batch either way).

    The forward pass is the fastest exact one available (:func:`forward_path`); with
    ``compile`` (float32 only) it is compiled by :func:`compiled_forward`, falling back to
    eager with a warning where compiling fails.  The path taken enters the cache keys
    and, with ``report``, is stored in ``report["forward"]``.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    if precision not in PRECISIONS:
        raise DataError(f"params: embed.precision: expected one of {list(PRECISIONS)}, got "
                        f"{precision!r}")
    members = list(members)
    source.check(members)
    if chunk_size < 1 or batch_size < 1:
        raise ValueError(f"{chunk_size=} and {batch_size=} must be >= 1")
    bounds = [(s, min(s + chunk_size, len(members))) for s in range(0, len(members), chunk_size)]
    want_compile = compile and precision == "float32"
    cache = ChunkCache(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.sweep()
        prints = source.fingerprints(members)

    def lookup(forward: str) -> tuple[list | None, list]:
        """Chunk keys for ``forward`` and the chunks already in the cache (None: missing)."""
        if cache is None:
            return None, [None] * len(bounds)
        config = chunk_config(encoder, precision=precision, blur_sigma=blur_sigma,
                              batch_size=batch_size, forward=forward)
        keys = [chunk_key(config, members[s:e], prints[s:e]) for s, e in bounds]
        return keys, [cache.load(keys[i], e - s) for i, (s, e) in enumerate(bounds)]

    # The path the model's structure calls for; the probe below confirms it before use.
    forward = (FORWARD_CLASS_TOKEN if _class_token_vit(encoder.model) else FORWARD_ENCODE_IMAGE)
    if want_compile:
        forward += COMPILED.format(batch_size)
    keys, parts = lookup(forward)
    if any(p is None for p in parts):
        with torch_threads(threads), torch.inference_mode():
            model, dtype = inference_model(encoder, precision)
            path = forward_path(encoder.model)
            encode, pad_to, actual = image_forward(model, path), None, path
            if want_compile:
                try:
                    encode = compiled_forward(encoder, path, batch_size)
                    pad_to, actual = batch_size, path + COMPILED.format(batch_size)
                except Exception as exc:  # no C++ compiler, unsupported op, mismatch ...
                    log.warning("embed: torch.compile failed, using the eager forward pass "
                                "(%s: %s)", type(exc).__name__, " ".join(str(exc).split())[:300])
        if actual != forward:
            forward = actual
            keys, parts = lookup(forward)
    if report is not None:
        report["forward"] = forward
    n_hit = sum(p is not None for p in parts)
    if cache is not None and n_hit:
        log.info("embed: %d of %d chunks (%d of %d images) found in the cache %s", n_hit,
                 len(bounds), sum(len(p) for p in parts if p is not None), len(members),
                 cache.root)
    # Batches never straddle a chunk boundary; owner[b] is the chunk of batch b.
    batches, owner = [], []
    for i, (s, e) in enumerate(bounds):
        if parts[i] is None:
            for b in range(s, e, batch_size):
                batches.append(list(range(b, min(b + batch_size, e))))
                owner.append(i)
    done = len(members) - sum(len(b) for b in batches)
    if batches:
        if precision != "float32":
            log.warning("embed: %s inference: faster, not exact (see precision_fidelity)",
                        precision)
        log.info("embed: %d images, forward pass: %s", len(members) - done, forward)
        loader = DataLoader(_Dataset(source, members, encoder.preprocess, blur_sigma),
                            batch_sampler=batches, num_workers=min(num_workers, len(batches)))
        pending: list[np.ndarray] = []
        with torch_threads(threads), torch.inference_mode(), \
                tqdm(total=len(members), initial=done, unit="img", desc="embed",
                     disable=not progress) as bar:
            for b, batch in enumerate(loader):
                n = len(batch)
                x = batch.to(dtype)
                if pad_to is not None and n < pad_to:  # one shape for the compiled pass
                    x = torch.cat([x, x.new_zeros((pad_to - n, *x.shape[1:]))])
                pending.append(encode(x)[:n].float().cpu().numpy())
                bar.update(n)
                if b + 1 == len(batches) or owner[b + 1] != owner[b]:
                    parts[owner[b]] = np.concatenate(pending, axis=0)
                    pending = []
                    if cache is not None:
                        cache.save(keys[owner[b]], parts[owner[b]])
    return l2_normalize(np.concatenate(parts, axis=0)).astype(np.float32)


def precision_fidelity(encoder: Encoder, source: ImageSource, members: Sequence[str],
                       precision: str, *, n_images: int = 32, batch_size: int = 16,
                       threads: int | None = None, blur_sigma: float = 0.0) -> dict:
    """How close ``precision`` embeddings are to float32 ones, on the first ``n_images``.

    Returns the minimum and mean cosine similarity and the maximum absolute difference
    between the two (L2-normalised) embeddings of each image.
    """
    probe = list(members)[:n_images]
    kw = dict(progress=False, threads=threads, blur_sigma=blur_sigma)
    ref = embed_images(encoder, source, probe, batch_size, **kw).astype(np.float64)
    low = embed_images(encoder, source, probe, batch_size, precision=precision,
                       **kw).astype(np.float64)
    cos = (ref * low).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(low, axis=1))
    return {"precision": precision, "n_images": len(probe),
            "min_cosine_to_float32": round(float(cos.min()), 6),
            "mean_cosine_to_float32": round(float(cos.mean()), 6),
            "max_abs_diff_to_float32": round(float(np.abs(ref - low).max()), 6)}
