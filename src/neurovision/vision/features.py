"""Image features from one forward pass: the final embedding and the outputs of chosen blocks.

A *layer* is ``"final"`` (the model's image embedding, what ``encode_image`` returns) or a
relative depth in (0, 1): the output of the block nearest that fraction of the backbone's
depth (a transformer block of an open_clip ViT, a residual block of an open_clip
ModifiedResNet such as RN50), pooled to a vector: ``mean`` over the patch tokens of a ViT
block or over a ResNet feature map's positions, or ``cls``, a ViT's class token.

One pass serves every requested layer, and computes only what they read (one mechanism,
:func:`run_blocks`): the blocks run one by one, each requested block's output is pooled as it
passes, the pass stops after the deepest block a request needs, and where the final
embedding reads only the class token of a ViT's last block, that block is computed for the
class token alone (keys and values still from every token).  The result equals open_clip's
own forward up to float rounding: :func:`forward_path` checks the class-token step against
``encode_image`` on a seeded batch before it is used, and the tests compare every layer with
forward hooks on an unmodified model.

open_clip's ``forward_intermediates`` was not used: it returns a ResNet's stages rather than
its residual blocks, cannot stop early and still give the final embedding, and has no
class-token-only last block.
"""

from __future__ import annotations

import logging
import math
import typing
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from neurovision.errors import ParamError
from neurovision.params import FINAL, Pool, layer_name

log = logging.getLogger(__name__)

POOLS: tuple[str, ...] = typing.get_args(Pool)
#: How the final embedding is computed: open_clip's own forward, or the same with the last
#: block on the class token only (part of the cache key: the two differ in the last bits).
FORWARD_ENCODE_IMAGE = "encode_image"
FORWARD_CLASS_TOKEN = "class-token-only last block"


@dataclass(frozen=True)
class Tap:
    """One requested output: the final embedding (``block`` None) or block ``block``
    (1-based, of ``n_blocks``) pooled by ``pool``."""

    name: str
    block: int | None
    n_blocks: int
    pool: str | None

    def describe(self) -> str:
        if self.block is None:
            return FINAL
        return f"block {self.block} of {self.n_blocks}, {self.pool}-pooled"


def _kind(model: Any) -> str | None:
    """``"vit"`` or ``"resnet"`` for the open_clip towers whose blocks this module runs."""
    try:
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import Transformer, VisionTransformer
    except ImportError:  # pragma: no cover - open_clip is a dependency
        return None
    v = getattr(model, "visual", None)
    if type(v) is VisionTransformer and type(v.transformer) is Transformer \
            and hasattr(v, "_embeds") and not v.transformer.grad_checkpointing \
            and getattr(v.transformer, "batch_first", False):
        return "vit"
    if type(v) is ModifiedResNet:
        return "resnet"
    return None


def blocks(model: Any) -> list[Any]:
    """The backbone's blocks in order: a ViT's transformer blocks, or a ModifiedResNet's
    residual (Bottleneck) blocks of its four stages."""
    kind = _kind(model)
    v = model.visual
    if kind == "vit":
        return list(v.transformer.resblocks)
    if kind == "resnet":
        return [b for stage in (v.layer1, v.layer2, v.layer3, v.layer4) for b in stage]
    raise ParamError(f"params: embed.layers: expected 'final' only for "
                     f"{type(v).__name__} (intermediate layers need an open_clip "
                     f"VisionTransformer or ModifiedResNet), got a relative depth")


def resolve_layers(model: Any, layers: Sequence[str | float], pool: str) -> list[Tap]:
    """The taps for ``embed.layers`` and ``embed.pool`` on ``model``, in the given order."""
    taps = []
    for layer in layers:
        if layer == FINAL:
            taps.append(Tap(FINAL, None, 0, None))
            continue
        depth = float(layer)
        if not 0 < depth < 1:
            raise ParamError(f"params: embed.layers: expected 'final' or a relative depth "
                             f"in (0, 1), got {layer!r}")
        found = blocks(model)
        n = len(found)
        if pool not in POOLS:
            raise ParamError(f"params: embed.pool: expected one of {list(POOLS)}, got {pool!r}")
        if pool == "cls" and _kind(model) != "vit":
            raise ParamError(f"params: embed.pool: expected 'mean' for "
                             f"{type(model.visual).__name__} (a ResNet has no class token), "
                             f"got 'cls'")
        block = min(n, max(1, math.floor(depth * n + 0.5)))  # nearest block, ties up
        taps.append(Tap(layer_name(layer), block, n, pool))
    names = [t.name for t in taps]
    if len(set(names)) != len(names):
        raise ParamError(f"params: embed.layers: expected no repeated layer, got {names}")
    return taps


