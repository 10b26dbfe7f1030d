"""Device names: auto's choice and its log line, devices torch cannot use, exact float32."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from neurovision import devices
from neurovision.devices import (
    describe_device,
    device_problem,
    exact_float32,
    resolve_device,
)
from neurovision.errors import ParamError
from neurovision.vision.encoder import DEVICE_PRECISIONS, Inference, check_precision


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without CUDA or MPS, as torch would report it."""
    monkeypatch.setattr(devices, "_cuda_devices", lambda: 0)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_devices", lambda: 1)
    monkeypatch.setattr(devices, "_gpu_name", lambda i: f"Test GPU {i}")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "", "cuda:0 ", "tpu"])
def test_a_misspelt_device_is_named_with_the_spellings(name):
    assert device_problem(name) == "expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    with pytest.raises(ParamError, match=rf"params: embed\.device: {name!r} cannot be used"):
        resolve_device(name, "embed.device")


def test_without_a_gpu_auto_is_the_cpu_and_says_so(no_gpu, caplog):
    with caplog.at_level(logging.INFO, logger="neurovision"):
        assert resolve_device("auto", "embed.device") == "cpu"
    assert caplog.messages == ["embed.device auto: no CUDA device here, using cpu"]
    assert resolve_device("cpu", "embed.device") == "cpu"
    for name, why in [("cuda", "torch finds no CUDA device on this machine"),
                      ("cuda:0", "torch finds no CUDA device on this machine"),
                      ("mps", "torch finds no MPS device on this machine")]:
        assert device_problem(name) == why
        with pytest.raises(ParamError) as info:
            resolve_device(name, "train.align.device")
        assert str(info.value) == (
            f"params: train.align.device: {name!r} cannot be used here: {why} (set "
            f"train.align.device: cpu, or auto to use a GPU when there is one)")


def test_with_a_gpu_auto_is_cuda_and_a_missing_index_is_refused(one_gpu, caplog):
    with caplog.at_level(logging.INFO, logger="neurovision"):
        assert resolve_device("auto", "embed.device") == "cuda"
    assert caplog.messages == ["embed.device auto: using cuda (Test GPU 0)"]
    assert resolve_device("cuda:0", "embed.device") == "cuda:0"
    assert device_problem("cuda") is None and device_problem("cuda:0") is None
    assert device_problem("cuda:1") == "torch finds 1 CUDA device(s) here, so no cuda:1"
    # the GPU's model enters cache keys and provenance
    assert describe_device("cuda") == "cuda:0 (Test GPU 0)"
    assert describe_device("cuda:2") == "cuda:2 (Test GPU 2)"
    assert describe_device("cpu") == "cpu"


def test_float32_on_a_gpu_turns_tf32_off_and_restores_it():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        with exact_float32("cuda:0"):
            assert not torch.backends.cuda.matmul.allow_tf32
            assert not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32
        with exact_float32("cpu"):  # nothing to change on a CPU
            assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_each_device_runs_its_precisions_and_refuses_the_others():
    assert DEVICE_PRECISIONS == {"cpu": ("float32", "bfloat16", "int8"),
                                 "cuda": ("float32", "float16", "bfloat16"),
                                 "mps": ("float32", "float16", "bfloat16")}
    check_precision("int8", "cpu")
    check_precision("float16", "cuda:1")
    with pytest.raises(ParamError, match=r"params: embed\.precision: 'float16' does not run on "
                       r"cpu \(embed\.device\); expected one of \['float32', 'bfloat16', 'int8'\]"):
        check_precision("float16", "cpu")
    with pytest.raises(ParamError, match=r"'int8' does not run on cuda"):
        check_precision("int8", "cuda")


@pytest.mark.filterwarnings("ignore:.*Disabling autocast")  # built, not entered, on a CPU
def test_reduced_precision_on_a_gpu_is_autocast_and_float32_is_not():
    fp16 = Inference(None, torch.float32, "cuda:0", "float16").numerics()
    assert isinstance(fp16, torch.autocast)
    assert fp16.device == "cuda" and fp16.fast_dtype == torch.float16
    bf16 = Inference(None, torch.float32, "mps", "bfloat16").numerics()
    assert isinstance(bf16, torch.autocast) and bf16.fast_dtype == torch.bfloat16
    for device in ("cuda:0", "cpu"):
        assert not isinstance(Inference(None, torch.float32, device, "float32").numerics(),
                              torch.autocast)
    # the CPU's bfloat16 is a cast copy of the weights, not autocast
    assert not isinstance(Inference(None, torch.bfloat16, "cpu", "bfloat16").numerics(),
                          torch.autocast)


def test_the_contrastive_mapper_on_auto_without_a_gpu_is_the_cpu_fit(no_gpu):
    from neurovision.contrastive import ContrastiveMapper
    from test_contrastive import concept_data

    X, y, g = concept_data(n_concepts=12)
    kw = dict(epochs=3, patience=3, batch_size=16, threads=1, verbose=False)
    auto = ContrastiveMapper(device="auto", **kw).fit(X, y, groups=g)
    cpu = ContrastiveMapper(device="cpu", **kw).fit(X, y, groups=g)
    np.testing.assert_array_equal(auto.predict(X), cpu.predict(X))
    with pytest.raises(ValueError, match="device 'cuda': torch finds no CUDA device"):
        ContrastiveMapper(device="cuda", **kw).fit(X, y, groups=g)


def test_what_torch_reports_is_what_the_checks_see(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert devices._cuda_devices() == 0  # no CUDA: no devices, whatever the count says
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices._cuda_devices() == 3
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU number {i}")
    assert devices._gpu_name(2) == "GPU number 2"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices._mps_available() is True
