"""Benchmark: images/s of the embed stage's path against a one-image-at-a-time loop.

All embed the same images with the same model in one run, interleaved (stage, stage with
open_clip's own forward, loop, stage, ...) so that a change in machine load hits them alike;
the table gives the median of the repeats, the ratios to the loop and the largest absolute
difference between the (L2-normalised) embeddings.  The stage path runs twice: as the stage
runs it (the last ViT block on the class token only) and with ``encode_image``, which shows
what that saves.  Optional extra rows: the stage path with other worker counts, and with
reduced precision together with its cosine similarity to float32.

    python benchmarks/embed_throughput.py                  # 128 simulated 500x500 JPEGs
    python benchmarks/embed_throughput.py --images data/raw/images --n 256

The one-at-a-time loop is what the original prototype did: read, decode and preprocess an
image in the main process, then ``model.encode_image(x[None])`` under ``torch.no_grad()``.
The stage path is ``neurovision.vision.embed.embed_images`` with the stage's defaults: batches of
``embed.batch_size``, decoding in ``embed.num_workers`` worker processes, inference under
``torch.inference_mode`` with one thread per usable CPU, the last transformer block on the
class token only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from neurovision import demo
from neurovision.images import ImageSource, decode_image
from neurovision.params import DemoParams, EmbedParams
from neurovision.release import image_members, load_metadata
from neurovision.retrieval import l2_normalize
from neurovision.vision import embed as vision_embed
from neurovision.vision.embed import embed_images
from neurovision.vision.encoder import load_encoder
from neurovision.vision.features import FORWARD_ENCODE_IMAGE
from neurovision.vision.runtime import prefer_sleeping_openmp_threads, usable_cpus


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> dict:
    import torch

    return {"cpu": cpu_name(), "usable_cpus": usable_cpus(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
            "load_1min": round(os.getloadavg()[0], 2)}


def one_at_a_time(encoder, source: ImageSource, members: list[str]) -> np.ndarray:
    """The prototype's loop: one image per forward pass, decoding in the main process."""
    import torch

    out = []
    with torch.no_grad():
        for name in members:
            x = encoder.preprocess(decode_image(source.read(name), name)).unsqueeze(0)
            out.append(encoder.model.encode_image(x).float().numpy())
    return l2_normalize(np.concatenate(out)).astype(np.float32)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the decoding workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn):
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = fn()
    timed.cpu = cpu_seconds() - c0
    return time.perf_counter() - t0, result


