import math
import re
from typing import Any, NamedTuple, Optional

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from conftest import ROOT
from neurovision.errors import ParamError
from neurovision.params import (
    EEG_KINDS,
    EMBED_PRECISIONS,
    MAPPERS,
    PROTOCOLS,
    SOURCES,
    TARGETS,
    DemoParams,
    ErpParams,
    Params,
    TrainParams,
    load_params,
    parse_params,
)

PARAMS_YAML = ROOT / "params.yaml"


def nest(dotted: str, value: Any, base: Optional[dict] = None) -> dict:
    """``{"a": {"b": value}}`` for ``"a.b"``, merged into a copy of ``base``."""
    out = yaml.safe_load(yaml.safe_dump(base or {}))
    d = out
    *parents, last = dotted.split(".")
    for key in parents:
        d = d.setdefault(key, {})
    d[last] = value
    return out


def message(raw: Any) -> str:
    with pytest.raises(ParamError) as info:
        parse_params(raw)
    return str(info.value)


# --------------------------------------------------------------------------------------
# params.yaml and the models


def test_project_params_are_valid_and_complete():
    p = load_params(PARAMS_YAML)
    assert isinstance(p, Params)
    assert p.erp.channels == "all"
    raw = yaml.safe_load(PARAMS_YAML.read_text())
    assert set(raw) == {"data", "preprocess", "erp", "embed", "pca", "train", "evaluate",
                        "cache"}


def _typed(x: Any) -> Any:
    """``x`` with every leaf paired with its type, so that 1 != 1.0 and [1] != (1,)."""
    if isinstance(x, dict):
        return {k: _typed(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_typed(v) for v in x])
    return (type(x).__name__, x)


def test_model_defaults_are_params_yaml():
    raw = yaml.safe_load(PARAMS_YAML.read_text())
    assert _typed(Params().model_dump(mode="json")) == _typed(raw)
    assert load_params(PARAMS_YAML) == Params()


def _fields(model: type[BaseModel], prefix: tuple = ()) -> list[tuple[str, ...]]:
    out = []
    for name, field in model.model_fields.items():
        out.append((*prefix, name))
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out += _fields(field.annotation, (*prefix, name))
    return out


