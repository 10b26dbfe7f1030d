"""Where the explorer's files are, and what the per-trial rankings and the bundle hold.

Two fixed layouts, written down once: :data:`PIPELINE_FILES` mirrors ``dvc.yaml`` (a test
checks it against the stages' declared outputs) and :data:`BUNDLE_FILES` is what the
``bundle`` stage writes.  The bundle's writer (:mod:`neurovision.app.bundle`) and the
explorer's readers (:mod:`neurovision.app.sources`) both import them from here, so the stage
does not depend on the reader's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurovision.errors import DataError

#: logical name -> (path under the project root, stage that writes it); ``{s}`` = subject.
#: ``images`` is the folder holding ``test_images.zip`` or an unpacked ``test_images/``.
PIPELINE_FILES: dict[str, tuple[str, str | None]] = {
    "params": ("params.yaml", None),
    "summary": ("metrics/details.json", "summarize"),
    "metrics": ("metrics/subjects/sub-{s}/details.json", "evaluate@{s}"),
    "trials": ("metrics/subjects/sub-{s}/trials.json", "evaluate@{s}"),
    "topk": ("metrics/subjects/sub-{s}/topk.csv", "evaluate@{s}"),
    "ranks": ("metrics/subjects/sub-{s}/ranks.csv", "evaluate@{s}"),
    "metadata": ("data/raw/images/image_metadata.npy", "download_images"),
    "images": ("data/raw/images", "download_images"),
    "eeg": ("data/eeg/sub-{s}/preprocessed_eeg_test.npy", "preprocess@{s}"),
    "info": ("data/features/info/sub-{s}.json", "erp@{s}"),
    "features": ("data/features/test/sub-{s}.npy", "erp@{s}"),
    "gallery": ("metrics/subjects/sub-{s}/gallery.npy", "evaluate@{s}"),
    "mapper": ("models/sub-{s}.joblib", "train@{s}"),
}

BUNDLE_FORMAT = "neurovision-bundle"
BUNDLE_VERSION = 3  # 2: the metrics files are details.json; 3: a gallery per subject

#: logical name -> path inside a bundle directory (all written by the ``bundle`` stage).
BUNDLE_FILES: dict[str, str] = {
    "manifest": "manifest.json",
    "summary": "details.json",
    "metrics": "sub-{s}/details.json",
    "trials": "sub-{s}/trials.json",
    "topk": "sub-{s}/topk.csv",
    "ranks": "sub-{s}/ranks.csv",
    "metadata": "metadata.json",
    "test_images": "test_images.zip",
    "erp": "sub-{s}/erp.npy",
    "erp_info": "sub-{s}/erp.json",
    "info": "sub-{s}/info.json",
    "features": "sub-{s}/features.npy",
    "gallery": "sub-{s}/gallery.npy",
    "mapper": "sub-{s}/mapper.joblib",
}

TRIAL_KEYS = ("trial", "concept", "file", "rank", "true_score", "top_indices", "top_scores")


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


def check_manifest(manifest: Any, source: str | Path) -> dict:
    """A bundle's ``manifest.json``, checked to be of this format and version."""
    got = manifest.get("format") if isinstance(manifest, dict) else manifest
    if got != BUNDLE_FORMAT:
        raise DataError(f"{source}: expected format {BUNDLE_FORMAT!r}, got {got!r}")
    if manifest.get("version") != BUNDLE_VERSION:
        raise DataError(f"{source}: expected bundle version {BUNDLE_VERSION}, got "
                        f"{manifest.get('version')!r}; rebuild it with `dvc repro bundle`")
    return manifest


def check_test_images(meta: Any, source: str | Path) -> tuple[list[str], list[str]]:
    """A bundle's ``metadata.json``: test image files and concepts, in gallery order."""
    files = meta.get("test_img_files") if isinstance(meta, dict) else None
    concepts = meta.get("test_img_concepts") if isinstance(meta, dict) else None
    if (not isinstance(files, list) or not isinstance(concepts, list)
            or len(files) != len(concepts) or not files):
        raise DataError(f"{source}: expected equal, non-empty lists 'test_img_files' and "
                        f"'test_img_concepts'")
    return files, concepts
