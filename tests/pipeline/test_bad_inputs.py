"""The table of bad inputs: each row corrupts one thing and runs the real stage script.

A module fixture runs every stage of ``dvc.yaml`` once, in order, as the subprocess its
``cmd`` names, on a tiny demo: a workspace of good outputs.  Each row copies that workspace,
corrupts one input (or one parameter), runs one stage the way DVC would, and checks:

- the exit status is 1;
- stderr holds exactly one ``ERROR`` line, and no traceback anywhere;
- that line names the file or parameter, what was expected and what arrived;
- every file in the workspace is byte-identical afterwards, and no file was added: no
  partial output, and the earlier good outputs (of the same stage, in the same place) intact.

A second test runs every stage with a typo in params.yaml: each fails before doing any work.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import ROOT, TINY_DEMO, write_params
from neurovision.io import load_npy_dict, save_npy_dict

#: TINY_DEMO, smaller still: 40 training and 8 test images, so the good run takes seconds.
SMALL_DEMO = {**TINY_DEMO, "n_train_concepts": 10, "n_test": 8, "train_reps": 2, "test_reps": 4,
              "image_size": 32}
N_TRAIN = SMALL_DEMO["n_train_concepts"] * SMALL_DEMO["train_images_per_concept"]
N_TEST = SMALL_DEMO["n_test"]
PCA_DIM = 8

EEG_TRAIN = "data/eeg/sub-1/preprocessed_eeg_training.npy"
EEG_TEST = "data/eeg/sub-1/preprocessed_eeg_test.npy"
IMAGES = "data/raw/images"
METADATA = f"{IMAGES}/image_metadata.npy"


# --------------------------------------------------------------------------------------
# Running the stages of dvc.yaml without dvc


def _lookup(params: dict, dotted: str):
    value = params
    for part in dotted.split("."):
        value = value[part]
    return value


def _subst(text: str, params: dict, item=None) -> str:
    return re.sub(r"\$\{([^}]+)\}",
                  lambda m: str(item) if m.group(1) == "item" else str(_lookup(params, m.group(1))),
                  text)


def _paths(entries, params, item) -> list[str]:
    out = []
    for e in entries or []:
        out.append(_subst(next(iter(e)) if isinstance(e, dict) else e, params, item))
    return out


def pipeline_stages(params: dict) -> dict[str, tuple[str, list[str]]]:
    """``{stage name: (cmd, outputs)}`` of dvc.yaml, in file order, foreach expanded."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    stages = {}
    for name, st in spec.items():
        if "foreach" in st:
            items = st["foreach"]
            if isinstance(items, str):
                items = _lookup(params, items.strip()[2:-1])
            body, variants = st["do"], [(f"{name}@{i}", i) for i in items]
        else:
            body, variants = st, [(name, None)]
        for full, item in variants:
            assert isinstance(body["cmd"], str), f"dvc.yaml: {name}: expected one cmd string"
            outs = [p for key in ("outs", "metrics", "plots")
                    for p in _paths(body.get(key), params, item)]
            stages[full] = (_subst(body["cmd"], params, item), outs)
    return stages


def run_stage(ws: Path, cmd: str) -> subprocess.CompletedProcess:
    argv = shlex.split(cmd)
    assert argv[0] == "python", cmd
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *argv[1:]], cwd=ws, capture_output=True, text=True,
                          env=env, timeout=300)


def caches(cmd: str) -> list[str]:
    """Directories a stage keeps between runs on purpose (``--cache``, ``--cache-dir``):
    resumable work, not outputs.  Finished entries may appear there when a stage fails."""
    argv = shlex.split(cmd)
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--cache", "--cache-dir")]


def snapshot(ws: Path, skip: list[str] = ()) -> dict[str, str]:
    """sha256 of every file (and a marker for every directory) below ``ws``."""
    out = {}
    skip = ["stages", *skip]
    for p in sorted(ws.rglob("*")):
        rel = p.relative_to(ws).as_posix()
        if any(rel == s or rel.startswith(f"{s}/") or s.startswith(f"{rel}/") for s in skip):
            continue
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporaries(ws: Path) -> list[str]:
    return [p.relative_to(ws).as_posix() for p in ws.rglob("*")
            if p.name.endswith((".tmp", ".old")) and not p.relative_to(ws).as_posix()
            .startswith("stages/")]