def _yaml_key_lines(text: str) -> dict[tuple[str, ...], bool]:
    """``{key path: whether its line has a # comment}`` for params.yaml's block mappings."""
    lines, stack = {}, []
    for line in text.splitlines():
        m = re.match(r"^( *)([A-Za-z_]\w*):(.*)$", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        stack = [*stack[:depth], m.group(2)]
        lines[tuple(stack)] = "#" in m.group(3)
    return lines


def test_every_parameter_is_documented_in_params_yaml():
    """params.yaml is the documentation: each key has a comment, or its section has one
    (for the top-level sections, the file's header)."""
    text = PARAMS_YAML.read_text()
    assert text.startswith("#")
    commented = _yaml_key_lines(text)
    undocumented = [".".join(path) for path in _fields(Params)
                    if not (commented[path] or len(path) == 1 or commented[path[:-1]])]
    assert undocumented == []
    assert set(commented) == set(_fields(Params))


def test_sections_can_be_built_in_code():
    demo = DemoParams(n_train_concepts=3, noise=0)
    assert (demo.n_train_concepts, demo.noise, demo.n_test) == (3, 0.0, 100)
    assert ErpParams(channels=["O1", "Oz"]).channels == ("O1", "Oz")
    t = TrainParams(mapper="contrastive")
    assert (t.mapper, t.ridge.alpha) == ("contrastive", 1000.0)
    with pytest.raises(ValidationError):
        demo.noise = 1.0  # frozen
    with pytest.raises(ValidationError):
        DemoParams(n_tset=1)


def test_lists_become_tuples():
    p = parse_params({"data": {"subjects": [2, 1]}, "train": {"mlp": {"hidden_sizes": [8, 4]}},
                      "erp": {"channels": ["Oz"], "baseline": [-0.2, 0.0]}})
    assert p.data.subjects == (2, 1)
    assert p.train.mlp.hidden_sizes == (8, 4)
    assert p.erp.channels == ("Oz",)
    assert p.erp.baseline == (-0.2, 0.0)


def test_empty_sections_and_file_mean_the_defaults():
    assert parse_params(None) == Params()
    assert parse_params({"erp": None, "train": {"ridge": None}}) == Params()


@pytest.mark.parametrize("choices, where", [
    (SOURCES, "data.source"), (EEG_KINDS, "data.eeg"), (MAPPERS, "train.mapper"),
    (TARGETS, "train.target"),
    (PROTOCOLS, "train.protocol"), (EMBED_PRECISIONS, "embed.precision")])
def test_choice_constants_are_the_accepted_values(choices, where):
    base = {"data": {"subjects": [1, 2], "local_dir": "raw"}}
    for choice in choices:
        parse_params(nest(where, choice, base))
    assert f"expected one of {list(choices)}, got 'nope'" in message(nest(where, "nope", base))


# --------------------------------------------------------------------------------------
# Every rule: a bad value is named in one line, the boundary value is accepted


class Rule(NamedTuple):
    where: str
    bad: Any
    good: Any
    expected: str
    base: Optional[dict] = None


INF = math.inf
DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
LAYERS = "a non-empty list of layers, each 'final' or a relative depth in (0, 1), none repeated"
RULES = [
    Rule("data.source", "s3", "things-eeg2", "one of ['demo', 'things-eeg2', 'local']"),
    Rule("data.subjects", [], [10], "a non-empty list of subjects 1-10"),
    Rule("data.subjects", [0], [1], "subjects numbered 1-10"),
    Rule("data.subjects", [11], [10], "subjects numbered 1-10"),
    Rule("data.subjects", [2, 2], [2, 3], "no repeated subject"),
    Rule("data.local_dir", None, "raw", "a directory path when data.source is 'local'",
         {"data": {"source": "local"}}),
    Rule("data.local_dir", "", "raw", "a directory path when data.source is 'local'",
         {"data": {"source": "local"}}),
    *[Rule(f"data.demo.{k}", 0, 1, "an integer >= 1") for k in (
        "n_train_concepts", "train_images_per_concept", "train_reps", "test_reps")],
    Rule("data.demo.n_test", 1, 2, "an integer >= 2"),
    Rule("data.demo.image_size", 15, 16, "an integer >= 16"),
    Rule("data.demo.noise", -0.1, 0.0, "a finite number >= 0"),
    Rule("data.demo.noise", INF, 1e300, "a finite number >= 0"),
    Rule("data.osf.api_url", "ftp://osf.io/", "http://127.0.0.1:1/v2/",
         "an http(s) URL of the OSF API v2"),
    Rule("data.osf.retries", -1, 0, "an integer in 0-50"),
    Rule("data.osf.retries", 51, 50, "an integer in 0-50"),
    Rule("data.osf.backoff", -0.1, 0.0, "seconds in 0-600"),
    Rule("data.osf.backoff", 600.5, 600.0, "seconds in 0-600"),
    Rule("data.osf.timeout", 0.0, 1e-3, "seconds in (0, 3600]"),
    Rule("data.osf.timeout", 3600.5, 3600.0, "seconds in (0, 3600]"),
    Rule("data.osf.min_interval", -0.1, 0.0, "seconds in 0-600"),
    Rule("data.osf.min_interval", 600.5, 600.0, "seconds in 0-600"),
    Rule("data.eeg", "bids", "raw", "one of ['preprocessed', 'raw']"),
    Rule("data.figshare.api_url", "ftp://figshare.com/", "http://127.0.0.1:1/v2/",
         "an http(s) URL of the Figshare API v2"),
    Rule("data.figshare.article", 0, 1, "an integer >= 1"),
    Rule("data.figshare.retries", 51, 50, "an integer in 0-50"),
    Rule("data.figshare.backoff", -0.1, 0.0, "seconds in 0-600"),
    Rule("data.figshare.timeout", 0.0, 1e-3, "seconds in (0, 3600]"),
    *[Rule(f"data.demo.{k}", least - 1, least,
           f"at least {least} with data.eeg: raw (one repetition per session at least)",
           {"data": {"eeg": "raw"}}) for k, least in (("train_reps", 2), ("test_reps", 4))],
    Rule("preprocess.channels", "(O", "^O|^P", "a valid regular expression (missing ), "
         "unterminated subpattern at position 0)"),
    Rule("preprocess.channels", [], ["Oz"], "'all', a regular expression matched at the start "
         "of each channel name, or a non-empty list of channel names"),
    Rule("preprocess.channels", ["Oz", "Oz"], ["Oz", "O1"], "no repeated channel"),
    Rule("preprocess.tmax", 0.5, 0.51, "a time > tmin (0.5)",
         {"preprocess": {"tmin": 0.5, "baseline": None}}),
    Rule("preprocess.baseline", [0.0, -0.1], [None, None], "null or [start, end] in seconds "
         "(either may be null: the epoch's edge), start < end, inside tmin..tmax"),
    Rule("preprocess.baseline", [-0.3, 0.0], [-0.2, 0.0],
         "a window inside tmin..tmax (-0.2 .. 0.8 s)"),
    Rule("preprocess.baseline", [None, 0.9], [None, 0.8],
         "a window inside tmin..tmax (-0.2 .. 0.8 s)"),
    Rule("preprocess.sfreq", 0.0, 1e-3, "a finite number > 0"),
    Rule("preprocess.l_freq", 0.0, 0.1, "null or a finite number > 0"),
    Rule("preprocess.h_freq", 0.1, 0.11, "a frequency > l_freq (0.1)",
         {"preprocess": {"l_freq": 0.1}}),
    Rule("preprocess.mvnn", "pca", "epochs", "one of ['time', 'epochs', 'none']"),
    Rule("preprocess.mvnn_fit", "test", "train+test", "one of ['train', 'train+test']"),
    Rule("preprocess.max_reps.train", 0, 1, "an integer >= 1"),
    Rule("preprocess.max_reps.test", 0, 1, "an integer >= 1"),
    Rule("erp.channels", "some", "all", "'all' or a non-empty list of channel names"),
    Rule("erp.channels", [], ["Oz"], "'all' or a non-empty list of channel names"),
    Rule("erp.channels", ["Oz", "Oz"], ["Oz", "O1"], "no repeated channel"),
    Rule("erp.tmax", 0.5, 0.51, "a time > tmin (0.5)", {"erp": {"tmin": 0.5}}),
    Rule("erp.baseline", [0.0, 0.0], [-0.2, 0.0], "null or [start, end] with end > start"),
    Rule("erp.baseline", [-0.2], None, "null or [start, end] with end > start"),
    Rule("erp.baseline", [-0.2, -0.1, 0.0], [-0.2, -0.1], "null or [start, end] with end > start"),
    Rule("erp.bin_size", 0, 1, "an integer >= 1"),
    Rule("embed.model", "", "RN50", "an OpenCLIP model name"),
    Rule("embed.pretrained", "", "openai",
         "an OpenCLIP pretrained tag, a checkpoint path, or 'none'"),
    Rule("embed.batch_size", 0, 1, "an integer >= 1"),
    Rule("embed.num_workers", -1, 0, "an integer >= 0"),
    Rule("embed.blur_sigma", -0.1, 0.0, "a finite number of pixels >= 0 (0 = no blur)"),
    Rule("embed.blur_sigma", INF, 1e300, "a finite number of pixels >= 0 (0 = no blur)"),
    Rule("embed.threads", 0, 1, "null or an integer >= 1"),
    Rule("embed.precision", "fp16", "int8", "one of ['float32', 'float16', 'bfloat16', 'int8']"),
    Rule("embed.device", "gpu", "cuda:1", DEVICES),
    Rule("cache.dir", "cache", "/srv/neurovision-cache", "null or an absolute path (or ~/...)"),
    Rule("cache.dir", "./x", "~/nv", "null or an absolute path (or ~/...)"),
    Rule("embed.device", "cuda:", "mps", DEVICES),
    Rule("embed.device", "", "cpu", DEVICES),
    Rule("embed.precision", "float16", "bfloat16", "float32, bfloat16 or int8 with embed.device "
         "cpu (float16 is for a GPU)", {"embed": {"device": "cpu"}}),
    Rule("embed.precision", "int8", "float16", "float32, float16 or bfloat16 with embed.device "
         "cuda:0 (int8 is for a CPU)", {"embed": {"device": "cuda:0"}}),
    Rule("embed.chunk_size", 0, 1, "an integer >= 1"),
    Rule("pca.n_components", 0, 1, "null or an integer >= 1"),
    Rule("train.mapper", "svm", "contrastive",
         "one of ['ridge', 'pls', 'mlp', 'contrastive', 'align']"),
    Rule("train.protocol", "both", "intra", "one of ['intra', 'inter']"),
    Rule("train.target", "eeg", "text", "one of ['image', 'concept_mean', 'text']"),
    Rule("train.val_fraction", 0.0, 1e-3, "a number in (0, 1)"),
    Rule("train.val_fraction", 1.0, 0.999, "a number in (0, 1)"),
    Rule("train.ridge.alpha", -1.0, 0.0, "a finite number >= 0"),
    Rule("train.ridge.alpha", INF, 1e300, "a finite number >= 0"),
    Rule("train.pls.n_components", 0, 1, "an integer >= 1"),
    Rule("train.mlp.hidden_sizes", [], [1], "a non-empty list of integers >= 1"),
    Rule("train.mlp.hidden_sizes", [4, 0], [4, 1], "a non-empty list of integers >= 1"),
    Rule("train.mlp.alpha", -0.1, 0.0, "a number >= 0"),
    Rule("train.mlp.max_iter", 0, 1, "an integer >= 1"),
    Rule("train.mlp.learning_rate", 0.0, 1e-9, "a number > 0"),
    Rule("train.mlp.batch_size", 0, 1, "an integer >= 1"),
    Rule("train.mlp.patience", 0, 1, "an integer >= 1"),
    Rule("train.contrastive.dim", 0, 1, "null or an integer >= 1"),
    Rule("train.contrastive.dropout", -0.1, 0.0, "a number in [0, 1)"),
    Rule("train.contrastive.dropout", 1.0, 0.999, "a number in [0, 1)"),
    Rule("train.contrastive.batch_size", 1, 2, "an integer >= 2"),
    Rule("train.contrastive.learning_rate", 0.0, 1e-9, "a finite number > 0"),
    Rule("train.contrastive.learning_rate", INF, 1e300, "a finite number > 0"),
    Rule("train.contrastive.weight_decay", -0.1, 0.0, "a finite number >= 0"),
    Rule("train.contrastive.weight_decay", INF, 1e300, "a finite number >= 0"),
    Rule("train.contrastive.epochs", 0, 1, "an integer >= 1"),
    Rule("train.contrastive.patience", 0, 1, "an integer >= 1"),
    Rule("train.contrastive.temperature", 0.0, 1e-9, "a number in (0, 1]"),
    Rule("train.contrastive.temperature", 1.01, 1.0, "a number in (0, 1]"),
    Rule("train.contrastive.device", "", "cuda", DEVICES),
    Rule("train.contrastive.device", "tpu", "auto", DEVICES),
    Rule("train.align.device", "cuda0", "cuda:0", DEVICES),
    Rule("train.contrastive.threads", 0, 1, "null or an integer >= 1"),
    Rule("evaluate.top_k", 0, 1, "an integer >= 1"),
    Rule("evaluate.bootstrap", 99, 100, "an integer >= 100"),
    Rule("embed.layers", [], ["final"], LAYERS),
    Rule("embed.layers", [0.5, 0.5], [0.5, "final"], LAYERS),
    Rule("embed.layers", ["final", "final"], ["final"], LAYERS),
    Rule("embed.pool", "max", "cls", "one of ['mean', 'cls']"),
    Rule("train.layer", 0.5, "final", "layers among embed.layers ['final'], none repeated, or "
         "'select'"),
    Rule("train.layer", [0.5, 0.5], [0.5, "final"], "layers among embed.layers ['final', "
         "'0.5'], none repeated, or 'select'", {"embed": {"layers": ["final", 0.5]}}),
    Rule("train.layer", ["final"], "select", "a list of at least 2 layers to fuse (or one layer "
         "without brackets)"),
    Rule("train.target", "text", "image", "'image' or 'concept_mean' unless train.layer is "
         "'final' (text embeddings live in the final layer's space)",
         {"embed": {"layers": ["final", 0.5]}, "train": {"layer": "select"}}),
]
# the align mapper's section has the contrastive mapper's fields and rules
RULES += [r._replace(where=r.where.replace("train.contrastive.", "train.align."))
          for r in RULES if r.where.startswith("train.contrastive.")]


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.where}={r.bad!r}" for r in RULES])
def test_bad_value_is_named_and_the_boundary_is_accepted(rule: Rule):
    assert message(nest(rule.where, rule.bad, rule.base)) == (
        f"params: {rule.where}: expected {rule.expected}, got {rule.bad!r}")
    section = parse_params(nest(rule.where, rule.good, rule.base))
    for key in rule.where.split("."):
        section = getattr(section, key)
    assert section == (tuple(rule.good) if isinstance(rule.good, list) else rule.good)


