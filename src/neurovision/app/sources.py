"""Where the explorer reads results from: the pipeline's outputs or a deployable bundle.

Pure loading, no Streamlit: the page (``streamlit_app.py``) only lays out what a
:class:`Source` returns.  :class:`PipelineSource` reads a project in ``dvc.yaml``'s layout,
:class:`BundleSource` a directory written by the ``bundle`` stage; both answer the same
questions (:class:`Source`), each from its own layout (:mod:`neurovision.app.layout`).  Every
file name opened comes from those tables, the subject list of the params or manifest, and
the image names in the pipeline's own metadata: nothing a visitor types becomes a path.  A
missing output raises :class:`MissingOutput`, which says what writes it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from neurovision.app.layout import (
    BUNDLE_FILES,
    PIPELINE_FILES,
    check_manifest,
    check_test_images,
    check_trials,
)
from neurovision.erp import REP_AXIS, load_epochs
from neurovision.errors import DataError
from neurovision.experiments import Experiment, load_experiments
from neurovision.images import ImageSource
from neurovision.io import load_json, load_npy
from neurovision.mappers import load_mapper
from neurovision.params import load_params
from neurovision.release import SPLIT_FOLDERS, image_members, load_metadata
from neurovision.retrieval import cosine_scores

#: Display size (longest side, pixels) of decoded images kept in memory.
IMAGE_SIZE = 256


class MissingOutput(DataError):
    """An output the explorer needs is not there.

    ``path`` is what is missing (``alternative``, if given, would do instead), ``command``
    writes it and ``advice`` says so in words.
    """

    def __init__(self, path: str | Path, command: str, advice: str,
                 alternative: str | None = None):
        self.path, self.command, self.advice = Path(path), command, advice
        self.alternative = alternative
        what = f"{path} (or {alternative})" if alternative else str(path)
        super().__init__(f"{what}: not found; {advice}")


@dataclass(frozen=True)
class Erp:
    """Repetition-averaged test EEG of one subject: data (image, channel, time)."""

    data: np.ndarray
    ch_names: tuple[str, ...]
    times: np.ndarray


def read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV file with at least ``columns``; anything else is a :class:`DataError`."""
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: expected a CSV file, could not read it: {exc}") from exc
    if any(c not in df.columns for c in columns):
        raise DataError(f"{path}: expected columns {list(columns)}, got {list(df.columns)}")
    return df


