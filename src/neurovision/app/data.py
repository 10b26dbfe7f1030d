"""What the explorer shows, loaded from the pipeline's outputs or from a deployable bundle.

Pure loading and table-making, no Streamlit: the page (``streamlit_app.py``) only lays out
what :class:`Results` returns.  Both sources have one fixed layout, written down once below
(:data:`PIPELINE_FILES` mirrors ``dvc.yaml``; :data:`BUNDLE_FILES` is what the ``bundle`` stage
writes).  Every file name the app opens comes from these tables, the subject list of the
params or manifest, and the image names in the pipeline's own metadata: nothing a visitor
types becomes a path.  A missing file raises :class:`MissingOutput`, which names the stage
that writes it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from neurovision.erp import REP_AXIS, load_epochs
from neurovision.errors import DataError, NeurovisionError
from neurovision.images import ImageSource
from neurovision.io import load_json, load_npy
from neurovision.mappers import load_mapper
from neurovision.params import load_params
from neurovision.release import image_members, load_metadata
from neurovision.retrieval import cosine_scores

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "neurovision-bundle"
BUNDLE_VERSION = 1

#: logical name -> (path under the project root, stage that writes it); ``{s}`` = subject.
PIPELINE_FILES: dict[str, tuple[str, str | None]] = {
    "params": ("params.yaml", None),
    "summary": ("metrics/retrieval.json", "summarize"),
    "metrics": ("metrics/subjects/sub-{s}/retrieval.json", "evaluate@{s}"),
    "trials": ("metrics/subjects/sub-{s}/trials.json", "evaluate@{s}"),
    "topk": ("metrics/subjects/sub-{s}/topk.csv", "evaluate@{s}"),
    "ranks": ("metrics/subjects/sub-{s}/ranks.csv", "evaluate@{s}"),
    "metadata": ("data/raw/images/image_metadata.npy", "download_images"),
    "test_images": ("data/raw/images/test_images.zip", "download_images"),
    "eeg": ("data/raw/sub-{s}/preprocessed_eeg_test.npy", "download@{s}"),
    "info": ("data/features/info/sub-{s}.json", "erp@{s}"),
    "features": ("data/features/test/sub-{s}.npy", "erp@{s}"),
    "gallery": ("embeds/pca/test.npy", "pca"),
    "mapper": ("models/sub-{s}.joblib", "train@{s}"),
}

#: logical name -> path inside a bundle directory (all written by the ``bundle`` stage).
BUNDLE_FILES: dict[str, str] = {
    "manifest": "manifest.json",
    "summary": "retrieval.json",
    "metrics": "sub-{s}/retrieval.json",
    "trials": "sub-{s}/trials.json",
    "topk": "sub-{s}/topk.csv",
    "ranks": "sub-{s}/ranks.csv",
    "metadata": "metadata.json",
    "test_images": "test_images.zip",
    "erp": "sub-{s}/erp.npy",
    "erp_info": "sub-{s}/erp.json",
    "info": "sub-{s}/info.json",
    "features": "sub-{s}/features.npy",
    "gallery": "gallery.npy",
    "mapper": "sub-{s}/mapper.joblib",
}

TRIAL_KEYS = ("trial", "concept", "file", "rank", "true_score", "top_indices", "top_scores")
#: Summary metrics shown in the overview, in this order, with their chance keys.
SUMMARY_KEYS = ("top1", "top5", "top10", "two_way", "four_way", "ten_way", "fifty_way",
                "mean_rank", "median_rank")
#: Display size (longest side, pixels) of decoded images kept in memory.
IMAGE_SIZE = 256


class MissingOutput(DataError):
    """A file the explorer needs is not there; ``stage`` names the DVC stage that writes it."""

    def __init__(self, path: Path, stage: str | None, kind: str = "pipeline"):
        self.path, self.stage, self.kind = Path(path), stage, kind
        if kind == "bundle":
            msg = (f"{path}: missing from the bundle; rebuild it with `dvc repro bundle` "
                   f"in the project")
        elif stage is None:
            msg = (f"{path}: not found; start the explorer in the project root (where "
                   f"params.yaml is) or pass --bundle DIR")
        else:
            msg = f"{path}: not found; stage {stage} writes it (`dvc repro {stage}`)"
        super().__init__(msg)

    @property
    def command(self) -> str:
        if self.kind == "bundle":
            return "dvc repro bundle"
        return f"dvc repro {self.stage}" if self.stage else "dvc repro"


@dataclass(frozen=True)
class Erp:
    """Repetition-averaged test EEG of one subject: data (image, channel, time)."""

    data: np.ndarray
    ch_names: tuple[str, ...]
    times: np.ndarray


# --------------------------------------------------------------------------------------
# Checks on what the pipeline wrote


def check_trials(trials: Any, n_test: int, source: str | Path) -> list[dict]:
    """``trials.json`` as a list of per-trial records, checked against the gallery size."""
    if not isinstance(trials, list) or len(trials) != n_test:
        got = len(trials) if isinstance(trials, list) else type(trials).__name__
        raise DataError(f"{source}: expected a list of {n_test} trials (one per test image), "
                        f"got {got}")
    for i, t in enumerate(trials):
        if not isinstance(t, dict) or any(k not in t for k in TRIAL_KEYS):
            raise DataError(f"{source}: trial {i} must have keys {list(TRIAL_KEYS)}, got "
                            f"{sorted(t) if isinstance(t, dict) else type(t).__name__}")
        top = t["top_indices"]
        if t["trial"] != i or not 1 <= int(t["rank"]) <= n_test:
            raise DataError(f"{source}: trial {i}: expected trial={i} and 1 <= rank <= "
                            f"{n_test}, got trial={t['trial']!r}, rank={t['rank']!r}")
        if (len(top) != len(t["top_scores"]) or len(top) == 0
                or not all(isinstance(j, int) and 0 <= j < n_test for j in top)):
            raise DataError(f"{source}: trial {i}: top_indices must be gallery indices in "
                            f"[0, {n_test}) with one score each, got {top!r}")
    return trials


def read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: expected a CSV file, could not read it: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: expected columns {list(columns)}, got {list(df.columns)}")
    return df


# --------------------------------------------------------------------------------------
# Results: one object per source, cached by the page for all sessions


class Results:
    """Read access to a pipeline's outputs (``kind='pipeline'``) or a bundle (``'bundle'``).

    Heavy things (trials, images, ERPs, mappers) are loaded once, on first use, and kept.
    """

    def __init__(self, root: str | Path, kind: str):
        if kind not in ("pipeline", "bundle"):
            raise ValueError(f"kind must be 'pipeline' or 'bundle', got {kind!r}")
        self.root, self.kind = Path(root).resolve(), kind
        self._lock = threading.RLock()
        self._memo: dict[tuple, Any] = {}
        if kind == "pipeline":
            p = load_params(self._require("params"))
            self.subjects: tuple[int, ...] = tuple(p.data.subjects)
            self.top_k: int = p.evaluate.top_k
            self.label = f"pipeline outputs in {self.root}"
            self.manifest: dict = {}
        else:
            self.manifest = load_json(self._require("manifest"))
            if self.manifest.get("format") != BUNDLE_FORMAT:
                raise DataError(f"{self.path('manifest')}: expected format {BUNDLE_FORMAT!r}, "
                                f"got {self.manifest.get('format')!r}")
            if self.manifest.get("version") != BUNDLE_VERSION:
                raise DataError(f"{self.path('manifest')}: expected bundle version "
                                f"{BUNDLE_VERSION}, got {self.manifest.get('version')!r}; "
                                f"rebuild it with `dvc repro bundle`")
            self.subjects = tuple(int(s) for s in self.manifest["subjects"])
            self.top_k = int(self.manifest["top_k"])
            self.label = f"bundle {self.root}"

    # -- paths ---------------------------------------------------------------------------

    def path(self, key: str, subject: int | None = None) -> Path:
        rel = PIPELINE_FILES[key][0] if self.kind == "pipeline" else BUNDLE_FILES[key]
        return self.root / rel.format(s=subject)

    def stage(self, key: str, subject: int | None = None) -> str | None:
        if self.kind == "bundle":
            return "bundle"
        stage = PIPELINE_FILES[key][1]
        return stage.format(s=subject) if stage else None

    def has(self, key: str, subject: int | None = None) -> bool:
        return self.path(key, subject).is_file()

    def _require(self, key: str, subject: int | None = None) -> Path:
        path = self.path(key, subject)
        if not path.is_file():
            raise MissingOutput(path, self.stage(key, subject), self.kind)
        return path

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._memo:
                self._memo[key] = load()
            return self._memo[key]

    # -- what every view needs -----------------------------------------------------------

    def check_ready(self) -> None:
        """Raise :class:`MissingOutput` unless at least one subject's trial view can be shown."""
        self.test_images()
        self._require("test_images")
        if not self.ready_subjects():
            self._require("trials", self.subjects[0])

    def ready_subjects(self) -> list[int]:
        """Subjects whose per-trial rankings exist."""
        return [s for s in self.subjects if self.has("trials", s)]

    def test_images(self) -> dict[str, list[str]]:
        """``{"files": [...], "concepts": [...]}`` of the test gallery, in gallery order."""
        def load() -> dict[str, list[str]]:
            if self.kind == "pipeline":
                meta = load_metadata(self._require("metadata"))
                files, concepts = meta["test_img_files"], meta["test_img_concepts"]
            else:
                path = self._require("metadata")
                meta = load_json(path)
                files, concepts = meta.get("test_img_files"), meta.get("test_img_concepts")
                if (not isinstance(files, list) or not isinstance(concepts, list)
                        or len(files) != len(concepts) or not files):
                    raise DataError(f"{path}: expected equal, non-empty lists "
                                    f"'test_img_files' and 'test_img_concepts'")
            return {"files": list(files), "concepts": list(concepts)}
        return self._cached(("test_images",), load)

    @property
    def n_test(self) -> int:
        return len(self.test_images()["files"])

    def concept(self, i: int) -> str:
        return self.test_images()["concepts"][i]

    def trials(self, subject: int) -> list[dict]:
        def load() -> list[dict]:
            path = self._require("trials", subject)
            return check_trials(load_json(path), self.n_test, path)
        return self._cached(("trials", subject), load)

    def image(self, i: int) -> Image.Image:
        """Test image ``i`` (gallery order) as RGB, at most :data:`IMAGE_SIZE` pixels a side.

        Decoded once per process; the member name comes from the metadata only.
        """
        if not 0 <= i < self.n_test:
            raise IndexError(f"test image {i} out of range [0, {self.n_test})")

        def load() -> Image.Image:
            source = self._image_source()
            member = image_members({"test_img_files": self.test_images()["files"],
                                    "test_img_concepts": self.test_images()["concepts"]},
                                   "test")[i]
            img = source.image(member)
            img.thumbnail((IMAGE_SIZE, IMAGE_SIZE))
            return img
        return self._cached(("image", i), load)

    def _image_source(self) -> ImageSource:
        return self._cached(("image_source",),
                            lambda: ImageSource(self._require("test_images").parent, "test"))

    # -- metrics -------------------------------------------------------------------------

    def summary(self) -> dict:
        return self._cached(("summary",), lambda: load_json(self._require("summary")))

    def subject_metrics(self, subject: int) -> dict:
        return self._cached(("metrics", subject),
                            lambda: load_json(self._require("metrics", subject)))

    def topk_curve(self, subject: int) -> pd.DataFrame:
        return self._cached(("topk", subject), lambda: read_csv(
            self._require("topk", subject), ("k", "accuracy", "chance")))

    def rank_histogram(self, subject: int) -> pd.DataFrame:
        return self._cached(("ranks", subject), lambda: read_csv(
            self._require("ranks", subject), ("rank", "count")))

    # -- EEG -----------------------------------------------------------------------------

    def erp(self, subject: int) -> Erp:
        """Test ERPs (image, channel, time): the repetitions of the release file averaged."""
        def load() -> Erp:
            if self.kind == "pipeline":
                ep = load_epochs(self._require("eeg", subject))
                data = np.asarray(ep.data.mean(axis=REP_AXIS), dtype=np.float32)
                return Erp(data=data, ch_names=ep.ch_names, times=ep.times)
            data = load_npy(self._require("erp", subject)).astype(np.float32)
            info_path = self._require("erp_info", subject)
            info = load_json(info_path)
            erp = Erp(data=data, ch_names=tuple(info["ch_names"]),
                      times=np.asarray(info["times"], dtype=np.float64))
            if data.shape[1:] != (len(erp.ch_names), len(erp.times)):
                raise DataError(f"{info_path}: {len(erp.ch_names)} channels and "
                                f"{len(erp.times)} times, the ERP array has shape {data.shape}")
            return erp
        erp = self._cached(("erp", subject), load)
        if erp.data.shape[0] != self.n_test:
            raise DataError(f"{self.path('eeg' if self.kind == 'pipeline' else 'erp', subject)}"
                            f": {erp.data.shape[0]} test images, the metadata lists "
                            f"{self.n_test}")
        return erp

    def window(self, subject: int) -> tuple[float, float] | None:
        """The ERP time window the decoder used (``erp.tmin``..``erp.tmax``), if known."""
        if not self.has("info", subject):
            return None
        info = self._cached(("info", subject), lambda: load_json(self.path("info", subject)))
        return float(info["tmin"]), float(info["tmax"])

    # -- the saved mapper ----------------------------------------------------------------

    def can_score(self, subject: int) -> bool:
        return all(self.has(k, subject) for k in ("features", "gallery", "mapper"))

    def trial_scores(self, subject: int, trial: int) -> np.ndarray:
        """Cosine similarity of trial ``trial``'s decoded EEG to every gallery image.

        Applies the saved mapper to the saved test features; nothing is refitted.
        """
        x = self._cached(("features", subject),
                         lambda: load_npy(self._require("features", subject)))
        gallery = self._cached(("gallery",), lambda: load_npy(self._require("gallery")))
        # our own output (written by train@N or copied by the bundle stage)
        mapper = self._cached(("mapper", subject),
                              lambda: load_mapper(self._require("mapper", subject)))
        if len(x) != self.n_test or len(gallery) != self.n_test:
            raise DataError(f"{self.path('features', subject)}: {len(x)} test features and "
                            f"{len(gallery)} gallery embeddings; expected {self.n_test}")
        pred = np.asarray(mapper.predict(x[trial:trial + 1]), dtype=np.float64)
        return cosine_scores(pred, gallery)[0]