def test_every_validated_field_has_a_rule():
    """The table above covers each field that has a rule beyond its type."""
    free = {"data.demo.seed", "embed.seed", "train.seed", "erp.tmin", "erp.standardize",
            "evaluate.seed", "preprocess.tmin", "preprocess.seed"}
    fields = {".".join(p) for p in _fields(Params)}
    leaves = {f for f in fields if not any(g.startswith(f + ".") for g in fields)}
    assert leaves - free == {r.where for r in RULES}


def test_raw_erp_window_lies_inside_the_epoch():
    raw = {"data": {"eeg": "raw"}}
    assert message(nest("erp.tmax", 0.9, raw)) == (
        "params: erp.tmax: expected a time inside the epoch, preprocess.tmin..preprocess.tmax "
        "(-0.2 .. 0.8 s), got 0.9")
    assert message(nest("erp.tmin", -0.3, nest("erp.tmax", 0.5, raw))).startswith(
        "params: erp.tmin: expected a time inside the epoch")
    assert message(nest("erp.baseline", [-0.25, 0.0], raw)).startswith(
        "params: erp.baseline: expected a window inside the epoch")
    parse_params(nest("erp.tmax", 1.0, nest("preprocess.tmax", 1.0, raw)))
    parse_params(nest("erp.tmax", 0.9, {}))  # the release's epoch is not the preprocess one


