"""DVC stage embed_text: OpenCLIP text embeddings of the TRAINING concepts' names.

One prompt per training concept ("a photo of a <concept words>", see
``neurovision.targets.PROMPT``), embedded by the text tower of the same model as the images
(``embed.model``, ``embed.pretrained``, ``embed.seed``), L2-normalised float32.  These are the
targets of ``train.target: text``.  Test concepts are never embedded.
"""

from __future__ import annotations

import logging
import sys

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision import __version__
from neurovision.io import atomic_dir, save_json, save_npy
from neurovision.release import load_metadata
from neurovision.stage import params_from, parser, run
from neurovision.targets import PROMPT, prompts, unique_in_order
from neurovision.vision.encoder import load_encoder
from neurovision.vision.text import embed_texts

log = logging.getLogger("neurovision.embed_text")


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--metadata", required=True, help="image_metadata.npy")
    ap.add_argument("--out", required=True, help="directory for train.npy and provenance.json")
    args = ap.parse_args(argv)
    p = params_from(args).embed
    meta = load_metadata(args.metadata)
    concepts = unique_in_order(meta["train_img_concepts"])  # training concepts only
    texts = prompts(concepts)
    encoder = load_encoder(p.model, p.pretrained, seed=p.seed)
    emb = embed_texts(encoder.model, p.model, texts)
    with atomic_dir(args.out) as tmp:
        save_npy(tmp / "train.npy", emb)
        import open_clip
        import torch
        save_json(tmp / "provenance.json", {
            "model": p.model, "pretrained": p.pretrained,
            "seed": p.seed if p.pretrained.lower() == "none" else None,
            "prompt": PROMPT, "l2_normalised": True, "dtype": "float32",
            "open_clip": open_clip.__version__, "torch": torch.__version__,
            "neurovision": __version__, "dim": int(emb.shape[1]),
            "concepts": concepts, "prompts": texts,
        })
    log.info("embedded %d training-concept prompts (e.g. %r) with %s", len(texts), texts[0],
             p.model)


if __name__ == "__main__":
    sys.exit(run(main))
