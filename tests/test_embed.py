import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from neurovision.embed import ImageSource, decode_image, embed_images, load_encoder, to_rgb
from neurovision.errors import DataError


def _png(img):
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_to_rgb_handles_modes():
    grey = Image.new("L", (4, 4), 128)
    assert np.asarray(to_rgb(grey))[0, 0].tolist() == [128, 128, 128]
    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))  # no ink = white
    assert np.asarray(to_rgb(cmyk))[0, 0].tolist() == [255, 255, 255]
    g16 = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert np.asarray(to_rgb(decode_image(_png(g16), "g16")))[0, 0].tolist() == [255] * 3
    g16_half = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))
    assert np.asarray(to_rgb(g16_half))[0, 0].tolist() == [128] * 3
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent -> white
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [255, 255, 255]
    pal = Image.new("P", (4, 4), 0)
    assert to_rgb(pal).mode == "RGB"


def test_corrupt_image_names_the_member():
    with pytest.raises(DataError, match="test_images/x/y.jpg: cannot decode"):
        decode_image(b"\xff\xd8not a jpeg", "test_images/x/y.jpg")


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("ViT-B-32", "none", seed=0)


def test_embeddings_follow_member_order_and_are_normalised(tmp_path, encoder):
    rng = np.random.default_rng(0)
    names = [f"test_images/c{i}/img{i}.jpg" for i in range(5)]
    with zipfile.ZipFile(tmp_path / "test_images.zip", "w") as zf:
        for name in names:
            arr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "JPEG")
            zf.writestr(name, buf.getvalue())
    src = ImageSource(tmp_path, "test")
    fwd = embed_images(encoder, src, names, batch_size=2, progress=False)
    rev = embed_images(encoder, src, names[::-1], batch_size=3, progress=False)
    assert fwd.dtype == np.float32 and fwd.shape == (5, 512)
    np.testing.assert_allclose(np.linalg.norm(fwd, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(fwd[::-1], rev, atol=1e-5)
    assert not np.allclose(fwd[0], fwd[1])
    with pytest.raises(DataError, match="missing"):
        src.check(names + ["test_images/nope/x.jpg"])


def test_random_init_is_seeded(encoder):
    import torch
    other = load_encoder("ViT-B-32", "none", seed=0)
    third = load_encoder("ViT-B-32", "none", seed=1)
    w = lambda e: next(e.model.visual.parameters()).detach()
    assert torch.equal(w(encoder), w(other)) and not torch.equal(w(encoder), w(third))


def test_unknown_model_and_tag_are_param_errors():
    with pytest.raises(DataError, match="embed.model"):
        load_encoder("ViT-Q-99", "none")
    with pytest.raises(DataError, match="embed.pretrained"):
        load_encoder("ViT-B-32", "no-such-tag")


def _normalised(t):
    import torch
    return torch.nn.functional.normalize(t.float(), dim=-1)


def test_class_token_forward_matches_encode_image(encoder):
    """The last block on the class token only: the same embeddings as open_clip's forward."""
    import torch

    from neurovision.embed import FORWARD_CLASS_TOKEN, forward_path, image_forward

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

    from neurovision.embed import FORWARD_ENCODE_IMAGE, forward_path, image_forward

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
    import neurovision.embed as embed_mod
    real = embed_mod._class_token_forward

    def off_by_a_bit(visual):
        f = real(visual)
        return lambda x: f(x) + 1e-2 * torch.linspace(-1, 1, f(x).shape[-1])
    monkeypatch.setattr(embed_mod, "_class_token_forward", off_by_a_bit)
    with caplog.at_level("WARNING", logger="neurovision.embed"):
        assert forward_path(model) == FORWARD_ENCODE_IMAGE
    assert "differs from encode_image" in caplog.text