def test_inter_protocol_needs_two_subjects():
    assert message({"train": {"protocol": "inter"}, "data": {"subjects": [3]}}) == (
        "params: train.protocol: expected 'intra' unless data.subjects lists at least 2 "
        "subjects (inter trains on the others), got 'inter'")
    p = parse_params({"train": {"protocol": "inter"}, "data": {"subjects": [3, 1]}})
    assert p.train.protocol == "inter"


# --------------------------------------------------------------------------------------
# Types


@pytest.mark.parametrize("where, bad, expected", [
    ("embed.batch_size", "big", "an integer >= 1"),        # string for int
    ("embed.seed", "3", "an integer"),                     # numeric string for int
    ("embed.seed", True, "an integer"),                    # bool for int
    ("train.contrastive.epochs", 1.5, "an integer >= 1"),  # float for int
    ("train.mlp.max_iter", 200.0, "an integer >= 1"),      # even a whole float
    ("embed.model", ["ViT-B-32"], "an OpenCLIP model name"),  # list for str
    ("train.contrastive.device", 0, DEVICES),  # int for str
    ("data.local_dir", 5, "null or a string"),
    ("erp.standardize", "yes", "true/false"),               # string for bool
    ("erp.standardize", 1, "true/false"),                   # int for bool
    ("train.ridge.alpha", "lots", "a finite number >= 0"),  # non-numeric string for float
    ("train.ridge.alpha", True, "a finite number >= 0"),    # bool for float
    ("train.ridge.alpha", {"a": 1}, "a finite number >= 0"),  # mapping for float
    ("erp.tmin", None, "a number"),                         # null where null is not allowed
    ("erp.channels", "Oz", "'all' or a non-empty list of channel names"),
    ("erp.channels", {"Oz": 1}, "'all' or a non-empty list of channel names"),
    ("data.subjects", "1", "a non-empty list of subjects 1-10"),  # string for list
    ("data.subjects", 1, "a non-empty list of subjects 1-10"),    # int for list
    ("train.mlp.hidden_sizes", 256, "a non-empty list of integers >= 1"),
    ("erp.baseline", -0.2, "null or [start, end] with end > start"),
    ("train.mapper", ["ridge"], "one of ['ridge', 'pls', 'mlp', 'contrastive', 'align']"),
    ("train.ridge", 1000.0, "a mapping"),                   # value for section
    ("erp", "all", "a mapping"),
])
def test_type_errors_name_the_parameter(where, bad, expected):
    assert message(nest(where, bad)) == f"params: {where}: expected {expected}, got {bad!r}"


