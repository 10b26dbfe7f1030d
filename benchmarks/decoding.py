"""Decoding benchmark: every mapper on a full-size simulated THINGS-EEG2, at several noise levels.

    python benchmarks/decoding.py                      # noise 1, 2 (the default), 4
    python benchmarks/decoding.py --noise 2 --mappers ridge contrastive

The dataset is the demo generator (:mod:`neurovision.demo`, nonlinear forward model, see
docs/demo.md) at the release's size: 1654 training concepts x 10 images x 4 repetitions,
200 test images x 80 repetitions, 17 channels x 100 samples.  Features are made by the
pipeline's own ERP code with ``erp.*`` from ``--params``; mappers are built from its
``train.*`` section (the defaults of params.yaml), so the table measures the defaults.

Targets: a randomly initialised OpenCLIP model (``embed.model`` of ``--params``, seed
``embed.seed``) run on the images at the size they are drawn (``--image-size``, default 96 px:
ViT-B-32 then sees 3 x 3 patches, ~5x faster than 224 px), L2-normalised, then PCA with
``pca.n_components`` fitted on the training images.  The embeddings depend only on the
images and that model, not on the noise, so they are computed once and cached in
``--cache-dir`` under a key made of everything they depend on.

Prints one Markdown table: per noise level and mapper, top-1 / top-5 (200-way), the ideal
observer's top-1 / top-5 on the same simulated test EEG, and the training time.

With ``--layers`` it compares the recipe of intermediate layers instead (README "Decoding
quality"): for each dataset size of ``--sizes`` (the full-size simulation and the default
demo, side by side), each backbone of ``--models`` (random weights: the cost is that of
trained ones), each layer alone, ``select`` (the best on held-out training concepts) and the
fusion of all of them, and each mapper of ``--mappers``: top-1 / top-5, the ideal observer
and the training time; and the embedding cost of the layer set and of each depth alone
against the final embedding alone, timed side by side on the same images.

    python benchmarks/decoding.py --layers final 0.25 0.5 0.75 --models ViT-B-32 RN50 \
        --mappers ridge contrastive align --noise 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from neurovision import __version__, demo
from neurovision.erp import Epochs, erp_features
from neurovision.images import ImageSource
from neurovision.io import atomic_path, save_json
from neurovision.mappers import build_mapper, fit_mapper
from neurovision.params import MAPPERS, DemoParams, Params, load_params, parse_params
from neurovision.release import image_members, load_metadata
from neurovision.retrieval import cosine_scores, retrieval_metrics
from neurovision.select import fuse, gallery, select_layer
from neurovision.targets import build_targets
from neurovision.vision.embed import embed_images, embed_layers
from neurovision.vision.encoder import Encoder
from neurovision.vision.features import FINAL, resolve_layers
from neurovision.vision.runtime import prefer_sleeping_openmp_threads

log = logging.getLogger("neurovision.benchmark")
ROOT = Path(__file__).resolve().parents[1]

#: The release's size (docs/things-eeg2.md).
FULL_SIZE = {"n_train_concepts": 1654, "train_images_per_concept": 10, "n_test": 200,
             "train_reps": 4, "test_reps": 80, "image_size": 96}
#: What the images (and so the cached embeddings) depend on.
_IMAGE_FIELDS = ("seed", "n_train_concepts", "train_images_per_concept", "n_test", "image_size")


def random_encoder(model_name: str, seed: int, image_size: int) -> Encoder:
    """A seeded, randomly initialised OpenCLIP model that takes ``image_size`` px input."""
    import open_clip
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=None, force_image_size=image_size)
    model.eval()
    return Encoder(model=model, preprocess=preprocess, name=model_name, pretrained="none")


def image_embeddings(p: DemoParams, model: str, seed: int, image_size: int, cache_dir: Path,
                     batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train, test) L2-normalised embeddings of the demo images and the training concepts;
    cached under a key of the image parameters, model, seed, size and library versions."""
    import open_clip
    import torch

    key_src = {"images": {f: getattr(p, f) for f in _IMAGE_FIELDS}, "model": model,
               "seed": seed, "image_size": image_size, "open_clip": open_clip.__version__,
               "torch": torch.__version__,
               "demo_code": hashlib.sha256(Path(demo.__file__).read_bytes()).hexdigest()[:16]}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"targets-{key}.npz"
    meta = demo.make_image_set(p).metadata
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            log.info("targets: cached %s", path)
            return z["train"], z["test"], meta["train_img_concepts"]
    encoder = random_encoder(model, seed, image_size)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        demo.write_images(tmp, p)  # the same JPEG zips the pipeline embeds
        meta = load_metadata(Path(tmp) / "image_metadata.npy")
        for split in ("train", "test"):
            t0 = time.perf_counter()
            out[split] = embed_images(encoder, ImageSource(tmp, split), image_members(meta, split),
                                      batch_size=batch_size)
            log.info("targets: embedded %d %s images in %.0f s", len(out[split]), split,
                     time.perf_counter() - t0)
    with atomic_path(path) as tmp_path, open(tmp_path, "wb") as f:
        np.savez(f, train=out["train"], test=out["test"])
    save_json(path.with_suffix(".json"), key_src)
    return out["train"], out["test"], meta["train_img_concepts"]


