"""DVC stage embed: L2-normalised OpenCLIP features of the training and test images, one
folder per layer of embed.layers (embeds/clip/<layer>/train.npy, test.npy), from one pass.

Finished chunks are kept in --cache-dir (not a DVC output, so it survives DVC deleting
the outputs before a rerun): a killed run resumes where it stopped, with the same result,
and a layer added later costs only its own pass.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision import __version__
from neurovision.images import ImageSource
from neurovision.io import atomic_dir, save_json, save_npy
from neurovision.release import image_members, load_metadata
from neurovision.stage import params_from, parser, run
from neurovision.vision.embed import embed_layers, precision_fidelity
from neurovision.vision.encoder import load_encoder
from neurovision.vision.features import resolve_layers
from neurovision.vision.runtime import prefer_sleeping_openmp_threads

log = logging.getLogger("neurovision.embed")


def main(argv: list[str] | None = None) -> None:
    prefer_sleeping_openmp_threads()  # before torch is imported (no effect if it already is)
    ap = parser(__doc__)
    ap.add_argument("--images", required=True, help="directory with image_metadata.npy and zips")
    ap.add_argument("--out", required=True, help="directory for <layer>/ and provenance.json")
    ap.add_argument("--cache-dir", default=None,
                    help="directory for resumable chunks (default: no cache)")
    args = ap.parse_args(argv)
    p = params_from(args).embed
    images = Path(args.images)
    meta = load_metadata(images / "image_metadata.npy")
    sources = {split: ImageSource(images, split) for split in ("train", "test")}
    members = {split: image_members(meta, split) for split in ("train", "test")}
    for split in sources:
        sources[split].check(members[split])
    encoder = load_encoder(p.model, p.pretrained, seed=p.seed)
    taps = resolve_layers(encoder.model, p.layers, p.pool)
    fidelity = None
    if p.precision != "float32":
        fidelity = precision_fidelity(encoder, sources["test"], members["test"], p.precision,
                                      threads=p.threads, blur_sigma=p.blur_sigma)
        log.warning("embed.precision %s: cosine to float32 on %d test images: min %.6f, "
                    "mean %.6f", p.precision, fidelity["n_images"],
                    fidelity["min_cosine_to_float32"], fidelity["mean_cosine_to_float32"])
    forward, widths = {}, {}
    with atomic_dir(args.out) as tmp:
        for split in ("test", "train"):
            report: dict = {}
            feats = embed_layers(encoder, sources[split], members[split], taps, p.batch_size,
                                 p.num_workers, threads=p.threads, precision=p.precision,
                                 blur_sigma=p.blur_sigma, chunk_size=p.chunk_size,
                                 cache_dir=args.cache_dir, report=report)
            forward[split] = report["forward"]
            for name, array in feats.items():
                save_npy(tmp / name / f"{split}.npy", array)
                widths[name] = int(array.shape[1])
        import open_clip
        import torch
        save_json(tmp / "provenance.json", {
            "model": p.model, "pretrained": p.pretrained,
            "seed": p.seed if p.pretrained.lower() == "none" else None,
            "transform": repr(encoder.preprocess), "blur_sigma": p.blur_sigma,
            "precision": p.precision, "precision_fidelity": fidelity,
            "batch_size": p.batch_size, "forward": forward,
            "layers": {t.name: {"block": t.block, "n_blocks": t.n_blocks or None,
                                "pool": t.pool, "width": widths[t.name],
                                "what": t.describe()} for t in taps},
            "l2_normalised": True, "dtype": "float32",
            "open_clip": open_clip.__version__, "torch": torch.__version__,
            "neurovision": __version__,
            "train_images": members["train"], "test_images": members["test"],
        })
    log.info("embedded %d + %d images: %s", len(members["train"]), len(members["test"]),
             ", ".join(f"{t.name} ({t.describe()}, {widths[t.name]}-d)" for t in taps))


if __name__ == "__main__":
    sys.exit(run(main))