@pytest.mark.parametrize("where, bad, expected", [
    ("data.subjects", [1, "2"], "data.subjects[1]: expected an integer, got '2'"),
    ("train.mlp.hidden_sizes", [8.0], "train.mlp.hidden_sizes[0]: expected an integer, got 8.0"),
    ("erp.baseline", ["a", 0.0], "erp.baseline[0]: expected a number, got 'a'"),
])
def test_list_items_are_named_by_index(where, bad, expected):
    assert message(nest(where, bad)) == f"params: {expected}"


def test_top_level_must_be_a_mapping():
    assert message([1, 2]) == "params: top level: expected a mapping, got [1, 2]"


def test_yaml_scientific_notation_string_is_a_float():
    # PyYAML reads 1e-3 (no dot) as a string
    assert yaml.safe_load("alpha: 1e-3")["alpha"] == "1e-3"
    assert parse_params({"train": {"mlp": {"alpha": "1e-3"}}}).train.mlp.alpha == 0.001
    assert parse_params({"train": {"ridge": {"alpha": 1000}}}).train.ridge.alpha == 1000.0
    assert message({"train": {"ridge": {"alpha": "1e400"}}}) == (
        "params: train.ridge.alpha: expected a finite number >= 0, got '1e400'")
    assert message({"train": {"pls": {"n_components": "1e1"}}}) == (
        "params: train.pls.n_components: expected an integer >= 1, got '1e1'")


