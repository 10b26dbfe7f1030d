""""""

import io

import numpy as np
import pytest
from PIL import Image

from neurovision.errors import DataError
from neurovision.images import decode_image, to_rgb


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
    with pytest.raises(DataError, match=r"test_images/x/y\.jpg: cannot decode"):
        decode_image(b"\xff\xd8not a jpeg", "test_images/x/y.jpg")


