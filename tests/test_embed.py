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