# --------------------------------------------------------------------------------------
# Unknown keys


def test_unknown_key_suggests_the_right_one():
    assert message({"train": {"ridge": {"alpah": 1}}}) == (
        "params: unknown key 'train.ridge.alpah' (expected one of ['alpha']); "
        "did you mean 'alpha'?")
    assert message({"trian": {}}) == (
        "params: unknown key 'trian' (expected one of ['data', 'preprocess', 'erp', 'embed', "
        "'pca', 'train', 'evaluate', 'cache']); did you mean 'train'?")
    assert message({"data": {"demo": {"n_tset": 5}}}).endswith("did you mean 'n_test'?")


def test_unknown_key_without_a_close_match_has_no_hint():
    assert message({"erp": {"zzz": 1}}) == (
        "params: unknown key 'erp.zzz' (expected one of ['channels', 'tmin', 'tmax', "
        "'baseline', 'bin_size', 'standardize'])")


def test_one_section_can_be_validated_under_its_own_name():
    assert parse_params({"n_test": 3}, DemoParams, "--demo").n_test == 3
    with pytest.raises(ParamError, match=r"^params: --demo\.n_test: expected an integer >= 2, "
                                         r"got 1$"):
        parse_params({"n_test": 1}, DemoParams, "--demo")
    with pytest.raises(ParamError, match=r"^params: unknown key '--demo\.nosie'.*'noise'\?$"):
        parse_params({"nosie": 1}, DemoParams, "--demo")


# --------------------------------------------------------------------------------------
# The file itself


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("erp:\n  tmin: 0.0\nerp: [unclosed\n")
    with pytest.raises(ParamError) as info:
        load_params(path)
    text = str(info.value)
    assert text.startswith(f"params: {path}: expected valid YAML, got a syntax error: ")
    assert re.search(r"line \d+", text) and "\n" not in text


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(ParamError, match=rf"^params: cannot read {re.escape(str(tmp_path))}"
                                         r"/absent\.yaml: No such file or directory$"):
        load_params(tmp_path / "absent.yaml")
    with pytest.raises(ParamError, match=r"^params: cannot read .*: Is a directory$"):
        load_params(tmp_path)


def test_load_reports_values_like_parse(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  ridge:\n    alpha: -1\n")
    with pytest.raises(ParamError, match=r"^params: train\.ridge\.alpha: expected a finite "
                                         r"number >= 0, got -1$"):
        load_params(path)
