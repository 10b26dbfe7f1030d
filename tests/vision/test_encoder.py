"""embed.pretrained: a checkpoint file by path, and a clear error when weights can't be had."""

from __future__ import annotations

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
from zips import write_zip

from neurovision.errors import DataError, ParamError
from neurovision.images import ImageSource
from neurovision.vision.embed import embed_images, precision_fidelity
from neurovision.vision.encoder import load_encoder

MODEL = "ViT-B-32"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random ViT-B-32 state_dict saved with torch.save (float16 halves the file)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        model, _, _ = open_clip.create_model_and_transforms(MODEL, pretrained=None)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "vit-b-32-random.pt"
    torch.save(state, path)
    return path, state


def test_checkpoint_is_loaded_by_path(checkpoint):
    path, state = checkpoint
    enc = load_encoder(MODEL, str(path), seed=0)
    assert enc.pretrained == str(path) and not enc.model.training
    loaded = enc.model.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value.to(loaded[key].dtype)), key
    # and not the seeded random initialisation the demo uses
    random = load_encoder(MODEL, "none", seed=0).model.state_dict()
    key = "visual.conv1.weight"
    assert not torch.equal(random[key], loaded[key])


def test_bad_checkpoint_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match=rf"checkpoint {bad} could not be loaded into {MODEL}"):
        load_encoder(MODEL, str(bad))


def test_missing_checkpoint_path(tmp_path):
    with pytest.raises(DataError, match=r"embed.pretrained: checkpoint file .*nope.pt' not found"):
        load_encoder(MODEL, str(tmp_path / "nope.pt"))


def test_weights_that_cannot_be_fetched_say_how_to_get_them(monkeypatch, tmp_path):
    # The real open_clip / Hugging Face path, forced offline so it fails at once (instead of
    # retrying the network for a minute), with an empty cache so no earlier copy is found.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_encoder(MODEL, "openai")
    msg = str(err.value)
    assert f"cannot fetch the weights {MODEL}/openai" in msg
    assert "create_model_and_transforms('ViT-B-32', pretrained='openai')" in msg
    assert "https://huggingface.co/timm/vit_base_patch32_clip_224.openai" in msg
    assert "set embed.pretrained to that file's path" in msg


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("ViT-B-32", "none", seed=0)


def test_random_init_is_seeded(encoder):
    import torch
    other = load_encoder("ViT-B-32", "none", seed=0)
    third = load_encoder("ViT-B-32", "none", seed=1)
    def w(e):
        return next(e.model.visual.parameters()).detach()
    assert torch.equal(w(encoder), w(other)) and not torch.equal(w(encoder), w(third))


def test_unknown_model_and_tag_are_param_errors():
    with pytest.raises(ParamError, match=r"embed\.model"):
        load_encoder("ViT-Q-99", "none")
    with pytest.raises(DataError, match=r"embed\.pretrained"):
        load_encoder("ViT-B-32", "no-such-tag")


ONE = dict(batch_size=2, progress=False, threads=1)  # 1 thread: quick on a busy machine too


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_reduced_precision_is_measured_and_leaves_float32_alone(tmp_path, encoder, precision,
                                                                caplog):
    names = write_zip(tmp_path, [20, 21, 22])
    src = ImageSource(tmp_path, "test")
    ref = embed_images(encoder, src, names, **ONE)
    low = embed_images(encoder, src, names, **ONE, precision=precision)
    assert f"{precision} inference" in caplog.text  # never silent
    cos = (ref.astype(np.float64) * low).sum(axis=1)
    assert cos.min() > 0.99 and not np.array_equal(low, ref)
    fid = precision_fidelity(encoder, src, names[:2], precision, batch_size=2, threads=1)
    assert fid["n_images"] == 2
    assert fid["min_cosine_to_float32"] == pytest.approx(cos[:2].min(), abs=1e-6)
    assert fid["max_abs_diff_to_float32"] == pytest.approx(np.abs(ref - low)[:2].max(), abs=1e-6)
    again = embed_images(encoder, src, names, **ONE)
    assert again.tobytes() == ref.tobytes()  # the float32 model was not modified