def open_results(root: str | Path | None = None, bundle: str | Path | None = None) -> Results:
    """Results from a bundle directory if given, else from the project at ``root``."""
    if bundle is not None:
        return Results(bundle, "bundle")
    return Results(root if root is not None else ".", "pipeline")


# --------------------------------------------------------------------------------------
# Tables and plot data (pure)


def concept_name(concept: str) -> str:
    """``00001_aardvark`` -> ``aardvark``; ``00042_ice_cream`` -> ``ice cream``."""
    head, _, rest = concept.partition("_")
    return (rest if head.isdigit() and rest else concept).replace("_", " ")


def summary_table(metrics: dict) -> pd.DataFrame:
    """Rows metric / value / sd / chance for the keys of :data:`SUMMARY_KEYS` present."""
    rows = []
    for key in SUMMARY_KEYS:
        if metrics.get(key) is None:
            continue
        rows.append({"metric": key, "value": float(metrics[key]),
                     "sd": metrics.get(f"{key}_sd"),
                     "chance": metrics.get(f"{key}_chance")})
    return pd.DataFrame(rows, columns=["metric", "value", "sd", "chance"])


def concept_ranks(trials_by_subject: dict[int, list[dict]]) -> pd.DataFrame:
    """Per test image: concept and mean rank of the true image over subjects, best first."""
    rows: dict[int, dict] = {}
    for subject, trials in trials_by_subject.items():
        for t in trials:
            row = rows.setdefault(t["trial"], {"trial": t["trial"], "concept": t["concept"]})
            row[f"sub-{subject}"] = int(t["rank"])
    df = pd.DataFrame(list(rows.values()))
    cols = [f"sub-{s}" for s in trials_by_subject]
    df["mean_rank"] = df[cols].mean(axis=1)
    return df.sort_values(["mean_rank", "trial"], kind="stable").reset_index(drop=True)