def simulated_images(folder: Path, n: int, size: int) -> Path:
    p = DemoParams(seed=0, n_train_concepts=math.ceil(n / 4), train_images_per_concept=4,
                   n_test=2, image_size=size)
    demo.write_images(folder, p)
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", help="a folder with image_metadata.npy and training_images.zip "
                                     "(default: simulate --n images of --size pixels)")
    ap.add_argument("--n", type=int, default=128, help="images to embed per repeat")
    ap.add_argument("--size", type=int, default=500, help="simulated image size (THINGS: 500)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", default="none")
    defaults = EmbedParams()
    ap.add_argument("--batch-size", type=int, default=defaults.batch_size)
    ap.add_argument("--num-workers", type=int, default=defaults.num_workers)
    ap.add_argument("--also-workers", default="0,2",
                    help="extra rows: the stage path with these worker counts ('' for none)")
    ap.add_argument("--precisions", default="bfloat16,int8",
                    help="extra rows: the stage path in these precisions ('' for none)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    prefer_sleeping_openmp_threads()  # as the embed stage does, for both contenders
    import torch  # noqa: F401  (after the OpenMP setting)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.images) if args.images else simulated_images(Path(tmp), args.n,
                                                                         args.size)
        source = ImageSource(folder, "train")
        members = image_members(load_metadata(folder / "image_metadata.npy"), "train")[: args.n]
        encoder = load_encoder(args.model, args.pretrained, seed=0)
        info = machine()
        def stage(workers=args.num_workers, precision="float32"):
            return embed_images(encoder, source, members, args.batch_size, workers, progress=False,
                                 precision=precision)

        def full_forward():
            # the same loop with open_clip's encode_image: the class-token check says no
            with mock.patch.object(vision_embed, "_class_token_vit", lambda model: False), \
                    mock.patch.object(vision_embed, "forward_path",
                                      lambda model: FORWARD_ENCODE_IMAGE):
                return stage()

        def loop():
            return one_at_a_time(encoder, source, members)
        # Warm-up (first-call kernel selection, page cache), not timed as a run.
        embed_images(encoder, source, members[:2], 2, 0, progress=False)
        one_at_a_time(encoder, source, members[:1])

        contenders = {"stage": stage, "encode_image": full_forward, "loop": loop}
        times = {k: [] for k in contenders}
        cpu = {k: [] for k in contenders}
        out = {}
        for r in range(args.repeats):
            for k, fn in contenders.items():
                t, out[k] = timed(fn)
                times[k].append(t)
                cpu[k].append(timed.cpu)
            print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
                f"{k} {len(members) / times[k][-1]:.2f} img/s" for k in contenders),
                file=sys.stderr)
        eager, full, slow = out["stage"], out["encode_image"], out["loop"]
        rate = {k: len(members) / statistics.median(v) for k, v in times.items()}
        per_cpu = {k: len(members) / statistics.median(v) for k, v in cpu.items()}
        label = (f"batch {args.batch_size}, {args.num_workers} decoding worker(s), "
                 f"inference_mode, float32")
        rows = [
            {"key": "stage", "path": f"embed stage ({label}, class-token last block)",
             "max_abs_diff": float(np.abs(eager - slow).max())},
            {"key": "encode_image", "path": f"embed stage with open_clip's encode_image ({label})",
             "max_abs_diff": float(np.abs(full - slow).max())},
            {"key": "loop", "path": "one image at a time (main process, no_grad, float32)",
             "max_abs_diff": 0.0},
        ]
        for row in rows:
            k = row["key"]
            row.update(img_s=rate[k], img_cpu_s=per_cpu[k], speedup=rate[k] / rate["loop"],
                       speedup_best=min(times["loop"]) / min(times[k]),
                       runs=[len(members) / t for t in times[k]])
        max_abs = rows[0]["max_abs_diff"]
        extra = []
        for w in [int(x) for x in args.also_workers.split(",") if x.strip()]:
            if w == args.num_workers:
                continue
            t, emb = timed(lambda w=w: stage(workers=w))
            extra.append({"path": f"embed stage, eager, {w} worker(s)",
                          "img_s": len(members) / t,
                          "max_abs_diff": float(np.abs(emb - eager).max())})
        for prec in [x.strip() for x in args.precisions.split(",") if x.strip()]:
            stage(precision=prec)  # warm-up: casting/quantising the weights, kernel selection
            t, emb = timed(lambda prec=prec: stage(precision=prec))
            cos = (emb.astype(np.float64) * eager).sum(axis=1)
            extra.append({"path": f"embed stage, {prec}", "img_s": len(members) / t,
                          "max_abs_diff": float(np.abs(emb - eager).max()),
                          "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())})
        info["load_1min_end"] = round(os.getloadavg()[0], 2)

    print(f"\nMachine: {info['cpu']}, {info['usable_cpus']} usable CPU(s), torch "
          f"{info['torch']} ({info['torch_threads']} threads), OMP_WAIT_POLICY="
          f"{info['OMP_WAIT_POLICY']}; 1-min load average {info['load_1min']} at start, "
          f"{info['load_1min_end']} at end")
    print(f"Images: {len(members)} x {args.repeats} repeats, "
          f"{'from ' + args.images if args.images else f'simulated {args.size}x{args.size} JPEG'}"
          f"; model {args.model} (pretrained: {args.pretrained})\n")
    print("| path | images/s (median) | best run | images/s of each run | images per CPU-second "
          "(median) | speed-up vs loop (median / median) | max abs diff to loop |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['path']} | {row['img_s']:.2f} | {max(row['runs']):.2f} | "
              f"{', '.join(f'{x:.2f}' for x in row['runs'])} | {row['img_cpu_s']:.2f} | "
              f"{row['speedup']:.2f}x | {row['max_abs_diff']:.1e} |")
    print(f"\nspeed-up of the stage path: {rows[0]['speedup']:.2f}x (median / median), "
          f"{rows[0]['speedup_best']:.2f}x (best / best); with encode_image: "
          f"{rows[1]['speedup']:.2f}x; max |difference| between the stage's and the loop's "
          f"embeddings: {max_abs:.2e}")
    if extra:
        print("\n| variant (1 run each) | images/s | max abs diff to float32 | min cosine "
              "| mean cosine |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in extra:
            cos = (f"{row['min_cosine']:.6f} | {row['mean_cosine']:.6f}" if "min_cosine" in row
                   else "1 (same) | 1 (same)" if row["max_abs_diff"] == 0 else "- | -")
            print(f"| {row['path']} | {row['img_s']:.2f} | {row['max_abs_diff']:.2e} | {cos} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": info, "n_images": len(members), "repeats": args.repeats,
            "model": args.model, "rows": rows, "speedup": rows[0]["speedup"],
            "speedup_encode_image": rows[1]["speedup"], "speedup_best": rows[0]["speedup_best"],
            "max_abs_diff": max_abs, "extra": extra}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