def _class_token_vit(model: Any) -> bool:
    """Whether ``model`` is an open_clip ViT whose image embedding reads the class token only.

    Checked structurally (exact classes, no attentional pooler, class-token pooling, no
    final norm after pooling, no token output, plain residual blocks) so that a model this
    module does not know falls back to ``encode_image``.
    """
    from open_clip.transformer import ResidualAttentionBlock

    if _kind(model) != "vit":
        return False
    v = model.visual
    return (not v.training and len(v.transformer.resblocks) > 0
            and getattr(v, "attn_pool", None) is None and v.pool_type == "tok"
            and not v.final_ln_after_pool and not v.output_tokens
            and all(type(r) is ResidualAttentionBlock and not hasattr(r, "ln_1_kv")
                    and r.attn.batch_first for r in v.transformer.resblocks))


def _pool_tokens(x: Any, pool: str) -> Any:
    """A ViT block's output (batch, tokens, width) as one vector per image."""
    return x[:, 0] if pool == "cls" else x[:, 1:].mean(dim=1)


def run_blocks(model: Any, images: Any, taps: Sequence[Tap], *,
               class_token: bool = True) -> dict[str, Any]:
    """The raw (not normalised) features of ``taps`` for a batch of ``images``.

    The blocks run in order until the deepest one a tap needs; with ``class_token`` and a
    ViT, a last block that only the final embedding reads runs for the class token alone.
    """
    want = {t.block: [] for t in taps if t.block is not None}
    for t in taps:
        if t.block is not None:
            want[t.block].append(t)
    final = any(t.block is None for t in taps)
    if not want:  # the final embedding only
        if final and class_token and _class_token_vit(model):
            return {FINAL: _class_token_forward(model.visual)(images)}
        return {FINAL: model.encode_image(images)}
    found = blocks(model)
    kind = _kind(model)
    v = model.visual
    stop = len(found) if final else max(want)
    out: dict[str, Any] = {}
    x = v._embeds(images) if kind == "vit" else v.stem(images)
    cls_only = False
    for i, block in enumerate(found[:stop], start=1):
        cls_only = (i == len(found) and final and class_token and _class_token_vit(model)
                    and all(t.pool == "cls" for t in want.get(i, [])))
        x = _class_token_block(block, x) if cls_only else block(x)
        for t in want.get(i, []):
            out[t.name] = _pool_tokens(x, t.pool) if kind == "vit" else x.mean(dim=(2, 3))
    if final:
        if cls_only:  # as _class_token_forward computes it, to the last bit
            pooled = v.ln_post(x[:, 0])
        elif kind == "vit":  # as VisionTransformer.forward computes it
            pooled, _ = v._pool(x)
        else:  # as ModifiedResNet.forward does
            out[FINAL] = v.attnpool(x)
            return out
        out[FINAL] = pooled @ v.proj if v.proj is not None else pooled
    return out


def _class_token_block(block: Any, x: Any) -> Any:
    """A ViT block's output for its class token only (batch, 1, width): queries, attention
    output, MLP and norms for the class token, keys and values from every token."""
    h = block.ln_1(x)
    cls = x[:, :1] + block.ls_1(block.attn(h[:, :1], h, h, need_weights=False)[0])
    return cls + block.ls_2(block.mlp(block.ln_2(cls)))


def _class_token_forward(visual: Any) -> Any:
    """``visual(images)`` with the last residual block computed for the class token only."""
    resblocks = visual.transformer.resblocks

    def forward(images: Any) -> Any:
        x = visual._embeds(images)
        for block in resblocks[:-1]:
            x = block(x)
        pooled = visual.ln_post(_class_token_block(resblocks[-1], x)[:, 0])
        return pooled @ visual.proj if visual.proj is not None else pooled

    return forward


def forward_path(model: Any, *, tolerance: float = 1e-5) -> str:
    """How the final embedding is computed for ``model`` (float32, eval mode).

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
_PROBED: weakref.WeakKeyDictionary[Any, tuple[float, str]] = weakref.WeakKeyDictionary()


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


def feature_widths(model: Any, taps: Sequence[Tap]) -> dict[str, int]:
    """The width of each tap's vector, from one seeded image."""
    import torch

    with torch.inference_mode():
        out = run_blocks(model, _seeded_images(model, 1), taps)
    return {name: int(t.shape[-1]) for name, t in out.items()}
