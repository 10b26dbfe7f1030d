"""Typed, validated pipeline parameters: the one schema for ``params.yaml``.

Every stage calls :func:`load_params` first, so a typo anywhere in the file fails in the
first second with the parameter's dotted name, what was expected and what arrived, and a
"did you mean" hint for unknown keys.  Each stage then uses only its own section.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from neurovision.errors import ParamError

SOURCES = ("demo", "things-eeg2", "local")
MAPPERS = ("ridge", "pls", "mlp", "contrastive")
TARGETS = ("image", "concept_mean", "text")  # train.target
PROTOCOLS = ("intra", "inter")
EMBED_PRECISIONS = ("float32", "bfloat16", "int8")


def _check(cond: bool, where: str, expected: str, got: Any) -> None:
    if not cond:
        raise ParamError(f"params: {where}: expected {expected}, got {got!r}")


@dataclass(frozen=True)
class DemoParams:
    """Size and difficulty of the simulated dataset (see docs/demo.md)."""

    seed: int = 0
    n_train_concepts: int = 150
    train_images_per_concept: int = 4
    n_test: int = 100
    train_reps: int = 4
    test_reps: int = 80
    image_size: int = 96
    noise: float = 2.0

    def validate(self, where: str) -> None:
        for name in ("n_train_concepts", "train_images_per_concept", "train_reps", "test_reps"):
            v = getattr(self, name)
            _check(v >= 1, f"{where}.{name}", "an integer >= 1", v)
        _check(self.n_test >= 2, f"{where}.n_test", "an integer >= 2", self.n_test)
        _check(self.image_size >= 16, f"{where}.image_size", "an integer >= 16", self.image_size)
        _check(self.noise >= 0 and math.isfinite(self.noise), f"{where}.noise",
               "a finite number >= 0", self.noise)


@dataclass(frozen=True)
class OsfParams:
    """How the ``things-eeg2`` source talks to OSF (see :mod:`neurovision.osf`)."""

    api_url: str = "https://api.osf.io/v2/"  # tests point this at a local server
    retries: int = 5  # further tries after HTTP 429/5xx or a connection broken mid-file
    backoff: float = 2.0  # seconds before the first retry, doubled each time (at most 60)
    timeout: float = 30.0  # seconds without an answer before a request is given up
    min_interval: float = 1.0  # seconds between API requests (osfclient's own rate limit)

    def validate(self, where: str) -> None:
        _check(self.api_url.startswith(("https://", "http://")), f"{where}.api_url",
               "an http(s) URL of the OSF API v2", self.api_url)
        _check(0 <= self.retries <= 50, f"{where}.retries", "an integer in 0-50", self.retries)
        for name in ("backoff", "min_interval"):
            v = getattr(self, name)
            _check(0 <= v <= 600 and math.isfinite(v), f"{where}.{name}", "seconds in 0-600", v)
        _check(0 < self.timeout <= 3600, f"{where}.timeout", "seconds in (0, 3600]",
               self.timeout)


@dataclass(frozen=True)
class DataParams:
    source: str = "demo"
    subjects: tuple[int, ...] = (1,)
    local_dir: Optional[str] = None
    demo: DemoParams = field(default_factory=DemoParams)
    osf: OsfParams = field(default_factory=OsfParams)

    def validate(self, where: str) -> None:
        _check(self.source in SOURCES, f"{where}.source", f"one of {list(SOURCES)}", self.source)
        _check(len(self.subjects) >= 1, f"{where}.subjects", "a non-empty list of subjects 1-10",
               list(self.subjects))
        for s in self.subjects:
            _check(1 <= s <= 10, f"{where}.subjects", "subjects numbered 1-10", list(self.subjects))
        _check(len(set(self.subjects)) == len(self.subjects), f"{where}.subjects",
               "no repeated subject", list(self.subjects))
        if self.source == "local":
            _check(bool(self.local_dir), f"{where}.local_dir",
                   "a directory path when data.source is 'local'", self.local_dir)
        self.demo.validate(f"{where}.demo")
        self.osf.validate(f"{where}.osf")


@dataclass(frozen=True)
class ErpParams:
    channels: Union[str, tuple[str, ...]] = "all"
    tmin: float = 0.0
    tmax: float = 0.8
    baseline: Optional[tuple[float, float]] = None
    bin_size: int = 1
    standardize: bool = True

    def validate(self, where: str) -> None:
        if isinstance(self.channels, str):
            _check(self.channels == "all", f"{where}.channels",
                   "'all' or a non-empty list of channel names", self.channels)
        else:
            _check(len(self.channels) >= 1, f"{where}.channels",
                   "'all' or a non-empty list of channel names", list(self.channels))
            _check(len(set(self.channels)) == len(self.channels), f"{where}.channels",
                   "no repeated channel", list(self.channels))
        _check(self.tmax > self.tmin, f"{where}.tmax", f"a time > tmin ({self.tmin})", self.tmax)
        if self.baseline is not None:
            _check(len(self.baseline) == 2 and self.baseline[1] > self.baseline[0],
                   f"{where}.baseline", "null or [start, end] with end > start",
                   list(self.baseline))
        _check(self.bin_size >= 1, f"{where}.bin_size", "an integer >= 1", self.bin_size)


@dataclass(frozen=True)
class EmbedParams:
    model: str = "ViT-B-32"
    pretrained: str = "openai"
    batch_size: int = 64
    num_workers: int = 1  # image-decoding worker processes (0: decode in the main process)
    seed: int = 0
    blur_sigma: float = 0.0  # Gaussian blur of each image before embedding, pixels; 0 = off
    # --- speed (issue 7): threads, num_workers, chunk_size never change the result ---
    threads: Optional[int] = None  # torch intra-op threads; null = all usable CPUs
    precision: str = "float32"  # float32 (exact) | bfloat16 | int8 (faster, lossy, measured)
    chunk_size: int = 512  # images per resumable cache chunk

    def validate(self, where: str) -> None:
        _check(self.blur_sigma >= 0 and math.isfinite(self.blur_sigma), f"{where}.blur_sigma",
               "a finite number of pixels >= 0 (0 = no blur)", self.blur_sigma)
        _check(bool(self.model), f"{where}.model", "an OpenCLIP model name", self.model)
        _check(bool(self.pretrained), f"{where}.pretrained",
               "an OpenCLIP pretrained tag, a checkpoint path, or 'none'", self.pretrained)
        _check(self.batch_size >= 1, f"{where}.batch_size", "an integer >= 1", self.batch_size)
        _check(self.num_workers >= 0, f"{where}.num_workers", "an integer >= 0", self.num_workers)
        if self.threads is not None:
            _check(self.threads >= 1, f"{where}.threads", "null or an integer >= 1", self.threads)
        _check(self.precision in EMBED_PRECISIONS, f"{where}.precision",
               f"one of {list(EMBED_PRECISIONS)}", self.precision)
        _check(self.chunk_size >= 1, f"{where}.chunk_size", "an integer >= 1", self.chunk_size)


@dataclass(frozen=True)
class PcaParams:
    n_components: Optional[int] = 64

    def validate(self, where: str) -> None:
        if self.n_components is not None:
            _check(self.n_components >= 1, f"{where}.n_components", "null or an integer >= 1",
                   self.n_components)


@dataclass(frozen=True)
class RidgeParams:
    alpha: float = 1000.0

    def validate(self, where: str) -> None:
        _check(self.alpha >= 0 and math.isfinite(self.alpha), f"{where}.alpha",
               "a finite number >= 0", self.alpha)


@dataclass(frozen=True)
class PlsParams:
    n_components: int = 16

    def validate(self, where: str) -> None:
        _check(self.n_components >= 1, f"{where}.n_components", "an integer >= 1",
               self.n_components)


@dataclass(frozen=True)
class MlpParams:
    hidden_sizes: tuple[int, ...] = (256,)
    alpha: float = 1e-2
    max_iter: int = 200
    learning_rate: float = 1e-3
    batch_size: int = 128
    patience: int = 10

    def validate(self, where: str) -> None:
        _check(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
               f"{where}.hidden_sizes", "a non-empty list of integers >= 1",
               list(self.hidden_sizes))
        _check(self.alpha >= 0, f"{where}.alpha", "a number >= 0", self.alpha)
        _check(self.max_iter >= 1, f"{where}.max_iter", "an integer >= 1", self.max_iter)
        _check(self.learning_rate > 0, f"{where}.learning_rate", "a number > 0",
               self.learning_rate)
        _check(self.batch_size >= 1, f"{where}.batch_size", "an integer >= 1", self.batch_size)
        _check(self.patience >= 1, f"{where}.patience", "an integer >= 1", self.patience)


@dataclass(frozen=True)
class ContrastiveParams:
    """The contrastive encoder (:mod:`neurovision.contrastive`)."""

    dim: Optional[int] = None  # encoder width; null = the target dimension
    dropout: float = 0.3
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    epochs: int = 200
    patience: int = 20
    temperature: float = 0.07  # initial value; learned
    device: str = "cpu"
    threads: Optional[int] = None

    def validate(self, where: str) -> None:
        if self.dim is not None:
            _check(self.dim >= 1, f"{where}.dim", "null or an integer >= 1", self.dim)
        _check(0 <= self.dropout < 1, f"{where}.dropout", "a number in [0, 1)", self.dropout)
        _check(self.batch_size >= 2, f"{where}.batch_size", "an integer >= 2", self.batch_size)
        _check(self.learning_rate > 0 and math.isfinite(self.learning_rate),
               f"{where}.learning_rate", "a finite number > 0", self.learning_rate)
        _check(self.weight_decay >= 0 and math.isfinite(self.weight_decay),
               f"{where}.weight_decay", "a finite number >= 0", self.weight_decay)
        _check(self.epochs >= 1, f"{where}.epochs", "an integer >= 1", self.epochs)
        _check(self.patience >= 1, f"{where}.patience", "an integer >= 1", self.patience)
        _check(0 < self.temperature <= 1, f"{where}.temperature", "a number in (0, 1]",
               self.temperature)
        _check(bool(self.device), f"{where}.device", "a torch device such as 'cpu' or 'cuda'",
               self.device)
        if self.threads is not None:
            _check(self.threads >= 1, f"{where}.threads", "null or an integer >= 1",
                   self.threads)


@dataclass(frozen=True)
class TrainParams:
    mapper: str = "ridge"
    protocol: str = "intra"
    seed: int = 0
    val_fraction: float = 0.1
    ridge: RidgeParams = field(default_factory=RidgeParams)
    pls: PlsParams = field(default_factory=PlsParams)
    mlp: MlpParams = field(default_factory=MlpParams)
    contrastive: ContrastiveParams = field(default_factory=ContrastiveParams)
    target: str = "image"

    def validate(self, where: str) -> None:
        _check(self.mapper in MAPPERS, f"{where}.mapper", f"one of {list(MAPPERS)}", self.mapper)
        _check(self.protocol in PROTOCOLS, f"{where}.protocol", f"one of {list(PROTOCOLS)}",
               self.protocol)
        _check(0 < self.val_fraction < 1, f"{where}.val_fraction", "a number in (0, 1)",
               self.val_fraction)
        _check(self.target in TARGETS, f"{where}.target", f"one of {list(TARGETS)}",
               self.target)


@dataclass(frozen=True)
class EvaluateParams:
    top_k: int = 10

    def validate(self, where: str) -> None:
        _check(self.top_k >= 1, f"{where}.top_k", "an integer >= 1", self.top_k)


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    erp: ErpParams = field(default_factory=ErpParams)
    embed: EmbedParams = field(default_factory=EmbedParams)
    pca: PcaParams = field(default_factory=PcaParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)

    def validate(self, where: str = "") -> None:
        if self.train.protocol == "inter":
            _check(len(self.data.subjects) >= 2, "train.protocol",
                   "'intra' unless data.subjects lists at least 2 subjects (inter trains on the "
                   "others)", self.train.protocol)


# --------------------------------------------------------------------------------------
# Generic conversion of YAML values into the dataclasses above.


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _type_name(args[0]) if args else "value"
        return f"a list of {inner}" if len(args) == 2 and args[1] is Ellipsis else "a list"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, where)
            except ParamError as exc:
                errors.append(exc)
        raise ParamError(f"params: {where}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ParamError(f"params: {where}: expected null, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"params: {where}: expected {_type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ParamError(f"params: {where}: expected a list of {len(args)} values, "
                             f"got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ParamError(f"params: {where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamError(f"params: {where or 'top level'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            prefix = f"{where}." if where else ""
            raise ParamError(f"params: unknown key '{prefix}{key}' (expected one of "
                             f"{names}){hint}")
    kwargs = {}
    for name in names:
        if name in raw:
            kwargs[name] = _convert(raw[name], hints[name], f"{where}.{name}" if where else name)
    obj = cls(**kwargs)
    obj.validate(where)
    return obj


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as read from YAML) and return typed :class:`Params`."""
    return _build(Params, raw, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raise :class:`ParamError` naming the bad key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParamError(f"params: cannot read {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamError(f"params: {path}: expected valid YAML, got a syntax error: "
                         f"{' '.join(str(exc).split())}") from exc
    return parse_params(raw)