def butterfly_frame(erp: Erp, trial: int) -> pd.DataFrame:
    """Long table time / channel / amplitude of one trial's ERP."""
    x = erp.data[trial]  # (channel, time)
    return pd.DataFrame({
        "time": np.tile(erp.times, len(erp.ch_names)),
        "channel": np.repeat(list(erp.ch_names), len(erp.times)),
        "amplitude": x.reshape(-1).astype(np.float64),
    })


def peak_latency(erp: Erp, trial: int, window: tuple[float, float] | None) -> float:
    """Time of the largest global field power (sd over channels) inside ``window``."""
    gfp = erp.data[trial].std(axis=0)
    times = erp.times
    mask = np.ones(len(times), bool) if window is None else (
        (times >= window[0] - 1e-9) & (times <= window[1] + 1e-9))
    if not mask.any():
        mask[:] = True
    idx = np.flatnonzero(mask)
    return float(times[idx[np.argmax(gfp[idx])]])


def scalp_frame(values: Sequence[float], positions: np.ndarray, resolution: int = 41
                ) -> pd.DataFrame:
    """A scalp map on a grid: x, y, value, cubic interpolation inside the electrodes' hull.

    ``positions`` are 2-D (nose up, units of head radius); cells outside the convex hull
    of the electrodes are left out (no extrapolation).
    """
    from scipy.interpolate import griddata

    positions = np.asarray(positions, dtype=float)
    values = np.asarray(values, dtype=float)
    if positions.shape != (len(values), 2):
        raise ValueError(f"expected positions of shape ({len(values)}, 2), got "
                         f"{positions.shape}")
    grid = np.linspace(-1.0, 1.0, resolution)
    gx, gy = np.meshgrid(grid, grid)
    z = griddata(positions, values, (gx, gy), method="cubic")
    keep = np.isfinite(z)
    step = float(grid[1] - grid[0])
    return pd.DataFrame({"x": gx[keep] - step / 2, "x2": gx[keep] + step / 2,
                         "y": gy[keep] - step / 2, "y2": gy[keep] + step / 2,
                         "value": z[keep]})


