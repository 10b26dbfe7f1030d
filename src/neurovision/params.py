"""Typed, validated pipeline parameters: the one schema for ``params.yaml``.

Every stage calls :func:`load_params` first, so a typo anywhere in the file fails in the
first second with the parameter's dotted name, what was expected and what arrived, and a
"did you mean" hint for unknown keys.  Each stage then uses only its own section.

The sections are frozen pydantic models whose defaults are those of ``params.yaml``.  A
field's "expected" text is its ``description`` where it has one, else it is worded from the
field's type and bounds ("an integer >= 1", "a number in (0, 1)", "one of [...]").
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypeVar, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.types import AllowInfNan
from pydantic_core import PydanticCustomError

from neurovision.devices import DEVICE_PATTERN, DEVICE_TEXT
from neurovision.errors import ParamError

Source = Literal["demo", "things-eeg2", "local"]
EegKind = Literal["preprocessed", "raw"]  # data.eeg: which recordings the source provides
Mvnn = Literal["time", "epochs", "none"]  # preprocess.mvnn
MvnnFit = Literal["train", "train+test"]  # preprocess.mvnn_fit
Mapper = Literal["ridge", "pls", "mlp", "contrastive", "align"]
Target = Literal["image", "concept_mean", "text"]  # train.target
Protocol = Literal["intra", "inter"]
EmbedPrecision = Literal["float32", "float16", "bfloat16", "int8"]
Pool = Literal["mean", "cls"]  # embed.pool
FINAL = "final"

SOURCES: tuple[str, ...] = typing.get_args(Source)
EEG_KINDS: tuple[str, ...] = typing.get_args(EegKind)
MAPPERS: tuple[str, ...] = typing.get_args(Mapper)
TARGETS: tuple[str, ...] = typing.get_args(Target)
PROTOCOLS: tuple[str, ...] = typing.get_args(Protocol)
EMBED_PRECISIONS: tuple[str, ...] = typing.get_args(EmbedPrecision)


def _yaml_number(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``1e-3`` as the string '1e-3': accept numeric strings."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


Int = Annotated[int, Strict()]  # no bool, no "3", no 3.0
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, BeforeValidator(_yaml_number), Strict()]  # ints are fine
Finite = Annotated[Float, AllowInfNan(False)]


Depth = Annotated[Float, Field(gt=0, lt=1)]
#: a layer of the vision model: its final embedding, or a block at a relative depth
Layer = Union[Literal["final"], Depth]
LAYERS_TEXT = ("a non-empty list of layers, each 'final' or a relative depth in (0, 1), "
               "none repeated")


def layer_name(layer: str | float) -> str:
    """``"final"``, or a depth as it is written (``0.5`` -> ``"0.5"``): a layer's folder
    under ``embeds/`` and how ``train.layer`` names it."""
    return FINAL if layer == FINAL else format(float(layer), "g")


def _bad(got: Any, expected: Optional[str] = None, key: Optional[str] = None
         ) -> PydanticCustomError:
    """A broken rule: ``expected`` (default: the field's description) and what arrived.

    ``key`` names the field (dotted, relative to the model) when a model validator raises."""
    return PydanticCustomError("param", "expected {expected}",
                               {"expected": expected, "got": got, "key": key})


def _check_channel_list(names: tuple[str, ...]) -> None:
    """A list of channel names (erp.channels, preprocess.channels): not empty, no repeats."""
    if not names:
        raise _bad([])
    if len(set(names)) != len(names):
        raise _bad(list(names), "no repeated channel")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        return {} if data is None else data  # a section written as `demo:` with nothing under


class DemoParams(_Section):
    """Size and difficulty of the simulated dataset (see docs/demo.md)."""

    seed: Int = 0
    n_train_concepts: Int = Field(150, ge=1)
    train_images_per_concept: Int = Field(4, ge=1)
    n_test: Int = Field(100, ge=2)
    train_reps: Int = Field(4, ge=1)
    test_reps: Int = Field(80, ge=1)
    image_size: Int = Field(96, ge=16)
    noise: Finite = Field(2.0, ge=0)


class OsfParams(_Section):
    """How the ``things-eeg2`` source talks to OSF (see :mod:`neurovision.osf`)."""

    # tests point this at a local server
    api_url: Str = Field("https://api.osf.io/v2/", pattern=r"^https?://",
                         description="an http(s) URL of the OSF API v2")
    # further tries after HTTP 429/5xx or a connection broken mid-file
    retries: Int = Field(5, ge=0, le=50, description="an integer in 0-50")
    # seconds before the first retry, doubled each time (at most 60)
    backoff: Finite = Field(2.0, ge=0, le=600, description="seconds in 0-600")
    # seconds without an answer before a request is given up
    timeout: Float = Field(30.0, gt=0, le=3600, description="seconds in (0, 3600]")
    # seconds between API requests (osfclient's own rate limit)
    min_interval: Finite = Field(1.0, ge=0, le=600, description="seconds in 0-600")


class FigshareParams(_Section):
    """How ``data.eeg: raw`` with ``things-eeg2`` talks to Figshare (see
    :mod:`neurovision.figshare`)."""

    # tests point this at a local server
    api_url: Str = Field("https://api.figshare.com/v2/", pattern=r"^https?://",
                         description="an http(s) URL of the Figshare API v2")
    # the Figshare+ article that holds the raw recordings
    article: Int = Field(18470912, ge=1)
    retries: Int = Field(5, ge=0, le=50, description="an integer in 0-50")
    backoff: Finite = Field(2.0, ge=0, le=600, description="seconds in 0-600")
    timeout: Float = Field(30.0, gt=0, le=3600, description="seconds in (0, 3600]")


class DataParams(_Section):
    source: Source = "demo"
    eeg: EegKind = "preprocessed"
    subjects: tuple[Int, ...] = Field((1,), description="a non-empty list of subjects 1-10")
    local_dir: Optional[Str] = None
    demo: DemoParams = DemoParams()
    osf: OsfParams = OsfParams()
    figshare: FigshareParams = FigshareParams()

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise _bad([])
        if not all(1 <= s <= 10 for s in v):
            raise _bad(list(v), "subjects numbered 1-10")
        if len(set(v)) != len(v):
            raise _bad(list(v), "no repeated subject")
        return v

    @model_validator(mode="after")
    def _local_needs_a_dir(self) -> DataParams:
        if self.source == "local" and not self.local_dir:
            raise _bad(self.local_dir, "a directory path when data.source is 'local'",
                       "local_dir")
        return self


class ErpParams(_Section):
    channels: Union[Literal["all"], tuple[Str, ...]] = Field(
        "all", description="'all' or a non-empty list of channel names")
    tmin: Float = 0.0
    tmax: Float = 0.8
    baseline: Optional[tuple[Float, ...]] = Field(
        None, description="null or [start, end] with end > start")
    bin_size: Int = Field(1, ge=1)
    standardize: Bool = True

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: Union[str, tuple[str, ...]]) -> Union[str, tuple[str, ...]]:
        if isinstance(v, tuple):
            _check_channel_list(v)
        return v

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: Optional[tuple[float, ...]]) -> Optional[tuple[float, ...]]:
        if v is not None and not (len(v) == 2 and v[1] > v[0]):
            raise _bad(list(v))
        return v

    @model_validator(mode="after")
    def _window(self) -> ErpParams:
        if not self.tmax > self.tmin:
            raise _bad(self.tmax, f"a time > tmin ({self.tmin})", "tmax")
        return self


class MaxRepsParams(_Section):
    """Repetitions of each image kept per session (``preprocess.max_reps``)."""

    train: Int = Field(2, ge=1)
    test: Int = Field(20, ge=1)


#: The channels the official release keeps: names starting with O or P (17 of the 63).
RELEASE_CHANNEL_REGEX = "^O *|^P *"


class PreprocessParams(_Section):
    """How preprocess@N turns raw recordings into the release's format (``data.eeg: raw``).

    The defaults are the official release's steps (gifale95/eeg_encoding), except
    ``mvnn_fit``: the release's noise covariance also used the test partition."""

    channels: Union[Literal["all"], tuple[Str, ...], Str] = Field(
        RELEASE_CHANNEL_REGEX, description=(
            "'all', a regular expression matched at the start of each channel name, or a "
            "non-empty list of channel names"))
    tmin: Finite = -0.2
    tmax: Finite = 0.8
    baseline: Optional[tuple[Optional[Finite], ...]] = Field(
        (None, 0.0), description=(
            "null or [start, end] in seconds (either may be null: the epoch's edge), start < "
            "end, inside tmin..tmax"))
    sfreq: Finite = Field(100.0, gt=0)
    l_freq: Optional[Finite] = Field(None, gt=0)
    h_freq: Optional[Finite] = Field(None, gt=0)
    mvnn: Mvnn = "time"
    mvnn_fit: MvnnFit = "train"
    max_reps: MaxRepsParams = MaxRepsParams()
    seed: Int = 20200220

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: Union[str, tuple[str, ...]]) -> Union[str, tuple[str, ...]]:
        if isinstance(v, tuple):
            _check_channel_list(v)
        elif v != "all":
            try:
                re.compile(v)
            except re.error as exc:
                raise _bad(v, f"a valid regular expression ({exc})") from None
        return v

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: Optional[tuple]) -> Optional[tuple]:
        if v is not None and not (len(v) == 2 and (None in v or v[1] > v[0])):
            raise _bad(list(v))
        return v

    @model_validator(mode="after")
    def _window(self) -> PreprocessParams:
        if not self.tmax > self.tmin:
            raise _bad(self.tmax, f"a time > tmin ({self.tmin})", "tmax")
        if self.baseline is not None:
            start, end = self.baseline
            if (start is not None and start < self.tmin) or (end is not None and end > self.tmax):
                raise _bad(list(self.baseline), f"a window inside tmin..tmax ({self.tmin} .. "
                           f"{self.tmax} s)", "baseline")
        if self.l_freq is not None and self.h_freq is not None and not self.h_freq > self.l_freq:
            raise _bad(self.h_freq, f"a frequency > l_freq ({self.l_freq})", "h_freq")
        return self


