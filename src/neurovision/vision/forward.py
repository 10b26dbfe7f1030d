"""The forward pass that maps a batch of images to raw embeddings: open_clip's own, or the
same with the last ViT block on the class token only."""

from __future__ import annotations

import logging
import weakref
from typing import Any

log = logging.getLogger(__name__)

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
        from open_clip.transformer import ResidualAttentionBlock, Transformer, VisionTransformer
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
    output, MLP and final norm for the class token alone: most of the last block's work
    is skipped, and the result is the same up to float rounding (compared with
    ``encode_image`` on a seeded batch before use, see :func:`forward_path`).
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


def image_forward(model: Any, path: str) -> Any:
    """The function that maps a batch of images to raw embeddings along ``path``."""
    if path == FORWARD_CLASS_TOKEN:
        return _class_token_forward(model.visual)
    return model.encode_image