class Source(ABC):
    """Read access to one set of results, in the layout of a subclass.

    Subclasses set ``subjects``, ``top_k`` and ``label`` and say where each logical file
    is (:meth:`path`), what writes it (:meth:`missing`) and how the test-image list and the
    ERPs are stored.  Loads are memoised, under a lock: one source serves all sessions of
    the page, each file read once, on first use.
    """

    VERSION_FILES: ClassVar[tuple[str, ...]]  # rewritten whenever the results are
    compares_experiments: ClassVar[bool] = False  # can list DVC experiments
    IMAGES: ClassVar[str]  # logical names of the test images and of the ERPs' file
    ERP: ClassVar[str]

    subjects: tuple[int, ...]
    top_k: int
    label: str

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self._lock = threading.RLock()
        self._memo: dict[tuple, Any] = {}

    @classmethod
    def version_stamp(cls, root: str | Path) -> float:
        """Latest modification time of :attr:`VERSION_FILES` under ``root`` (0 if none)."""
        times = [(Path(root) / n).stat().st_mtime for n in cls.VERSION_FILES
                 if (Path(root) / n).is_file()]
        return max(times, default=0.0)

    @abstractmethod
    def path(self, key: str, subject: int | None = None) -> Path:
        """Where the logical file ``key`` (of ``subject``) is."""

    @abstractmethod
    def stage(self, key: str, subject: int | None = None) -> str | None:
        """The DVC stage that writes ``key``, or None if no stage does."""

    @abstractmethod
    def missing(self, key: str, subject: int | None = None) -> MissingOutput:
        """The error for a missing ``key``: what to run to get it."""

    @abstractmethod
    def image_folder(self) -> Path:
        """The folder holding ``test_images.zip`` or an unpacked ``test_images/``."""

    @abstractmethod
    def _load_test_images(self) -> tuple[list[str], list[str]]:
        """Files and concepts of the test gallery, in gallery order."""

    @abstractmethod
    def _load_erp(self, subject: int) -> Erp:
        """The test ERPs of ``subject``, averaged over repetitions."""

    def experiments(self) -> list[Experiment]:
        """DVC experiments of the project (only where :attr:`compares_experiments`)."""
        raise DataError(f"{self.label}: holds one experiment; compare experiments in the "
                        f"project")

    def has(self, key: str, subject: int | None = None) -> bool:
        return self.path(key, subject).is_file()

    def _require(self, key: str, subject: int | None = None) -> Path:
        path = self.path(key, subject)
        if not path.is_file():
            raise self.missing(key, subject)
        return path

    def _cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._memo:
                self._memo[key] = load()
            return self._memo[key]

    def check_ready(self) -> None:
        """Raise unless at least one subject's trial view can be shown.

        :class:`MissingOutput` only for an output that is not there; a present but
        unreadable one (a corrupt zip, an image the metadata lists but the folder lacks)
        raises :class:`DataError` with what is wrong.
        """
        self._images()
        if not self.ready_subjects():
            self._require("trials", self.subjects[0])

    def ready_subjects(self) -> list[int]:
        """Subjects whose per-trial rankings exist."""
        return [s for s in self.subjects if self.has("trials", s)]

    def test_images(self) -> dict[str, list[str]]:
        """``{"files": [...], "concepts": [...]}`` of the test gallery, in gallery order."""
        def load() -> dict[str, list[str]]:
            files, concepts = self._load_test_images()
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

    def _members(self) -> list[str]:
        meta = self.test_images()
        return self._cached(("members",), lambda: image_members(
            {"test_img_files": meta["files"], "test_img_concepts": meta["concepts"]}, "test"))

    def _images(self) -> ImageSource:
        """The test images, from ``test_images.zip`` or an unpacked ``test_images/`` folder
        (the one image reader the stages use), checked to hold every listed image."""
        def load() -> ImageSource:
            members = self._members()  # the metadata first: it names the images
            folder, name = self.image_folder(), SPLIT_FOLDERS["test"]
            if not ((folder / f"{name}.zip").is_file() or (folder / name).is_dir()):
                exc = self.missing(self.IMAGES)
                raise MissingOutput(folder / f"{name}.zip", exc.command, exc.advice,
                                    alternative=f"an unpacked {name}/ folder next to it")
            source = ImageSource(folder, "test")
            source.check(members)
            return source
        return self._cached(("images",), load)

    def image(self, i: int) -> Image.Image:
        """Test image ``i`` (gallery order) as RGB, at most :data:`IMAGE_SIZE` pixels a side.

        Decoded once per process; the member name comes from the metadata only.
        """
        if not 0 <= i < self.n_test:
            raise IndexError(f"test image {i} out of range [0, {self.n_test})")

        def load() -> Image.Image:
            img = self._images().image(self._members()[i])
            img.thumbnail((IMAGE_SIZE, IMAGE_SIZE))
            return img
        return self._cached(("image", i), load)

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

    def erp(self, subject: int) -> Erp:
        """Test ERPs (image, channel, time): the repetitions of the test EEG averaged."""
        erp = self._cached(("erp", subject), lambda: self._load_erp(subject))
        if erp.data.shape[0] != self.n_test:
            raise DataError(f"{self.path(self.ERP, subject)}: {erp.data.shape[0]} test "
                            f"images, the metadata lists {self.n_test}")
        return erp

    def window(self, subject: int) -> tuple[float, float] | None:
        """The ERP time window the decoder used (``erp.tmin``..``erp.tmax``), if known."""
        if not self.has("info", subject):
            return None
        info = self._cached(("info", subject), lambda: load_json(self.path("info", subject)))
        return float(info["tmin"]), float(info["tmax"])

    def can_score(self, subject: int) -> bool:
        return all(self.has(k, subject) for k in ("features", "gallery", "mapper"))

    def trial_scores(self, subject: int, trial: int) -> np.ndarray:
        """Cosine similarity of trial ``trial``'s decoded EEG to every gallery image.

        Applies the saved mapper to the saved test features; nothing is refitted.
        """
        x = self._cached(("features", subject),
                         lambda: load_npy(self._require("features", subject)))
        gallery = self._cached(("gallery", subject),
                               lambda: load_npy(self._require("gallery", subject)))
        # our own output (written by train@N or copied by the bundle stage)
        mapper = self._cached(("mapper", subject),
                              lambda: load_mapper(self._require("mapper", subject)))
        if len(x) != self.n_test or len(gallery) != self.n_test:
            raise DataError(f"{self.path('features', subject)}: {len(x)} test features and "
                            f"{len(gallery)} gallery embeddings; expected {self.n_test}")
        pred = np.asarray(mapper.predict(x[trial:trial + 1]), dtype=np.float64)
        return cosine_scores(pred, gallery)[0]