class EmbedParams(_Section):
    model: Str = Field("ViT-B-32", min_length=1, description="an OpenCLIP model name")
    pretrained: Str = Field("none", min_length=1, description=(
        "an OpenCLIP pretrained tag, a checkpoint path, or 'none'"))
    batch_size: Int = Field(64, ge=1)
    num_workers: Int = Field(1, ge=0)  # image-decoding worker processes (0: the main process)
    seed: Int = 0
    blur_sigma: Finite = Field(0.0, ge=0, description=(  # Gaussian blur before embedding
        "a finite number of pixels >= 0 (0 = no blur)"))
    # --- speed: threads, num_workers, chunk_size never change the result ---
    threads: Optional[Int] = Field(None, ge=1)  # torch intra-op threads; null = all usable CPUs
    # where the model runs: auto = CUDA when torch sees a GPU, else the CPU (logged)
    device: Str = Field("auto", pattern=DEVICE_PATTERN, description=DEVICE_TEXT)
    # float32 (exact); faster and lossy: float16 | bfloat16 on a GPU, bfloat16 | int8 on a CPU
    precision: EmbedPrecision = "float32"
    chunk_size: Int = Field(512, ge=1)  # images per resumable cache chunk
    # the layers to extract, from one pass per image (README "Decoding quality")
    layers: tuple[Layer, ...] = Field((FINAL,), description=LAYERS_TEXT)
    pool: Pool = "mean"  # how a block's output becomes a vector: mean of the patches, or cls

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: tuple) -> tuple:
        names = [layer_name(x) for x in v]
        if not v or len(set(names)) != len(names):
            raise _bad(list(v))
        return v

    @model_validator(mode="after")
    def _precision_runs_on_the_device(self) -> EmbedParams:
        # with auto, the stage checks once the device is known (vision.encoder.check_precision)
        if self.device == "cpu" and self.precision == "float16":
            raise _bad(self.precision, "float32, bfloat16 or int8 with embed.device cpu "
                       "(float16 is for a GPU)", "precision")
        if self.device not in ("cpu", "auto") and self.precision == "int8":
            raise _bad(self.precision, f"float32, float16 or bfloat16 with embed.device "
                       f"{self.device} (int8 is for a CPU)", "precision")
        return self