def simulated_features(p: DemoParams, params: Params, subject: int = 1,
                       noise_free: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Standardised ERP features (train, test) of a simulated subject and its ideal observer.

    ``noise_free``: the EEG is the forward model's noise-free response (no trial jitter, no
    background noise), whose ideal observer is perfect: what is left is what the mapping
    from EEG to these image embeddings allows.
    """
    images = demo.make_image_set(p)
    x = {}
    if noise_free:
        model = demo.forward_model(p, subject)
        mu = model.mean_response(demo.visual_features(images, p.image_size))[:, None]
        splits = (("train", mu[:images.n_train]), ("test", mu[images.n_train:]))
        ideal = {"top1": 1.0, "top5": 1.0}
    else:
        train, test, model, _ = demo.simulate_subject(p, subject, images)
        splits = (("train", train["preprocessed_eeg_data"]),
                  ("test", test["preprocessed_eeg_data"]))
        mu = model.mean_response(demo.visual_features(images, p.image_size)[images.n_train:])
        ideal = demo.ideal_observer(test["preprocessed_eeg_data"].mean(axis=1), mu,
                                    model.averaged_covariance(p.test_reps))
    for split, data in splits:  # (image, repetition, channel, time), release channel order
        ep = Epochs(data=data, ch_names=demo.DEMO_CHANNEL_ORDER, times=demo.TIMES,
                    source=f"simulated {split}")
        x[split] = erp_features(ep, params.erp)
    del splits
    if params.erp.standardize:
        scaler = StandardScaler().fit(x["train"])  # training rows only, as in erp@N
        x = {k: scaler.transform(v) for k, v in x.items()}
    return x["train"].astype(np.float32), x["test"].astype(np.float32), ideal


def score(mapper, x_test: np.ndarray, test_features: np.ndarray) -> dict:
    """The retrieval metrics of ``mapper`` on the test EEG, ranking the test images as the
    evaluate stage does: through the mapper's image tower when it has one (align)."""
    return retrieval_metrics(cosine_scores(np.asarray(mapper.predict(x_test)),
                                           gallery(mapper, test_features)))


