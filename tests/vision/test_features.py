"""One forward pass for every requested layer, against forward hooks on unmodified
open_clip models (a ViT and a ModifiedResNet), and the early stop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neurovision.errors import ParamError
from neurovision.vision.encoder import load_encoder
from neurovision.vision.features import (
    FINAL,
    FORWARD_CLASS_TOKEN,
    FORWARD_ENCODE_IMAGE,
    blocks,
    forward_path,
    layer_name,
    resolve_layers,
    run_blocks,
)

LAYERS = [FINAL, 0.25, 0.5, 0.75]


@pytest.fixture(scope="module")
def vit():
    return load_encoder("ViT-S-32", "none", seed=0).model


@pytest.fixture(scope="module")
def resnet():
    return load_encoder("RN50", "none", seed=0).model


def _images(n=3, size=224, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2


def _hooked(model, modules, images):
    """Run the unmodified model's encode_image with hooks: every module's output, and the
    final embedding."""
    seen = {}
    handles = [m.register_forward_hook(lambda mod, args, out, i=i: seen.__setitem__(i, out))
               for i, m in enumerate(modules, start=1)]
    try:
        with torch.inference_mode():
            final = model.encode_image(images)
    finally:
        for h in handles:
            h.remove()
    return seen, final


def _as_numpy(d):
    return {k: v.float().numpy() for k, v in d.items()}


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_vit_layers_equal_hooks_on_the_unmodified_model(vit, pool):
    x = _images()
    taps = resolve_layers(vit, LAYERS, pool)
    with torch.inference_mode():
        got = _as_numpy(run_blocks(vit, x, taps))
    seen, final = _hooked(vit, list(vit.visual.transformer.resblocks), x)
    for tap in taps:
        if tap.block is None:
            ref = final.numpy()
        else:
            tokens = seen[tap.block].numpy()  # (batch, 1 + patches, width), batch first
            ref = tokens[:, 0] if pool == "cls" else tokens[:, 1:].mean(axis=1)
        np.testing.assert_allclose(got[tap.name], ref, rtol=1e-5, atol=1e-5)
    assert [t.block for t in taps] == [None, 3, 6, 9]  # 12 blocks
    assert got["0.5"].shape == (3, vit.visual.transformer.width)


def test_resnet_layers_equal_hooks_on_the_unmodified_model(resnet):
    x = _images(n=2)
    taps = resolve_layers(resnet, LAYERS, "mean")
    with torch.inference_mode():
        got = _as_numpy(run_blocks(resnet, x, taps))
    v = resnet.visual
    residual = [b for stage in (v.layer1, v.layer2, v.layer3, v.layer4) for b in stage]
    assert len(residual) == 16  # RN50: 3 + 4 + 6 + 3 Bottleneck blocks
    seen, final = _hooked(resnet, residual, x)
    for tap in taps:
        ref = final.numpy() if tap.block is None else seen[tap.block].numpy().mean(axis=(2, 3))
        np.testing.assert_allclose(got[tap.name], ref, rtol=1e-4, atol=1e-5)
    assert [t.block for t in taps] == [None, 4, 8, 12]
    with pytest.raises(ParamError, match=r"embed\.pool: expected 'mean' for ModifiedResNet"):
        resolve_layers(resnet, [0.5], "cls")


@pytest.mark.parametrize("which", ["vit", "resnet"])
def test_the_pass_stops_after_the_deepest_requested_block(vit, resnet, which):
    model = vit if which == "vit" else resnet
    x = _images(n=2)
    taps = resolve_layers(model, [0.25], "mean")
    ran = []
    handles = [b.register_forward_hook(lambda m, a, o, i=i: ran.append(i))
               for i, b in enumerate(blocks(model), start=1)]
    try:
        with torch.inference_mode():
            alone = run_blocks(model, x, taps)["0.25"]
            ran_alone = list(ran)
            ran.clear()
            together = run_blocks(model, x, resolve_layers(model, [0.25, FINAL], "mean"))
    finally:
        for h in handles:
            h.remove()
    k = taps[0].block
    assert ran_alone == list(range(1, k + 1))  # nothing after block k ran
    # with the final embedding, every block runs (a ViT's last for its class token only,
    # outside the block's own forward)
    assert ran == list(range(1, len(blocks(model)) + (0 if which == "vit" else 1)))
    torch.testing.assert_close(alone, together["0.25"], rtol=0, atol=0)  # the same numbers


def test_the_final_embedding_alone_reads_the_class_token_of_the_last_block(vit):
    """The last block computed for the class token only: the same as open_clip's forward;
    with a mean-pooled last block requested too, the block runs in full instead."""
    assert forward_path(vit) == FORWARD_CLASS_TOKEN
    x = _images(n=4)
    with torch.inference_mode():
        ref = vit.encode_image(x)
        fast = run_blocks(vit, x, resolve_layers(vit, [FINAL], "mean"))[FINAL]
        with_last = run_blocks(vit, x, resolve_layers(vit, [FINAL, 0.99], "mean"))
        with_cls = run_blocks(vit, x, resolve_layers(vit, [FINAL, 0.99], "cls"))
        plain = run_blocks(vit, x, resolve_layers(vit, [FINAL], "mean"), class_token=False)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(with_last[FINAL], ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(with_cls[FINAL], fast, rtol=0, atol=0)  # one computation
    torch.testing.assert_close(plain[FINAL], ref, rtol=0, atol=0)  # open_clip's own forward


def test_models_the_class_token_path_does_not_fit_use_encode_image(vit, caplog, monkeypatch):
    for attr, value in [("pool_type", "avg"), ("final_ln_after_pool", True),
                        ("output_tokens", True)]:
        model = copy.deepcopy(vit)
        setattr(model.visual, attr, value)
        assert forward_path(model) == FORWARD_ENCODE_IMAGE, attr
    model = copy.deepcopy(vit)
    model.visual.train()  # patch dropout would be active
    assert forward_path(model) == FORWARD_ENCODE_IMAGE

    class NotAViT(torch.nn.Module):
        visual = torch.nn.Identity()
    assert forward_path(NotAViT()) == FORWARD_ENCODE_IMAGE
    with pytest.raises(ParamError, match=r"embed\.layers: expected 'final' only for Identity"):
        resolve_layers(NotAViT(), [0.5], "mean")

    # Right structure, different numbers (emulated by a patched fast path): the probe
    # catches it and falls back.
    import neurovision.vision.features as features

    model = copy.deepcopy(vit)  # a model not probed before
    real = features._class_token_forward

    def off_by_a_bit(visual):
        f = real(visual)
        return lambda x: f(x) + 1e-2 * torch.linspace(-1, 1, f(x).shape[-1])
    monkeypatch.setattr(features, "_class_token_forward", off_by_a_bit)
    with caplog.at_level("WARNING", logger="neurovision.vision.features"):
        assert forward_path(model) == FORWARD_ENCODE_IMAGE
    assert "differs from encode_image" in caplog.text


def test_depths_map_to_the_nearest_block_and_bad_layers_are_named(vit, resnet):
    blocks_of = lambda m, d: resolve_layers(m, [d], "mean")[0].block  # noqa: E731
    assert [blocks_of(vit, d) for d in (0.01, 0.33, 0.45, 0.5, 0.99)] == [1, 4, 5, 6, 12]
    assert [blocks_of(resnet, d) for d in (0.01, 0.67, 0.99)] == [1, 11, 16]
    assert [layer_name(x) for x in (FINAL, 0.5, 0.25, 0.333)] == [FINAL, "0.5", "0.25", "0.333"]
    with pytest.raises(ParamError, match=r"embed\.layers: expected 'final' or a relative depth "
                                         r"in \(0, 1\), got 1\.5"):
        resolve_layers(vit, [1.5], "mean")
    with pytest.raises(ParamError, match="no repeated layer"):
        resolve_layers(vit, [0.5, 0.5], "mean")
    with pytest.raises(ParamError, match=r"embed\.pool"):
        resolve_layers(vit, [0.5], "max")