class PcaParams(_Section):
    n_components: Optional[Int] = Field(64, ge=1)


class RidgeParams(_Section):
    alpha: Finite = Field(1000.0, ge=0)


class PlsParams(_Section):
    n_components: Int = Field(16, ge=1)


class MlpParams(_Section):
    hidden_sizes: tuple[Int, ...] = Field(
        (256,), description="a non-empty list of integers >= 1")
    alpha: Float = Field(1e-2, ge=0)
    max_iter: Int = Field(200, ge=1)
    learning_rate: Float = Field(1e-3, gt=0)
    batch_size: Int = Field(128, ge=1)
    patience: Int = Field(10, ge=1)

    @field_validator("hidden_sizes")
    @classmethod
    def _hidden_sizes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or not all(h >= 1 for h in v):
            raise _bad(list(v))
        return v


class ContrastiveParams(_Section):
    """The contrastive encoder (:mod:`neurovision.contrastive`)."""

    dim: Optional[Int] = Field(None, ge=1)  # encoder width; null = the target dimension
    dropout: Float = Field(0.3, ge=0, lt=1)
    batch_size: Int = Field(1024, ge=2)
    learning_rate: Finite = Field(1e-3, gt=0)
    weight_decay: Finite = Field(0.1, ge=0)
    epochs: Int = Field(200, ge=1)
    patience: Int = Field(20, ge=1)
    temperature: Float = Field(0.07, gt=0, le=1)  # initial value; learned
    # cpu by default: the encoder is tiny, and the fit is then the same on every machine
    device: Str = Field("cpu", pattern=DEVICE_PATTERN, description=DEVICE_TEXT)
    threads: Optional[Int] = Field(None, ge=1)