def run_benchmark(params: Params, demo_params: DemoParams, noises: list[float | None],
                  mappers: list[str], image_size: int, cache_dir: Path, target: str) -> list[dict]:
    """One row per (noise, mapper): retrieval metrics, ideal observer, training time.

    A noise of ``None`` stands for the noise-free EEG (see :func:`simulated_features`)."""
    emb_train, emb_test, concepts = image_embeddings(
        demo_params, params.embed.model, params.embed.seed, image_size, cache_dir,
        params.embed.batch_size)
    if params.pca.n_components is not None:
        pca = PCA(n_components=params.pca.n_components, svd_solver="full").fit(emb_train)
        emb_train, emb_test = pca.transform(emb_train), pca.transform(emb_test)
    y = build_targets(target, emb_train.astype(np.float32), concepts)
    rows = []
    for noise in noises:
        p = demo_params.model_copy(update={"noise": demo_params.noise if noise is None else noise})
        t0 = time.perf_counter()
        x_train, x_test, ideal = simulated_features(p, params, noise_free=noise is None)
        log.info("noise %s: simulated %s training and %s test features in %.0f s (ideal "
                 "observer top-1 %.3f)", noise, x_train.shape, x_test.shape,
                 time.perf_counter() - t0, ideal["top1"])
        for name in mappers:
            mapper = build_mapper(params.train.model_copy(update={"mapper": name}))
            t0 = time.perf_counter()
            fit_mapper(mapper, x_train, y, groups=concepts)
            fit_s = time.perf_counter() - t0
            m = score(mapper, x_test, emb_test)
            row = {"noise": noise, "mapper": name, "top1": m["top1"], "top5": m["top5"],
                   "ideal_top1": ideal["top1"], "ideal_top5": ideal["top5"],
                   "fit_s": fit_s, "n_test": m["n_test"]}
            if hasattr(mapper, "best_epoch_"):
                row.update(best_epoch=mapper.best_epoch_, n_epochs=mapper.n_epochs_,
                           val_top1=mapper.val_top1_)
            log.info("noise %s, %s: top-1 %.3f, top-5 %.3f, fit %.1f s", noise, name,
                     m["top1"], m["top5"], fit_s)
            rows.append(row)
    return rows


def layer_embeddings(p: DemoParams, model: str, seed: int, image_size: int,
                     layers: list, pool: str, cache_dir: Path, batch_size: int = 64,
                     cost_images: int = 256, repeats: int = 3
                     ) -> tuple[dict, list[str], dict]:
    """Per layer name, (train, test) features of the demo images; the training concepts;
    and the embedding cost: seconds per image of the layer set, of each depth alone and of
    the final embedding alone, the medians of ``repeats`` interleaved passes over the first
    ``cost_images`` training images.  Chunks are cached in ``cache_dir/chunks``."""
    encoder = random_encoder(model, seed, image_size)
    taps = resolve_layers(encoder.model, layers, pool)
    final = resolve_layers(encoder.model, [FINAL], pool)
    feats, cost = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        demo.write_images(tmp, p)
        meta = load_metadata(Path(tmp) / "image_metadata.npy")
        members = {s: image_members(meta, s) for s in ("train", "test")}
        sources = {s: ImageSource(tmp, s) for s in ("train", "test")}
        for split in ("train", "test"):
            t0 = time.perf_counter()
            out = embed_layers(encoder, sources[split], members[split], taps, batch_size,
                               num_workers=1, cache_dir=Path(cache_dir) / "chunks")
            log.info("%s: %d %s images, layers %s in %.0f s", model, len(members[split]),
                     split, [t.name for t in taps], time.perf_counter() - t0)
            for name, array in out.items():
                feats.setdefault(name, {})[split] = array
        probe = members["train"][:cost_images]
        sets = {"final alone": final, "all layers": taps,
                **{f"{t.name} alone": [t] for t in taps if t.block is not None}}
        runs: dict[str, list[float]] = {k: [] for k in sets}
        embed_layers(encoder, sources["train"], probe[:batch_size], taps, batch_size,
                     progress=False)  # warm-up
        for _ in range(repeats):
            for label, chosen in sets.items():
                t0 = time.perf_counter()
                embed_layers(encoder, sources["train"], probe, chosen, batch_size,
                             num_workers=1, progress=False)
                runs[label].append((time.perf_counter() - t0) / len(probe))
        cost = {k: float(np.median(v)) for k, v in runs.items()}
        cost["blocks"] = {t.name: t.describe() for t in taps}
    return ({k: (v["train"], v["test"]) for k, v in feats.items()},
            meta["train_img_concepts"], cost)


