"""Device check: the embed stage's path on the CPU and on a CUDA GPU, side by side.

Renders the full-size simulated image set (16,540 training + 200 test images as the demo's
JPEGs, ``neurovision.demo.write_images``), then embeds its 16,540 training images with the
embed stage's own function
(``neurovision.vision.embed.embed_layers``: decoding worker processes, batches, one pass for
all layers) on the GPU at float32, float16 and bfloat16 (autocast), and the first
``--cpu-images`` of them on the CPU at float32 (the CPU takes minutes per thousand images).
It prints images/s for each, and for each GPU precision the largest absolute difference of
its L2-normalised embeddings from the CPU's on those images, per layer.  Models are randomly
initialised (seeded): the machine needs no network, and speed and agreement do not depend
on the weights' values.

    python benchmarks/device_check.py                         # under 5 min on one GPU
    python benchmarks/device_check.py --models RN50 --layers final 0.5 --out check.json

On a machine without a CUDA device it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurovision import demo
from neurovision.images import ImageSource
from neurovision.params import DemoParams
from neurovision.release import image_members, load_metadata
from neurovision.vision.embed import embed_layers
from neurovision.vision.encoder import load_encoder
from neurovision.vision.features import resolve_layers
from neurovision.vision.runtime import prefer_sleeping_openmp_threads, usable_cpus

log = logging.getLogger("neurovision.benchmark")

#: The release's image set (docs/things-eeg2.md), as the demo renders it.
FULL_SIZE = DemoParams(n_train_concepts=1654, train_images_per_concept=10, n_test=200)
GPU_PRECISIONS = ("float32", "float16", "bfloat16")


def no_gpu_reason() -> str | None:
    """Why there is nothing to check here, or None when torch sees a CUDA device."""
    import torch

    if not torch.cuda.is_available():
        return "torch finds no CUDA device on this machine"
    return None


def timed_embed(encoder, source: ImageSource, members: list[str], taps, *, device: str,
                precision: str, batch_size: int, num_workers: int) -> tuple[dict, float]:
    """(features by layer, images/s) of the embed stage's path, without the chunk cache."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats = embed_layers(encoder, source, members, taps, batch_size, num_workers,
                         progress=False, precision=precision, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return feats, len(members) / (time.perf_counter() - t0)


def max_abs_diff(a: dict, b: dict) -> dict[str, float]:
    """Per layer, the largest absolute difference between two sets of embeddings (rows of
    ``b`` beyond ``a``'s count are not compared)."""
    return {name: float(np.abs(a[name].astype(np.float64)
                               - b[name][:len(a[name])].astype(np.float64)).max())
            for name in a}


def check_model(model: str, layers: list, images: Path, *, cpu_images: int, batch_size: int,
                num_workers: int, device: str = "cuda",
                precisions: tuple[str, ...] = GPU_PRECISIONS) -> list[dict]:
    """Rows of the table for one model: the CPU reference, then each GPU precision."""
    encoder = load_encoder(model, "none", seed=0)
    taps = resolve_layers(encoder.model, layers, "mean")
    meta = load_metadata(images / "image_metadata.npy")
    train = ImageSource(images, "train")
    members = image_members(meta, "train")
    kw = dict(batch_size=batch_size, num_workers=num_workers)
    ref, cpu_rate = timed_embed(encoder, train, members[:cpu_images], taps, device="cpu",
                                precision="float32", **kw)
    rows = [{"model": model, "device": "cpu", "precision": "float32",
             "images": min(cpu_images, len(members)), "images_per_s": round(cpu_rate, 1),
             "max_abs_diff_to_cpu": None}]
    for precision in precisions:
        embed_layers(encoder, train, members[:batch_size], taps, batch_size, 0, progress=False,
                     precision=precision, device=device)  # warm-up: CUDA context, kernels
        feats, rate = timed_embed(encoder, train, members, taps, device=device,
                                  precision=precision, **kw)
        rows.append({"model": model, "device": device, "precision": precision,
                     "images": len(members), "images_per_s": round(rate, 1),
                     "max_abs_diff_to_cpu": max_abs_diff(ref, feats)})
        log.info("%s %s %s: %.0f img/s", model, device, precision, rate)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | device | precision | images | images/s | largest abs. difference "
             "to the CPU's float32 |", "|---|---|---|---:|---:|---|"]
    for r in rows:
        diff = r["max_abs_diff_to_cpu"]
        text = ("(reference)" if diff is None
                else ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))
        lines.append(f"| {r['model']} | {r['device']} | {r['precision']} | {r['images']} | "
                     f"{r['images_per_s']:.1f} | {text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    prefer_sleeping_openmp_threads()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["ViT-B-32", "RN50"])
    ap.add_argument("--layers", nargs="+", default=["final", "0.5"],
                    help="embed.layers: final and/or relative depths")
    ap.add_argument("--cpu-images", type=int, default=256,
                    help="training images embedded on the CPU for the reference")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--num-workers", type=int, default=None,
                    help="decoding worker processes (default: usable CPUs - 1)")
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reason = no_gpu_reason()
    if reason:
        print(f"device check: no GPU ({reason}); nothing to compare, exiting")
        return 0
    import torch

    layers = [x if x == "final" else float(x) for x in args.layers]
    workers = args.num_workers if args.num_workers is not None else max(1, usable_cpus() - 1)
    print(f"device check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"{usable_cpus()} CPUs, load {os.getloadavg()[0]:.2f}, {workers} decoding workers")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        demo.write_images(tmp, FULL_SIZE)
        log.info("rendered %d images in %.0f s",
                 FULL_SIZE.n_train_concepts * FULL_SIZE.train_images_per_concept
                 + FULL_SIZE.n_test, time.perf_counter() - t0)
        for model in args.models:
            rows += check_model(model, layers, Path(tmp), cpu_images=args.cpu_images,
                                batch_size=args.batch_size, num_workers=workers)
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps({"gpu": torch.cuda.get_device_name(0),
                                              "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
