"""The OpenCLIP model factory: model, weights (tag, checkpoint or seeded random) and the
evaluation transform, and the reduced-precision copies used for faster inference."""

from __future__ import annotations

import contextlib
import copy
import difflib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurovision.devices import exact_float32
from neurovision.errors import DataError, ParamError
from neurovision.params import EMBED_PRECISIONS

log = logging.getLogger(__name__)


@dataclass
class Encoder:
    model: Any
    preprocess: Any
    name: str
    pretrained: str
    seed: int | None = None  # the initialisation seed when ``pretrained`` is "none"


def model_names() -> list[str]:
    """The OpenCLIP model names, read from open_clip's model-config folder.

    ``open_clip.list_models()`` gives the same names but imports torch (seconds); the check
    stage runs on every change of params.yaml, so it reads the folder without importing.
    """
    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or []) if spec else []
    names = {p.stem for f in folders for p in Path(f, "model_configs").glob("*.json")}
    if not names:  # an open_clip laid out otherwise: ask it
        import open_clip

        return open_clip.list_models()
    return sorted(names)


def check_model_name(model_name: str) -> None:
    """A :class:`ParamError` naming ``embed.model`` unless OpenCLIP knows the model."""
    names = model_names()
    if model_name not in names:
        close = difflib.get_close_matches(model_name, names, n=3, cutoff=0.6)
        hint = f"; did you mean {close}?" if close else ""
        raise ParamError(f"params: embed.model: expected an OpenCLIP model name such as "
                         f"'ViT-B-32' or 'RN50', got {model_name!r}{hint}")


def load_encoder(model_name: str, pretrained: str, seed: int = 0, device: str = "cpu") -> Encoder:
    """An OpenCLIP model in eval mode with its *evaluation* transform.

    ``pretrained``: an OpenCLIP tag (downloaded by open_clip), a path to a checkpoint file,
    or ``"none"`` for a random initialisation seeded by ``seed`` (offline demo).
    """
    import open_clip
    import torch

    check_model_name(model_name)
    if pretrained.lower() == "none":
        log.warning("embed: %s with RANDOM weights (embed.pretrained: none, seed %d): fine for "
                    "the offline demo, meaningless for real data", model_name, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=None, device=device)
    else:
        # pretrained weights: a checkpoint file, or an OpenCLIP tag
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



#: float32 is exact everywhere; bfloat16 and int8 are faster on CPUs with bf16 / int8
#: support, float16 and bfloat16 on GPUs (autocast); all but float32 are lossy.
PRECISIONS = EMBED_PRECISIONS
#: The precisions each kind of device runs (a GPU has no dynamic int8 path in torch; a CPU
#: no float16 speed-up worth having)
DEVICE_PRECISIONS = {"cpu": ("float32", "bfloat16", "int8"),
                     "cuda": ("float32", "float16", "bfloat16"),
                     "mps": ("float32", "float16", "bfloat16")}


@dataclass
class Inference:
    """How to run the model: the model (on ``device``), the input dtype, and the context
    that sets the numerics (autocast for a GPU's reduced precision; no TF32 for float32)."""

    model: Any
    dtype: Any
    device: str
    precision: str

    def numerics(self) -> contextlib.AbstractContextManager:
        import torch

        kind = self.device.partition(":")[0]
        if kind != "cpu" and self.precision in ("float16", "bfloat16"):
            return torch.autocast(kind, dtype=getattr(torch, self.precision))
        return exact_float32(self.device)


def check_precision(precision: str, device: str) -> None:
    """A ParamError naming embed.precision when ``device`` cannot run ``precision``."""
    kind = device.partition(":")[0]
    if precision not in PRECISIONS:
        raise ParamError(f"params: embed.precision: expected one of {list(PRECISIONS)}, got "
                         f"{precision!r}")
    if precision not in DEVICE_PRECISIONS[kind]:
        raise ParamError(f"params: embed.precision: {precision!r} does not run on {device} "
                         f"(embed.device); expected one of {list(DEVICE_PRECISIONS[kind])} "
                         f"there")


def inference_model(encoder: Encoder, precision: str, device: str = "cpu") -> Inference:
    """How to run ``encoder`` at ``precision`` on ``device`` (a concrete device, not auto).

    On the CPU, float32 is the encoder's own model, untouched; ``bfloat16`` casts a copy of
    the weights; ``int8`` quantises a copy's Linear layers dynamically (weights int8,
    activations quantised per batch).  On a GPU the model is a copy moved there, run in
    float32 without TF32 (exact up to the order of the sums), or under autocast at
    ``float16`` / ``bfloat16``.  All but float32 change the numbers:
    :func:`~neurovision.vision.embed.precision_fidelity` measures by how much.
    """
    import torch

    check_precision(precision, device)
    if device != "cpu":
        return Inference(copy.deepcopy(encoder.model).to(device), torch.float32, device,
                         precision)
    if precision == "float32":
        return Inference(encoder.model, torch.float32, device, precision)
    if precision == "bfloat16":
        return Inference(copy.deepcopy(encoder.model).to(torch.bfloat16), torch.bfloat16,
                         device, precision)
    import warnings

    with warnings.catch_warnings():  # torch.ao quantisation is deprecated (-> torchao);
        warnings.simplefilter("ignore", DeprecationWarning)  # it works in torch <= 2.14
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")
        model = torch.ao.quantization.quantize_dynamic(
            encoder.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
    return Inference(model, torch.float32, device, precision)
