"""DVC stage embed: L2-normalised OpenCLIP embeddings of the training and test images."""

from __future__ import annotations

import sys
from pathlib import Path

from neurovision import __version__
from neurovision.embed import ImageSource, embed_images, image_members, load_encoder, load_metadata
from neurovision.io import atomic_dir, save_json, save_npy
from neurovision.stage import params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", required=True, help="directory with image_metadata.npy and zips")
    ap.add_argument("--out", required=True, help="directory for train.npy, test.npy, provenance")
    args = ap.parse_args(argv)
    p = params_from(args).embed
    images = Path(args.images)
    meta = load_metadata(images / "image_metadata.npy")
    sources = {split: ImageSource(images, split) for split in ("train", "test")}
    members = {split: image_members(meta, split) for split in ("train", "test")}
    for split in sources:
        sources[split].check(members[split])
    encoder = load_encoder(p.model, p.pretrained, seed=p.seed)
    with atomic_dir(args.out) as tmp:
        for split in ("test", "train"):
            emb = embed_images(encoder, sources[split], members[split], p.batch_size,
                               p.num_workers)
            save_npy(tmp / f"{split}.npy", emb)
        import open_clip
        import torch
        save_json(tmp / "provenance.json", {
            "model": p.model, "pretrained": p.pretrained,
            "seed": p.seed if p.pretrained.lower() == "none" else None,
            "transform": repr(encoder.preprocess), "l2_normalised": True, "dtype": "float32",
            "open_clip": open_clip.__version__, "torch": torch.__version__,
            "neurovision": __version__, "dim": int(emb.shape[1]),
            "train_images": members["train"], "test_images": members["test"],
        })


if __name__ == "__main__":
    sys.exit(run(main))