class TrainParams(_Section):
    mapper: Mapper = "ridge"
    # which extracted layer(s) the mapper predicts: one of embed.layers, a list of them
    # (fusion), or 'select' (the best on held-out training concepts)
    layer: Union[Literal["select"], Layer, tuple[Layer, ...]] = Field(FINAL, description=(
        "'final', a relative depth, a list of them, or 'select'"))
    protocol: Protocol = "intra"
    seed: Int = 0
    val_fraction: Float = Field(0.1, gt=0, lt=1)
    ridge: RidgeParams = RidgeParams()
    pls: PlsParams = PlsParams()
    mlp: MlpParams = MlpParams()
    contrastive: ContrastiveParams = ContrastiveParams()
    align: ContrastiveParams = ContrastiveParams()  # the two towers (neurovision.align)
    target: Target = "image"

    def layers(self) -> list[str]:
        """The layer names ``train.layer`` uses ('select': every one of ``embed.layers``,
        which the caller supplies)."""
        if self.layer == "select":
            raise ValueError("train.layer 'select' uses every layer of embed.layers")
        chosen = self.layer if isinstance(self.layer, tuple) else (self.layer,)
        return [layer_name(x) for x in chosen]


class EvaluateParams(_Section):
    top_k: Int = Field(10, ge=1)
    bootstrap: Int = Field(10000, ge=100)  # resamples of the test images for the 95 % intervals
    seed: Int = 0  # seed of those resamples


class CacheParams(_Section):
    """Where verified downloads and embedding chunks are kept (:mod:`neurovision.cache_dirs`).

    No stage's DVC param: where the cache lives never changes a result."""

    # null: $NEUROVISION_CACHE if set, else the user's cache directory (~/.cache/neurovision)
    dir: Optional[Str] = Field(None, pattern=r"^(/|~)", description=(
        "null or an absolute path (or ~/...)"))


class Params(_Section):
    data: DataParams = DataParams()
    preprocess: PreprocessParams = PreprocessParams()
    erp: ErpParams = ErpParams()
    embed: EmbedParams = EmbedParams()
    pca: PcaParams = PcaParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    cache: CacheParams = CacheParams()

    @model_validator(mode="after")
    def _inter_needs_subjects(self) -> Params:
        if self.train.protocol == "inter" and len(self.data.subjects) < 2:
            raise _bad(self.train.protocol, "'intra' unless data.subjects lists at least 2 "
                       "subjects (inter trains on the others)", "train.protocol")
        return self

    @model_validator(mode="after")
    def _layer_is_extracted(self) -> Params:
        extracted = [layer_name(x) for x in self.embed.layers]
        layer = self.train.layer
        if layer == "select":
            chosen = extracted
        else:
            chosen = self.train.layers()
            missing = [c for c in chosen if c not in extracted]
            if missing or (isinstance(layer, tuple) and len(set(chosen)) != len(chosen)):
                raise _bad(list(layer) if isinstance(layer, tuple) else layer,
                           f"layers among embed.layers {extracted}, none repeated, or "
                           f"'select'", "train.layer")
            if isinstance(layer, tuple) and len(chosen) < 2:
                raise _bad(list(layer), "a list of at least 2 layers to fuse (or one layer "
                           "without brackets)", "train.layer")
        if self.train.target == "text" and chosen != [FINAL]:
            raise _bad(self.train.target, "'image' or 'concept_mean' unless train.layer is "
                       "'final' (text embeddings live in the final layer's space)",
                       "train.target")
        return self

    @model_validator(mode="after")
    def _raw_demo_sessions(self) -> Params:
        """The simulated raw recordings show each training image in 2 of the 4 sessions and
        every test image in all 4: each session needs one repetition at least."""
        if self.data.eeg == "raw" and self.data.source == "demo":
            for key, least in (("train_reps", 2), ("test_reps", 4)):
                value = getattr(self.data.demo, key)
                if value < least:
                    raise _bad(value, f"at least {least} with data.eeg: raw (one repetition "
                               f"per session at least)", f"data.demo.{key}")
        return self

    @model_validator(mode="after")
    def _erp_inside_the_epoch(self) -> Params:
        """With raw recordings, the ERP window lies inside the epochs preprocess@N cuts."""
        if self.data.eeg != "raw":
            return self
        pre, erp = self.preprocess, self.erp
        where = f"inside the epoch, preprocess.tmin..preprocess.tmax ({pre.tmin} .. {pre.tmax} s)"
        eps = 1e-9
        if erp.tmin < pre.tmin - eps:
            raise _bad(erp.tmin, f"a time {where}", "erp.tmin")
        if erp.tmax > pre.tmax + eps:
            raise _bad(erp.tmax, f"a time {where}", "erp.tmax")
        if erp.baseline is not None and (erp.baseline[0] < pre.tmin - eps
                                         or erp.baseline[1] > pre.tmax + eps):
            raise _bad(list(erp.baseline), f"a window {where}", "erp.baseline")
        return self