def run_layers_benchmark(params: Params, sizes: dict[str, DemoParams], models: list[str],
                         layers: list, mappers: list[str], noise: float, image_size: int,
                         cache_dir: Path) -> tuple[list[dict], list[dict]]:
    """Rows (size, model, layer choice, mapper) of retrieval metrics; rows of embed cost."""
    rows, costs = [], []
    for size, demo_params in sizes.items():
        p = demo_params.model_copy(update={"noise": noise})
        x_train, x_test, ideal = simulated_features(p, params)
        for model in models:
            feats, concepts, cost = layer_embeddings(
                demo_params, model, params.embed.seed, image_size, layers, params.embed.pool,
                cache_dir, params.embed.batch_size)
            costs.append({"size": size, "model": model, **cost})
            pcs = {}
            for name, (tr, te) in feats.items():
                if params.pca.n_components is not None:
                    pca = PCA(n_components=min(params.pca.n_components, *tr.shape),
                              svd_solver="full").fit(tr)
                    tr, te = pca.transform(tr), pca.transform(te)
                pcs[name] = (tr.astype(np.float32), te.astype(np.float32))
            names = list(pcs)
            choices = [*names, "select", "fusion"]
            for choice in choices:
                for mapper_name in mappers:
                    train = params.train.model_copy(update={"mapper": mapper_name})
                    make = lambda train=train: build_mapper(train)  # noqa: E731
                    t0 = time.perf_counter()
                    if choice == "select":
                        ys = {n: build_targets("image", pcs[n][0], concepts) for n in names}
                        chosen, mapper, _ = select_layer(
                            make, lambda m, x, y, g: fit_mapper(m, x, y, groups=g), x_train,
                            ys, np.asarray(concepts), val_fraction=train.val_fraction,
                            seed=train.seed)
                        test = pcs[chosen][1]
                    else:
                        if choice == "fusion":
                            y_src = fuse([pcs[n][0] for n in names])
                            test = fuse([pcs[n][1] for n in names])
                        else:
                            y_src, test = pcs[choice]
                        chosen = choice
                        mapper = fit_mapper(make(), x_train,
                                            build_targets("image", y_src, concepts),
                                            groups=concepts)
                    fit_s = time.perf_counter() - t0
                    m = score(mapper, x_test, test)
                    rows.append({"size": size, "model": model, "layer": choice,
                                 "chosen": chosen, "mapper": mapper_name, "top1": m["top1"],
                                 "top5": m["top5"], "ideal_top1": ideal["top1"],
                                 "ideal_top5": ideal["top5"], "fit_s": fit_s,
                                 "n_test": m["n_test"]})
                    log.info("%s %s %s %s: top-1 %.3f top-5 %.3f (%.0f s)", size, model,
                             choice, mapper_name, m["top1"], m["top5"], fit_s)
    return rows, costs


