""""""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurovision.vision.encoder import load_encoder


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("ViT-B-32", "none", seed=0)


def _normalised(t):
    import torch
    return torch.nn.functional.normalize(t.float(), dim=-1)


def test_class_token_forward_matches_encode_image(encoder):
    """The last block on the class token only: the same embeddings as open_clip's forward."""
    import torch

    from neurovision.vision.forward import FORWARD_CLASS_TOKEN, forward_path, image_forward

    assert forward_path(encoder.model) == FORWARD_CLASS_TOKEN
    fast = image_forward(encoder.model, FORWARD_CLASS_TOKEN)
    x = torch.randn(5, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 2
    with torch.inference_mode():
        ref = encoder.model.encode_image(x)
        got = fast(x)
        one = torch.cat([fast(x[i:i + 1]) for i in range(len(x))])  # batch size irrelevant
    assert got.shape == ref.shape == (5, 512)
    assert float((_normalised(got) - _normalised(ref)).abs().max()) < 1e-6
    assert float((_normalised(one) - _normalised(ref)).abs().max()) < 1e-6
    assert not torch.allclose(_normalised(ref[0]), _normalised(ref[1]), atol=1e-3)


def test_models_the_class_token_path_does_not_fit_use_encode_image(encoder, caplog, monkeypatch):
    import copy

    import torch

    from neurovision.vision.forward import FORWARD_ENCODE_IMAGE, forward_path, image_forward

    for attr, value in [("pool_type", "avg"), ("final_ln_after_pool", True),
                        ("output_tokens", True)]:
        model = copy.deepcopy(encoder.model)
        setattr(model.visual, attr, value)
        assert forward_path(model) == FORWARD_ENCODE_IMAGE, attr
        assert image_forward(model, FORWARD_ENCODE_IMAGE) == model.encode_image
    model = copy.deepcopy(encoder.model)
    model.visual.train()  # patch dropout would be active
    assert forward_path(model) == FORWARD_ENCODE_IMAGE

    class NotAViT(torch.nn.Module):
        visual = torch.nn.Identity()
    assert forward_path(NotAViT()) == FORWARD_ENCODE_IMAGE

    # Right structure, different numbers (emulated by a patched fast path): the probe
    # catches it and falls back.
    model = copy.deepcopy(encoder.model)  # a model not probed before
    import neurovision.vision.forward as embed_mod
    real = embed_mod._class_token_forward

    def off_by_a_bit(visual):
        f = real(visual)
        return lambda x: f(x) + 1e-2 * torch.linspace(-1, 1, f(x).shape[-1])
    monkeypatch.setattr(embed_mod, "_class_token_forward", off_by_a_bit)
    with caplog.at_level("WARNING", logger="neurovision.vision.forward"):
        assert forward_path(model) == FORWARD_ENCODE_IMAGE
    assert "differs from encode_image" in caplog.text


MODEL = "ViT-S-32"  # the smallest OpenCLIP ViT: keeps these tests quick


def _chunks(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")} if cache.is_dir() else {}


def _jpeg(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write_zip(folder: Path, seeds: list[int]) -> list[str]:
    names = [f"test_images/{i:05d}_c/img_{i}.jpg" for i in range(len(seeds))]
    with zipfile.ZipFile(folder / "test_images.zip", "w") as zf:
        for name, seed in zip(names, seeds):
            zf.writestr(name, _jpeg(seed))
    return names