class PipelineSource(Source):
    """The pipeline's outputs in a project, in ``dvc.yaml``'s layout (:data:`PIPELINE_FILES`)."""

    VERSION_FILES = ("dvc.lock", PIPELINE_FILES["params"][0])
    compares_experiments = True
    IMAGES, ERP = "images", "eeg"

    def __init__(self, root: str | Path):
        super().__init__(root)
        p = load_params(self._require("params"))
        self.subjects = tuple(p.data.subjects)
        self.top_k = p.evaluate.top_k
        self.label = f"pipeline outputs in {self.root}"

    def path(self, key: str, subject: int | None = None) -> Path:
        return self.root / PIPELINE_FILES[key][0].format(s=subject)

    def stage(self, key: str, subject: int | None = None) -> str | None:
        stage = PIPELINE_FILES[key][1]
        return stage.format(s=subject) if stage else None

    def missing(self, key: str, subject: int | None = None) -> MissingOutput:
        stage = self.stage(key, subject)
        if stage is None:
            return MissingOutput(self.path(key, subject), "dvc repro",
                                 "start the explorer in the project root (where params.yaml "
                                 "is), after running the pipeline, or pass --bundle DIR")
        return MissingOutput(self.path(key, subject), f"dvc repro {stage}",
                             f"stage {stage} writes it: run `dvc repro {stage}` (and whatever "
                             f"it needs) in the project root")

    def experiments(self) -> list[Experiment]:
        return load_experiments(self.root)

    def image_folder(self) -> Path:
        return self.path("images")

    def _load_test_images(self) -> tuple[list[str], list[str]]:
        meta = load_metadata(self._require("metadata"))
        return meta["test_img_files"], meta["test_img_concepts"]

    def _load_erp(self, subject: int) -> Erp:
        ep = load_epochs(self._require("eeg", subject))
        data = np.asarray(ep.data.mean(axis=REP_AXIS), dtype=np.float32)
        return Erp(data=data, ch_names=ep.ch_names, times=ep.times)


class BundleSource(Source):
    """A bundle directory written by the ``bundle`` stage (:data:`BUNDLE_FILES`)."""

    VERSION_FILES = (BUNDLE_FILES["manifest"],)
    IMAGES, ERP = "test_images", "erp"

    def __init__(self, root: str | Path):
        super().__init__(root)
        path = self._require("manifest")
        self.manifest = manifest = check_manifest(load_json(path), path)
        self.subjects = tuple(int(s) for s in manifest["subjects"])
        self.top_k = int(manifest["top_k"])
        self.label = f"bundle {self.root}"

    def path(self, key: str, subject: int | None = None) -> Path:
        return self.root / BUNDLE_FILES[key].format(s=subject)

    def stage(self, key: str, subject: int | None = None) -> str | None:
        return "bundle"

    def missing(self, key: str, subject: int | None = None) -> MissingOutput:
        return MissingOutput(self.path(key, subject), "dvc repro bundle",
                             "missing from the bundle: rebuild it with `dvc repro bundle` in "
                             "the project")

    def image_folder(self) -> Path:
        return self.path("test_images").parent

    def _load_test_images(self) -> tuple[list[str], list[str]]:
        path = self._require("metadata")
        return check_test_images(load_json(path), path)

    def _load_erp(self, subject: int) -> Erp:
        data = load_npy(self._require("erp", subject)).astype(np.float32)
        info_path = self._require("erp_info", subject)
        info = load_json(info_path)
        erp = Erp(data=data, ch_names=tuple(info["ch_names"]),
                  times=np.asarray(info["times"], dtype=np.float64))
        if data.shape[1:] != (len(erp.ch_names), len(erp.times)):
            raise DataError(f"{info_path}: {len(erp.ch_names)} channels and "
                            f"{len(erp.times)} times, the ERP array has shape {data.shape}")
        return erp


#: The sources by the name the page's arguments choose.
SOURCES: dict[str, type[Source]] = {"pipeline": PipelineSource, "bundle": BundleSource}