def framed(img: Image.Image, color: str, width: int = 6) -> Image.Image:
    """``img`` with a coloured border (marks the true image among the results)."""
    return ImageOps.expand(img, border=width, fill=color)


# --------------------------------------------------------------------------------------
# DVC experiments (pipeline source only)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


def experiments_table(exp_show: list, metrics_file: str = "metrics/retrieval.json",
                      metric_keys: Iterable[str] = ("top1", "top5", "top10", "mean_rank"),
                      ) -> pd.DataFrame:
    """One row per experiment from ``dvc exp show --json``: the params that differ, metrics.

    Rows without metrics (e.g. a baseline whose outputs were never computed) are dropped.
    """
    def record(name: str, rev: str, data: dict | None) -> dict | None:
        if not data:
            return None
        metrics = ((data.get("metrics") or {}).get(metrics_file) or {}).get("data") or {}
        if not metrics:
            return None
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        row = {"experiment": name, "rev": (rev or "")[:7]}
        row.update({f"param:{k}": v for k, v in _flatten(params).items()})
        row.update({k: metrics.get(k) for k in metric_keys})
        return row

    rows = []
    for top in exp_show or []:
        rev = top.get("rev", "")
        name = "workspace" if rev == "workspace" else (top.get("name") or rev[:7])
        rows.append(record(name, rev, top.get("data")))
        for exp in top.get("experiments") or []:
            for r in exp.get("revs") or []:
                rows.append(record(exp.get("name") or r.get("name") or r.get("rev", "")[:7],
                                   r.get("rev", ""), r.get("data")))
    rows = [r for r in rows if r is not None]
    if not rows:
        return pd.DataFrame(columns=["experiment", "rev", *metric_keys])
    df = pd.DataFrame(rows)
    params = [c for c in df.columns if c.startswith("param:")]
    varying = [c for c in params
               if df[c].astype(str).nunique(dropna=False) > 1 or c == "param:train.mapper"]
    df = df[["experiment", "rev", *varying, *metric_keys]]
    return df.rename(columns={c: c[len("param:"):] for c in varying})


def dvc_exp_show(root: str | Path, timeout: float = 120.0) -> list:
    """``dvc exp show --json`` run in ``root`` (errors become :class:`NeurovisionError`)."""
    dvc = Path(sys.executable).parent / "dvc"
    cmd = [str(dvc) if dvc.exists() else "dvc", "exp", "show", "--json"]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NeurovisionError(f"dvc exp show failed in {root}: {exc}") from exc
    if proc.returncode != 0:
        raise NeurovisionError(f"dvc exp show failed in {root}: "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise NeurovisionError(f"dvc exp show printed no JSON: {exc}") from exc