def good_params() -> dict:
    return dict(data={"source": "demo", "subjects": [1], "local_dir": None, "demo": SMALL_DEMO},
                pca={"n_components": PCA_DIM}, embed={"batch_size": 16},
                train={"pls": {"n_components": 4}})


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A workspace where every stage of dvc.yaml has run once on good inputs."""
    ws = tmp_path_factory.mktemp("good")
    (ws / "stages").symlink_to(ROOT / "stages")
    write_params(ws / "params.yaml", **good_params())
    params = yaml.safe_load((ws / "params.yaml").read_text())
    for name, (cmd, outs) in pipeline_stages(params).items():
        proc = run_stage(ws, cmd)
        assert proc.returncode == 0, f"good run of {name} failed:\n{proc.stderr}"
        for out in outs:
            assert (ws / out).exists(), f"{name} did not write {out}"
    return ws


@pytest.fixture
def ws(good, tmp_path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(good, dest, symlinks=True)
    return dest


# --------------------------------------------------------------------------------------
# Corruptions


def edit_eeg(rel: str, fn: Callable[[dict], None]):
    def corrupt(ws: Path) -> None:
        d = load_npy_dict(ws / rel)
        d = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in d.items()}
        fn(d)
        save_npy_dict(ws / rel, d)
    return corrupt


def set_item(key, value_fn):
    def fn(d: dict) -> None:
        d[key] = value_fn(d[key])
    return fn


def truncate(rel: str, keep: float):
    def corrupt(ws: Path) -> None:
        data = (ws / rel).read_bytes()
        (ws / rel).write_bytes(data[: int(len(data) * keep)])
    return corrupt


def remove(rel: str):
    def corrupt(ws: Path) -> None:
        (ws / rel).unlink()
    return corrupt


def write_bytes(rel: str, data: bytes):
    def corrupt(ws: Path) -> None:
        (ws / rel).write_bytes(data)
    return corrupt


def params(**sections):
    """Corrupt params.yaml: ``sections`` merged into the good params (one level deep)."""
    def corrupt(ws: Path) -> None:
        base = good_params()
        for key, value in sections.items():
            base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
        write_params(ws / "params.yaml", **base)
    return corrupt


def raw_params(fn: Callable[[str], str]):
    def corrupt(ws: Path) -> None:
        path = ws / "params.yaml"
        path.write_text(fn(path.read_text()))
    return corrupt


def edit_zip(folder: str, fn: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]):
    def corrupt(ws: Path) -> None:
        path = ws / IMAGES / f"{folder}.zip"
        with zipfile.ZipFile(path) as zf:
            members = [(n, zf.read(n)) for n in zf.namelist()]
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in fn(members):
                zf.writestr(name, data)
    return corrupt


def edit_metadata(fn: Callable[[dict], None]):
    return edit_eeg(METADATA, fn)


def edit_npy(rel: str, fn: Callable[[np.ndarray], np.ndarray]):
    def corrupt(ws: Path) -> None:
        np.save(ws / rel, fn(np.load(ws / rel)))
    return corrupt


class _Evil:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def evil_pickle(rel: str):
    def corrupt(ws: Path) -> None:
        np.save(ws / rel, np.array({"preprocessed_eeg_data": _Evil()}, dtype=object),
                allow_pickle=True)
    return corrupt


def both(*corruptions: Callable[[Path], None]):
    def corrupt(ws: Path) -> None:
        for c in corruptions:
            c(ws)
    return corrupt


def drop_last_test_image(d: dict) -> None:
    for key in ("test_img_files", "test_img_concepts", "test_img_concepts_THINGS"):
        d[key] = list(d[key])[:-1]


def rename_channel(old: str, new: str):
    return set_item("ch_names", lambda ch: [new if c == old else c for c in ch])


def _nan_at_first(value):
    def fn(x):
        x = np.array(x)
        x[0, 0, 0, 0] = value
        return x
    return fn


# --------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Row:
    id: str
    stage: str
    corrupt: Callable[[Path], None]
    #: regexes the one error line must all match: where, what was expected, what arrived
    where: str
    expected: str
    got: str


T = "preprocessed_eeg_training\\.npy"
S = "preprocessed_eeg_test\\.npy"

ROWS = [
    # ---- erp: the release's preprocessed EEG files ----------------------------------------
    Row("empty-npy", "erp@1", truncate(EEG_TRAIN, 0), T, r"expected a \.npy file", r"got 0 bytes"),
    Row("truncated-npy", "erp@1", truncate(EEG_TRAIN, 0.5), T, r"expected", r"truncated"),
    Row("not-a-dict", "erp@1", lambda ws: np.save(ws / EEG_TRAIN, np.zeros((2, 3))), T,
        r"expected a saved dict", r"got an array of shape \(2, 3\)"),
    Row("pickled-code", "erp@1", evil_pickle(EEG_TRAIN), T, r"expected only numpy arrays",
        r"global '(posix|os|nt)\.system'"),
    Row("missing-file", "erp@1", remove(EEG_TEST), S, r"expected", r"no such file|not found"),
    Row("missing-key", "erp@1", edit_eeg(EEG_TEST, lambda d: d.pop("times")), S,
        r"expected keys \[.*'times'", r"missing key\(s\) \['times'\]"),
    Row("3-axes", "erp@1", edit_eeg(EEG_TRAIN, set_item("preprocessed_eeg_data",
                                                         lambda x: x[:, 0])),
        T, r"expected 4 axes \(image, repetition, channel, time\)",
        rf"got shape \({N_TRAIN}, 17, 100\)"),
    Row("5-axes", "erp@1", edit_eeg(EEG_TEST, set_item("preprocessed_eeg_data",
                                                        lambda x: x[..., None])),
        S, r"expected 4 axes", rf"got shape \({N_TEST}, 4, 17, 100, 1\)"),
    Row("zero-repetitions", "erp@1", edit_eeg(EEG_TEST, set_item("preprocessed_eeg_data",
                                                                  lambda x: x[:, :0])),
        S, r"expected at least one image and one repetition", rf"got shape \({N_TEST}, 0, 17"),
    Row("non-numeric-eeg", "erp@1", edit_eeg(EEG_TRAIN, set_item(
        "preprocessed_eeg_data", lambda x: np.full(x.shape, "a"))),
        T, r"expected a numeric array", r"got .*<U1"),
    Row("channel-missing", "erp@1", edit_eeg(EEG_TRAIN, rename_channel("Oz", "OZ")),
        T + r".*erp\.channels", r"expected .*\['Oz'\]", r"got ch_names \[.*'OZ'"),
    Row("channel-list-not-in-file", "erp@1", params(erp={"channels": ["O1", "Iz"]}),
        T + r".*erp\.channels", r"expected .*\['Iz'\]", r"got ch_names \["),
    Row("duplicate-channel", "erp@1", edit_eeg(EEG_TEST, rename_channel("O2", "O1")), S,
        r"expected unique 'ch_names'", r"got \['O1'\] repeated"),
    Row("channel-count", "erp@1", edit_eeg(EEG_TEST, set_item("ch_names", lambda c: c[:-1])),
        S, r"expected 17", r"'ch_names' lists 16 channels"),
    Row("times-length", "erp@1", edit_eeg(EEG_TRAIN, set_item("times", lambda t: t[:-1])), T,
        r"expected 100 \(the samples on axis 3", r"'times' has 99 values"),
    Row("times-differ-between-files", "erp@1", edit_eeg(EEG_TEST, set_item(
        "times", lambda t: np.asarray(t) + 0.05)),
        S, r"expected the same 'times' as .*" + T, r"got .*-0\.150"),
    Row("nan-in-eeg", "erp@1", edit_eeg(EEG_TRAIN, set_item("preprocessed_eeg_data",
                                                             _nan_at_first(np.nan))),
        T, r"expected finite values", r"got 1 NaN or Inf value\(s\)"),
    Row("inf-in-eeg", "erp@1", edit_eeg(EEG_TEST, set_item("preprocessed_eeg_data",
                                                            _nan_at_first(np.inf))),
        S, r"expected finite values", r"got 1 NaN or Inf value\(s\)"),
    Row("window-outside-epoch", "erp@1", params(erp={"tmin": 1.0, "tmax": 2.0}),
        T + r".*erp\.tmin\.\.erp\.tmax", r"expected a window inside the epoch",
        r"got \[1\.0, 2\.0\] s"),
    Row("window-starts-before-epoch", "erp@1", params(erp={"tmin": -0.5}),
        T + r".*erp\.tmin\.\.erp\.tmax", r"expected a window inside the epoch",
        r"got \[-0\.5, 0\.8\] s"),
    Row("bin-size-too-large", "erp@1", params(erp={"bin_size": 500}), r"erp\.bin_size",
        r"expected at most 80", r"got 500"),
    Row("empty-channel-list", "erp@1", params(erp={"channels": []}), r"params: erp\.channels",
        r"expected 'all' or a non-empty list", r"got \[\]"),
    Row("unknown-key", "erp@1", params(erp={"tmaxx": 0.5}), r"params: unknown key 'erp\.tmaxx'",
        r"expected one of \[.*'tmax'", r"did you mean 'tmax'"),
    Row("params-not-yaml", "erp@1", raw_params(lambda t: t + "\nerp: [unclosed\n"),
        r"params\.yaml", r"expected valid YAML", r"got .*line \d+"),
    Row("subject-out-of-range", "erp@1", params(data={"subjects": [0]}),
        r"params: data\.subjects", r"expected subjects numbered 1-10", r"got \[0\]"),
    Row("demo-too-small", "download@1", params(data={"demo": {**SMALL_DEMO, "n_test": 1}}),
        r"params: data\.demo\.n_test", r"expected an integer >= 2", r"got 1"),
    # ---- embed: image metadata and zips --------------------------------------------------
    Row("metadata-missing-key", "embed", edit_metadata(lambda d: d.pop("test_img_concepts")),
        r"image_metadata\.npy", r"expected keys \[.*'test_img_concepts'",
        r"missing key\(s\) \['test_img_concepts'\]"),
    Row("metadata-count-mismatch", "embed", edit_metadata(set_item(
        "train_img_concepts", lambda v: list(v)[:-1])), r"image_metadata\.npy",
        r"expected equal, non-zero counts", rf"'train_img_concepts' {N_TRAIN - 1}"),
    Row("image-missing-from-zip", "embed", edit_zip("test_images", lambda m: m[:-1]),
        r"test_images\.zip", rf"expected all {N_TEST} images listed in image_metadata\.npy",
        r"got 1 missing, e\.g\. \['test_images/"),
    Row("empty-zip", "embed", edit_zip("training_images", lambda m: []),
        r"training_images\.zip", rf"expected all {N_TRAIN} images",
        rf"got {N_TRAIN} missing"),
    Row("zip-of-zero-bytes", "embed", write_bytes(f"{IMAGES}/test_images.zip", b""),
        r"test_images\.zip", r"expected a zip archive", r"got 0 bytes"),
    Row("corrupt-jpeg", "embed", both(
        edit_zip("test_images", lambda m: [*m[:3], (m[3][0], m[3][1][:len(m[3][1]) // 2]), *m[4:]]),
        params(embed={"num_workers": 0})),
        r"test_images\.zip:test_images/.*\.jpg", r"expected a readable image",
        r"got \d+ bytes"),
    Row("corrupt-jpeg-in-worker", "embed", both(
        edit_zip("training_images", lambda m: [(n, b"\xff\xd8\xff garbage") if i == 5 else (n, d)
                                              for i, (n, d) in enumerate(m)]),
        params(embed={"num_workers": 1})),
        r"training_images\.zip:training_images/.*\.jpg", r"expected a readable image",
        r"got 11 bytes"),
    Row("unknown-model", "embed", params(embed={"model": "ViT-Q-99"}), r"params: embed\.model",
        r"expected an OpenCLIP model name", r"got 'ViT-Q-99'"),
    # ---- pca -------------------------------------------------------------------------------
    Row("more-components-than-samples", "pca", params(pca={"n_components": N_TRAIN + 1}),
        r"params: pca\.n_components", rf"expected at most {N_TRAIN}", rf"got {N_TRAIN + 1}"),
    Row("truncated-embeddings", "pca", truncate("embeds/clip/final/train.npy", 0.5),
        r"embeds/clip/final/train\.npy", r"expected a plain \.npy array", r"got"),
    Row("embedding-dims-differ", "pca",
        edit_npy("embeds/clip/final/test.npy", lambda x: x[:, :256]),
        r"embeds/clip/final/test\.npy", r"expected 512 dimensions", r"got shape \(8, 256\)"),
    # ---- trainset --------------------------------------------------------------------------
    Row("training-features-missing", "trainset@1", remove("data/features/train/sub-1.npy"),
        r"data/features/train/sub-1\.npy", r"expected", r"not found"),
    # ---- train -----------------------------------------------------------------------------
    Row("unknown-mapper", "train@1", params(train={"mapper": "rigde"}),
        r"params: train\.mapper", r"expected one of \['ridge'", r"got 'rigde'"),
    Row("negative-alpha", "train@1", params(train={"ridge": {"alpha": -1.0}}),
        r"params: train\.ridge\.alpha", r"expected a finite number >= 0", r"got -1\.0"),
    Row("fewer-training-embeddings", "train@1",
        edit_npy("embeds/pca/train/final.npy", lambda x: x[:-1]),
        r"embeds/pca/train/final\.npy",
        rf"expected {N_TRAIN}", rf"got {N_TRAIN - 1}"),
    Row("more-training-embeddings", "train@1",
        edit_npy("embeds/pca/train/final.npy", lambda x: np.concatenate([x, x[:1]])),
        r"embeds/pca/train/final\.npy", rf"expected {N_TRAIN}", rf"got {N_TRAIN + 1}"),
    # ---- evaluate --------------------------------------------------------------------------
    Row("metadata-lists-fewer-test-images", "evaluate@1", edit_metadata(drop_last_test_image),
        r"image_metadata\.npy", r"expected the same number",
        rf"{N_TEST} test ERPs.*{N_TEST - 1} test images"),
    Row("test-features-dims-differ", "evaluate@1",
        edit_npy("data/features/test/sub-1.npy", lambda x: x[:, :-3]),
        r"data/features/test/sub-1\.npy", r"expected \d+ features", r"got \d+"),
    Row("gallery-dims-differ", "evaluate@1",
        edit_npy("embeds/pca/test/final.npy", lambda x: x[:, :4]),
        r"embeds/pca/test/final\.npy",
        rf"expected {PCA_DIM} dimensions", r"got 4"),
    Row("ceiling-not-json", "evaluate@1", write_bytes("data/ceiling/sub-1.json", b"{top1: "),
        r"data/ceiling/sub-1\.json", r"expected JSON", r"got"),
    # ---- summarize -------------------------------------------------------------------------
    Row("subject-metrics-missing", "summarize",
        remove("metrics/subjects/sub-1/details.json"),
        r"metrics/subjects/sub-1/details\.json", r"expected", r"no such file|not found"),
]


def test_table_is_large_and_ids_are_unique():
    assert len(ROWS) >= 25
    assert len({r.id for r in ROWS}) == len(ROWS)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, good: Path, ws: Path):
    params_ = yaml.safe_load((good / "params.yaml").read_text())
    cmd, outs = pipeline_stages(params_)[row.stage]
    for out in outs:  # an earlier good output sits where the failing run would write
        assert (ws / out).exists(), out
    row.corrupt(ws)
    before = snapshot(ws, caches(cmd))
    proc = run_stage(ws, cmd)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    errors = error_lines(proc)
    assert len(errors) == 1, proc.stderr[-3000:]
    line = errors[0]
    for what, pattern in (("where", row.where), ("expected", row.expected), ("got", row.got)):
        assert re.search(pattern, line), f"{what}: /{pattern}/ not in: {line}"
    # nothing written, nothing half-written, nothing replaced, no temporary left behind
    assert snapshot(ws, caches(cmd)) == before
    assert temporaries(ws) == []
    assert not (ws / "PWNED").exists()


# --------------------------------------------------------------------------------------
# Every stage validates the whole params.yaml before it does anything


def _stage_names() -> list[str]:
    params_ = yaml.safe_load((ROOT / "params.yaml").read_text())
    params_["data"]["subjects"] = [1]
    return list(pipeline_stages(params_))


@pytest.mark.parametrize("stage", _stage_names())
def test_every_stage_validates_params_first(stage: str, good: Path, ws: Path):
    params_ = yaml.safe_load((good / "params.yaml").read_text())
    cmd, _ = pipeline_stages(params_)[stage]
    params(train={"ridge": {"alpah": 1.0}})(ws)
    before = snapshot(ws)  # caches included: nothing at all may change
    proc = run_stage(ws, cmd)
    assert proc.returncode == 1, proc.stderr[-3000:]
    # the error is the only thing said: no work (no model load, no data read) came first
    assert proc.stderr.strip().splitlines() == error_lines(proc), proc.stderr[-3000:]
    assert re.search(r"unknown key 'train\.ridge\.alpah'.*did you mean 'alpha'",
                     error_lines(proc)[0])
    assert snapshot(ws) == before


# --------------------------------------------------------------------------------------
# Unusual but valid images embed like their plain-RGB equivalents


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _tiff(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "TIFF")
    return buf.getvalue()


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _mode_cases() -> list[tuple[str, bytes, Image.Image]]:
    """(label, file bytes in the unusual mode, the RGB image it must embed like)."""
    rng = np.random.default_rng(0)
    shape = (40, 56)

    def grey():
        return rng.integers(0, 256, shape, dtype=np.uint8)

    def rgb():
        return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)

    def cmy():  # ink fully on or off in 8 x 8 blocks: exact under any CMYK->RGB formula
        blocks = (rng.random((5, 7, 3)) < 0.5).astype(np.uint8) * 255
        return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))

    def cmyk(c):
        return Image.fromarray(np.concatenate([c, np.zeros((*shape, 1), np.uint8)], axis=2),
                               "CMYK")

    g8, g16, c1, c2, rgb1, rgb2 = grey(), grey(), cmy(), cmy(), rgb(), rgb()
    alpha = rng.integers(0, 256, shape, dtype=np.uint8)
    over_white = rgb2 * (alpha[..., None] / 255.0) + 255 * (1 - alpha[..., None] / 255.0)
    return [
        ("grayscale", _png(Image.fromarray(g8, "L")), Image.fromarray(np.dstack([g8] * 3))),
        ("16-bit", _png(Image.fromarray(g16.astype(np.uint16) * 257)),
         Image.fromarray(np.dstack([g16] * 3))),
        ("rgba-opaque", _png(Image.fromarray(np.dstack([rgb1, np.full(shape, 255, np.uint8)]),
                                             "RGBA")), Image.fromarray(rgb1)),
        ("rgba-transparent", _png(Image.fromarray(np.dstack([rgb2, alpha]), "RGBA")),
         Image.fromarray(np.clip(over_white + 0.5, 0, 255).astype(np.uint8))),
        ("cmyk", _tiff(cmyk(c1)), Image.fromarray(255 - c1)),
        ("cmyk-jpeg", _jpeg(cmyk(c2)), Image.fromarray(255 - c2)),
    ]


def test_unusual_image_modes_embed_like_their_rgb_equivalents(good: Path, ws: Path):
    """Grey, 16-bit, RGBA and CMYK images (the release stores them as .jpg members) go
    through the real embed stage and come out as the embedding of the RGB image they show."""
    cases = _mode_cases()
    assert len(cases) <= N_TEST
    # test image i is the unusual file; training image i is its plain RGB equivalent
    edit_zip("test_images", lambda m: [(n, cases[i][1]) if i < len(cases) else (n, d)
                                       for i, (n, d) in enumerate(m)])(ws)
    edit_zip("training_images", lambda m: [(n, _png(cases[i][2])) if i < len(cases) else (n, d)
                                           for i, (n, d) in enumerate(m)])(ws)
    modes = [Image.open(io.BytesIO(c[1])).mode for c in cases]
    assert modes == ["L", "I;16", "RGBA", "RGBA", "CMYK", "CMYK"]
    params_ = yaml.safe_load((good / "params.yaml").read_text())
    cmd, _ = pipeline_stages(params_)["embed"]
    proc = run_stage(ws, cmd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = np.load(ws / "embeds/clip/final/test.npy")
    train = np.load(ws / "embeds/clip/final/train.npy")
    assert np.isfinite(test).all()
    np.testing.assert_allclose(np.linalg.norm(test, axis=1), 1, atol=1e-5)
    sims = test[: len(cases)] @ train[: len(cases)].T
    for i, (label, _, _) in enumerate(cases):
        others = np.delete(sims[i], i)
        if label == "cmyk-jpeg":  # lossy: closest to its own RGB image, not equal
            assert sims[i, i] > others.max(), (label, sims[i])
        else:
            np.testing.assert_allclose(test[i], train[i], atol=2e-5, err_msg=label)
            assert sims[i, i] > others.max() + 1e-4, (label, sims[i])
