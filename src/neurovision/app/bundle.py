"""The deployable bundle: the few small files the explorer needs, without the raw data.

Layout (:data:`neurovision.app.layout.BUNDLE_FILES`)::

    manifest.json        format, version, subjects, top_k, n_test, image size, file sizes
    details.json         the summary metrics (copy of metrics/details.json)
    metadata.json        test image files and concepts, gallery order (plain JSON, no pickle)
    test_images.zip      the test images re-encoded as small JPEGs, release member names
    sub-N/               details.json, trials.json, gallery.npy (the gallery evaluate ranked),
                         topk.csv, ranks.csv, info.json (copies),
                         erp.npy (repetition-averaged test EEG, float16) + erp.json (channels,
                         times), features.npy (test ERP features), mapper.joblib (copy)
"""

from __future__ import annotations

import io
import logging
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from neurovision.app.layout import BUNDLE_FILES, BUNDLE_FORMAT, BUNDLE_VERSION, check_trials
from neurovision.erp import REP_AXIS, load_epochs
from neurovision.errors import DataError
from neurovision.images import ImageSource, decode_image
from neurovision.io import atomic_dir, load_json, load_npy, save_json, save_npy
from neurovision.release import image_members, load_metadata

log = logging.getLogger(__name__)


def reencode(data: bytes, name: str, size: int, quality: int) -> bytes:
    """An image as a JPEG whose longest side is at most ``size`` pixels."""
    img = decode_image(data, name)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def write_images_zip(path: Path, source: ImageSource, members: Sequence[str], size: int,
                     quality: int) -> None:
    """Re-encode ``members`` into a zip with the same member names (byte-reproducible)."""
    source.check(members)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for member in tqdm(members, unit="img", desc="bundle images"):
            data = reencode(source.read(member), member, size, quality)
            zf.writestr(zipfile.ZipInfo(member, (1980, 1, 1, 0, 0, 0)), data)


def export_bundle(out: str | Path, *, subjects: Sequence[int], top_k: int, metadata: Path,
                  images: Path, summary: Path, results: Path, eeg: Path,
                  info: Path, features: Path, models: Path, image_size: int = 160,
                  quality: int = 85) -> dict:
    """Write the bundle to ``out`` (atomically) and return its manifest.

    Inputs follow dvc.yaml's layout: ``results/sub-N/*`` (evaluate@N, with the gallery it
    ranked), ``eeg/sub-N/
    preprocessed_eeg_test.npy`` (download@N), ``info/sub-N.json`` and ``features/sub-N.npy``
    (erp@N), ``models/sub-N.joblib`` (train@N).
    """
    if image_size < 16:
        raise DataError(f"bundle: image size must be >= 16 pixels, got {image_size}")
    if not 1 <= quality <= 95:
        raise DataError(f"bundle: JPEG quality must be in 1..95, got {quality}")
    meta = load_metadata(metadata)
    files, concepts = meta["test_img_files"], meta["test_img_concepts"]
    n_test = len(files)
    with atomic_dir(out) as tmp:
        save_json(tmp / BUNDLE_FILES["metadata"],
                  {"test_img_files": list(files), "test_img_concepts": list(concepts)})
        write_images_zip(tmp / BUNDLE_FILES["test_images"], ImageSource(images, "test"),
                         image_members(meta, "test"), image_size, quality)
        shutil.copyfile(summary, tmp / BUNDLE_FILES["summary"])
        for s in subjects:
            _export_subject(tmp, s, n_test, results=results, eeg=eeg, info=info,
                            features=features, models=models)
        sizes = {str(p.relative_to(tmp)): p.stat().st_size
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
                    "subjects": [int(s) for s in subjects], "top_k": int(top_k),
                    "n_test": n_test, "image_size": image_size, "jpeg_quality": quality,
                    "bytes": int(sum(sizes.values())), "files": sizes}
        save_json(tmp / BUNDLE_FILES["manifest"], manifest)
    log.info("bundle: %d subject(s), %d test images, %.2f MB in %s", len(subjects), n_test,
             manifest["bytes"] / 1e6, out)
    return manifest


def _export_subject(tmp: Path, s: int, n_test: int, *, results: Path, eeg: Path, info: Path,
                    features: Path, models: Path) -> None:
    def dest(key: str) -> Path:
        p = tmp / BUNDLE_FILES[key].format(s=s)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    res = Path(results) / f"sub-{s}"
    trials_path = res / "trials.json"
    check_trials(load_json(trials_path), n_test, trials_path)
    for key, src in (("trials", trials_path), ("metrics", res / "details.json"),
                     ("topk", res / "topk.csv"), ("ranks", res / "ranks.csv"),
                     ("info", Path(info) / f"sub-{s}.json"),
                     ("mapper", Path(models) / f"sub-{s}.joblib")):
        if not src.is_file():
            raise DataError(f"{src}: file not found (run the stage that writes it: dvc repro)")
        shutil.copyfile(src, dest(key))
    gallery = load_npy(res / "gallery.npy")
    if len(gallery) != n_test:
        raise DataError(f"{res / 'gallery.npy'}: {len(gallery)} embeddings, the metadata lists "
                        f"{n_test} test images; expected the same number")
    save_npy(dest("gallery"), gallery.astype(np.float32))
    x = load_npy(Path(features) / f"sub-{s}.npy")
    if len(x) != n_test:
        raise DataError(f"{Path(features) / f'sub-{s}.npy'}: {len(x)} test ERPs, expected "
                        f"{n_test}")
    save_npy(dest("features"), x.astype(np.float32))
    ep = load_epochs(Path(eeg) / f"sub-{s}" / "preprocessed_eeg_test.npy")
    if ep.data.shape[0] != n_test:
        raise DataError(f"{ep.source}: {ep.data.shape[0]} test images, expected {n_test}")
    save_npy(dest("erp"), ep.data.mean(axis=REP_AXIS).astype(np.float16))
    save_json(dest("erp_info"), {"ch_names": list(ep.ch_names),
                                 "times": [float(t) for t in ep.times]})
