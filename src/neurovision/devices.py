"""Torch devices by name (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked before
any work starts, and the numerics settings that keep float32 exact on a GPU.

``auto`` means CUDA when torch sees a CUDA device, else the CPU; which one was taken is
logged. A device torch cannot use here is a :class:`~neurovision.errors.ParamError` naming
the parameter, raised before anything is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Optional

from neurovision.errors import ParamError

log = logging.getLogger(__name__)

#: What a device parameter may say (params.py validates the spelling, this module the machine)
DEVICE_PATTERN = r"^(auto|cpu|cuda|cuda:\d+|mps)$"
DEVICE_TEXT = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def _cuda_devices() -> int:
    """How many CUDA devices torch sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    import torch

    return torch.backends.mps.is_available()


def _gpu_name(index: int) -> str:
    import torch

    return torch.cuda.get_device_name(index)


def device_problem(device: str) -> Optional[str]:
    """Why torch cannot run on ``device`` here, or None when it can (``auto`` always can)."""
    if not re.match(DEVICE_PATTERN, device):
        return f"expected {DEVICE_TEXT}"
    if device.startswith("cuda"):
        n = _cuda_devices()
        index = int(device.partition(":")[2] or 0)
        if n == 0:
            return "torch finds no CUDA device on this machine"
        if index >= n:
            return f"torch finds {n} CUDA device(s) here, so no cuda:{index}"
    if device == "mps" and not _mps_available():
        return "torch finds no MPS device on this machine"
    return None


def check_device(device: str, param: str) -> str:
    """The device ``device`` (of parameter ``param``) runs on here, without logging: ``auto``
    becomes ``cuda`` or ``cpu``; a device torch cannot use is a ParamError naming ``param``."""
    problem = device_problem(device)
    if problem:
        raise ParamError(f"params: {param}: {device!r} cannot be used here: {problem} "
                         f"(set {param}: cpu, or auto to use a GPU when there is one)")
    if device != "auto":
        return device
    return "cuda" if _cuda_devices() else "cpu"


def resolve_device(device: str, param: str) -> str:
    """:func:`check_device`, and for ``auto`` a log line saying which device it took."""
    chosen = check_device(device, param)
    if device == "auto":
        if chosen == "cuda":
            log.info("%s auto: using cuda (%s)", param, _gpu_name(0))
        else:
            log.info("%s auto: no CUDA device here, using cpu", param)
    return chosen


def describe_device(device: str) -> str:
    """``device`` with the GPU's model name (part of cache keys and provenance: two GPU
    models can round differently)."""
    if not device.startswith("cuda"):
        return device
    index = int(device.partition(":")[2] or 0)
    return f"cuda:{index} ({_gpu_name(index)})"


@contextlib.contextmanager
def exact_float32(device: str) -> Iterator[None]:
    """On a CUDA device, no TF32 inside the block (torch lets cuDNN convolutions use it by
    default, which rounds float32 inputs to 10 mantissa bits); restored on exit."""
    if not device.startswith("cuda"):
        yield
        return
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