def layers_table(rows: list[dict], costs: list[dict]) -> str:
    lines = ["| data | backbone | layer | mapper | top-1 | top-5 | ideal top-1 | training time |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        layer = r["layer"] if r["layer"] != "select" else f"select ({r['chosen']})"
        fit = f"{r['fit_s']:.1f}" if r["fit_s"] < 10 else f"{r['fit_s']:.0f}"
        lines.append(f"| {r['size']} | {r['model']} | {layer} | {r['mapper']} | "
                     f"{r['top1']:.3f} | {r['top5']:.3f} | {r['ideal_top1']:.3f} | {fit} s |")
    lines += ["", "| data | backbone | pass | ms per image | relative to the final alone |",
              "| --- | --- | --- | ---: | ---: |"]
    for c in costs:
        for label, value in c.items():
            if isinstance(value, float):
                what = label
                name = label.split(" ")[0]
                if name in c["blocks"] and label.endswith("alone") and name != FINAL:
                    what = f"{label} ({c['blocks'][name]})"
                lines.append(f"| {c['size']} | {c['model']} | {what} | {1000 * value:.1f} | "
                             f"{value / c['final alone']:.2f} |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = ["| noise | mapper | top-1 | top-5 | ideal top-1 | ideal top-5 | training time |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        noise = "none" if r["noise"] is None else f"{r['noise']:g}"
        fit = f"{r['fit_s']:.1f}" if r["fit_s"] < 10 else f"{r['fit_s']:.0f}"
        lines.append(f"| {noise} | {r['mapper']} | {r['top1']:.3f} | {r['top5']:.3f} | "
                     f"{r['ideal_top1']:.3f} | {r['ideal_top5']:.3f} | {fit} s |")
    return "\n".join(lines)


def machine() -> str:
    import os

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"),
                    help="params.yaml whose erp, embed, pca and train sections are used")
    ap.add_argument("--noise", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                    help="data.demo.noise levels (default 1 2 4; the demo default is 2)")
    ap.add_argument("--mappers", nargs="+", default=list(MAPPERS), choices=MAPPERS)
    ap.add_argument("--no-noise-free", dest="noise_free", action="store_false",
                    help="skip the rows on noise-free EEG (noise 'none')")
    ap.add_argument("--target", default="image", choices=("image", "concept_mean"))
    ap.add_argument("--image-size", type=int, default=96,
                    help="input size of the random embedding model (default 96 px)")
    ap.add_argument("--demo", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override the simulated dataset's size, e.g. n_train_concepts=100")
    ap.add_argument("--cache-dir", default=str(ROOT / "data" / "benchmark"),
                    help="where the image embeddings are cached")
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    ap.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                    help="compare these layers ('final' or depths in (0, 1)) instead")
    ap.add_argument("--models", nargs="+", default=None,
                    help="with --layers: the backbones (default: embed.model)")
    ap.add_argument("--sizes", nargs="+", default=["fullsize", "demo"],
                    choices=("fullsize", "demo"), help="with --layers: the datasets")
    args = ap.parse_args(argv)
    prefer_sleeping_openmp_threads()  # before torch loads: spinning threads stall a busy machine
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    params = load_params(args.params)
    overrides = dict(FULL_SIZE)
    for item in args.demo:
        k, _, v = item.partition("=")
        overrides[k] = int(v) if v.lstrip("-").isdigit() else float(v)
    demo_params = parse_params({**params.data.demo.model_dump(), **overrides}, DemoParams, "--demo")
    t0 = time.perf_counter()
    if args.layers:
        layers = [FINAL if x == FINAL else float(x) for x in args.layers]
        sizes = {"fullsize": demo_params, "demo": params.data.demo}
        rows, costs = run_layers_benchmark(
            params, {k: sizes[k] for k in args.sizes}, args.models or [params.embed.model],
            layers, [m for m in args.mappers], args.noise[0], args.image_size,
            Path(args.cache_dir))
        print(layers_table(rows, costs))
        print(f"\nMachine: {machine()}; noise {args.noise[0]:g}; total "
              f"{time.perf_counter() - t0:.0f} s")
        if args.out:
            save_json(args.out, {"rows": rows, "costs": costs, "machine": machine(),
                                 "image_size": args.image_size, "neurovision": __version__})
        return 0
    noises = list(args.noise) + ([None] if args.noise_free else [])
    rows = run_benchmark(params, demo_params, noises, args.mappers, args.image_size,
                         Path(args.cache_dir), args.target)
    text = table(rows)
    print(text)
    print(f"\nMachine: {machine()}; total {time.perf_counter() - t0:.0f} s")
    if args.out:
        save_json(args.out, {"rows": rows, "machine": machine(), "target": args.target,
                             "image_size": args.image_size,
                             "demo": demo_params.model_dump(), "neurovision": __version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