# --------------------------------------------------------------------------------------
# pydantic's ValidationError as one line


_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}  # annotated_types.Ge(ge=0), ...
_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}


def _describe(tp: Any, metadata: tuple = ()) -> str:
    """What a value of type ``tp`` with constraints ``metadata`` must be, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _describe(args[0], (*tp.__metadata__, *metadata))
    if origin is Union and type(None) in args:
        (rest,) = (a for a in args if a is not type(None))
        return "null or " + _describe(rest, metadata)
    if origin is Literal:
        return f"one of {list(args)}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a mapping"
    word = _WORDS[tp]
    if any(isinstance(m, AllowInfNan) and not m.allow_inf_nan for m in metadata):
        word = "a finite number"
    bounds = {key: (op, getattr(m, key)) for m in metadata for key, op in _BOUNDS.items()
              if hasattr(m, key)}  # {"ge": (">=", 0), ...}
    low = bounds.get("ge") or bounds.get("gt")
    high = bounds.get("le") or bounds.get("lt")
    if low and high:
        return (f"{word} in {'[' if 'ge' in bounds else '('}{low[1]}, "
                f"{high[1]}{']' if 'le' in bounds else ')'}")
    if low or high:
        op, value = low or high
        return f"{word} {op} {value}"
    return word


def _item_type(tp: Any) -> Any:
    """``X`` of a (possibly optional) ``tuple[X, ...]``."""
    while typing.get_origin(tp) in (Annotated, Union):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return typing.get_args(tp)[0]


def _one_line(err: dict, model: type[BaseModel], where: str) -> str:
    """``params: <dotted.key>: expected <what>, got <value>`` for one pydantic error."""
    loc, ctx = err["loc"], err.get("ctx") or {}
    if err["type"] == "extra_forbidden":
        loc, key = loc[:-1], loc[-1]
    dotted, tp, metadata, description = where, model, (), None
    for part in loc:  # walk down the models; stop at a union member's tag
        if isinstance(part, int):
            tp, metadata, description = _item_type(tp), (), None
            dotted += f"[{part}]"
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields[part]
            tp, metadata, description = field.annotation, tuple(field.metadata), field.description
            dotted = f"{dotted}.{part}" if dotted else part
        else:
            break
    if err["type"] == "extra_forbidden":
        names = list(tp.model_fields)
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        prefix = f"{dotted}." if dotted else ""
        return f"params: unknown key '{prefix}{key}' (expected one of {names}){hint}"
    if err["type"] == "param":
        if ctx["key"]:
            dotted = f"{dotted}.{ctx['key']}" if dotted else ctx["key"]
        expected, got = ctx["expected"] or description, ctx["got"]
    else:
        expected, got = description or _describe(tp, metadata), err["input"]
    return f"params: {dotted or 'top level'}: expected {expected}, got {got!r}"


_Model = TypeVar("_Model", bound=BaseModel)


def parse_params(raw: Any, model: type[_Model] = Params, where: str = ""
                 ) -> _Model:
    """Validate a params mapping (as read from YAML) and return typed :class:`Params`.

    ``model`` and ``where`` validate one section instead, its keys named ``<where>.<key>``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ParamError(_one_line(exc.errors()[0], model, where)) from None


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
