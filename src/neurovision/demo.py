"""A simulated dataset in exactly the THINGS-EEG2 release formats (see docs/demo.md).

Images are drawn procedurally (a shape with a colour, a stripe texture and exemplar
variation on a grey background).  EEG is simulated from the image content through a known
forward model:

1. visual features ``f`` of each image: its 4 x 4 RGB thumbnail (48 numbers), a crude
   retinotopic map of colour and luminance;
2. a **nonlinear** stage: ``h = relu(W1 f + b1)`` (128 units), then source amplitudes
   ``a = W2 h`` for 12 cortical sources x 3 ERP components (peaks near 100, 170, 250 ms);
3. each source projects to the 17 channels with a topography (a smooth blob over
   occipito-parietal cortex, on the electrode positions of MNE's standard montage,
   :mod:`neurovision.channels`): sources and their polarities are shared by all subjects,
   each subject displaces and tilts them a little;
4. per trial, Gaussian amplitude jitter on every source component (trial-to-trial
   variability) plus background noise with a 1/f power spectrum and spatially correlated
   channels.

All of it is Gaussian given the image, so :func:`ideal_observer` can compute the exact
likelihood of the observed repetition-averaged test EEG under every candidate image: the
ceiling any decoder can reach on the simulated test set.

Everything is deterministic in ``DemoParams.seed`` (and the subject number).
"""

from __future__ import annotations

import colorsys
import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from neurovision.channels import positions
from neurovision.io import atomic_path, save_npy_dict
from neurovision.params import DemoParams

log = logging.getLogger(__name__)

#: The demo stores channels in this deliberately non-alphabetical, non-montage order, so
#: code that selects channels by position instead of by name gives wrong results.
DEMO_CHANNEL_ORDER = ("Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3",
                      "POz", "PO4", "PO8", "P6", "P2")
#: 100 Hz, -0.2 ... 0.79 s, as in the release.
TIMES = np.round((np.arange(100) - 20) / 100.0, 2)

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
_COLOURS = ("red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure", "blue",
            "violet", "magenta", "pink")
N_SOURCES = 12
COMPONENTS = ((0.10, 0.020), (0.17, 0.025), (0.25, 0.040))  # (latency s, width s)
THUMB = 4
N_FEATURES = 3 * THUMB * THUMB
N_HIDDEN = 128
TRIAL_JITTER = 0.3  # sd of per-trial amplitude jitter, in units of the evoked amplitudes
# Scalp geometry, in the frame of neurovision.channels.positions (MNE's topomap projection,
# units of head radius); docs/demo.md explains the values.
SOURCE_X = (-0.58, 0.55)  # source centres are uniform over this box: under the release
SOURCE_Y = (-0.64, -0.29)  # channels, from the occipital (O1-Oz-O2) to the parietal (P*) row
SOURCE_WIDTH = 0.23  # sd of a source's Gaussian topography
SOURCE_JITTER = 0.08  # sd of a subject's displacement of each source centre
SOURCE_TILT = np.deg2rad(20.0)  # sd of a subject's tilt of each source's orientation
NOISE_LENGTH = 0.31  # decay length of the background noise's correlation between electrodes


# --------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class ImageSet:
    """Drawing parameters of every demo image, train rows first, in metadata order."""

    concept: np.ndarray  # (n,) concept index into the joint concept pool
    shape: np.ndarray  # (n,) index into SHAPES
    hue: np.ndarray
    sat: np.ndarray
    val: np.ndarray
    bg: np.ndarray
    freq: np.ndarray  # stripe cycles per image width (0 = plain)
    angle: np.ndarray  # stripe orientation, radians
    scale: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    rotation: np.ndarray  # degrees
    metadata: dict  # the six image_metadata.npy keys
    n_train: int


def make_image_set(p: DemoParams) -> ImageSet:
    """Draw concept and exemplar parameters; train and test concepts are disjoint."""
    rng = np.random.default_rng([p.seed, 0])
    n_concepts = p.n_train_concepts + p.n_test
    c_shape = rng.integers(0, len(SHAPES), n_concepts)
    c_hue = rng.random(n_concepts)
    c_sat = rng.uniform(0.3, 1.0, n_concepts)
    c_val = rng.uniform(0.35, 1.0, n_concepts)
    c_bg = rng.uniform(0.05, 0.95, n_concepts)
    c_freq = np.where(rng.random(n_concepts) < 0.35, 0.0, rng.uniform(1.5, 6.0, n_concepts))
    c_angle = rng.uniform(0, np.pi, n_concepts)
    # Which pool entries are test concepts: a fixed random subset.
    order = rng.permutation(n_concepts)
    train_c = np.sort(order[: p.n_train_concepts])
    test_c = np.sort(order[p.n_train_concepts:])
    words = [f"{_COLOURS[int(c_hue[i] * len(_COLOURS)) % len(_COLOURS)]}_{SHAPES[c_shape[i]]}"
             for i in range(n_concepts)]
    things = [f"{i + 1:05d}_{words[i]}" for i in range(n_concepts)]

    concept = np.concatenate([np.repeat(train_c, p.train_images_per_concept), test_c])
    n = len(concept)
    meta = {
        "train_img_files": [], "train_img_concepts": [], "train_img_concepts_THINGS": [],
        "test_img_files": [], "test_img_concepts": [], "test_img_concepts_THINGS": [],
    }
    for local, c in enumerate(train_c):
        for j in range(p.train_images_per_concept):
            meta["train_img_files"].append(f"{words[c]}_{j + 1:02d}s.jpg")
            meta["train_img_concepts"].append(f"{local + 1:05d}_{words[c]}")
            meta["train_img_concepts_THINGS"].append(things[c])
    for local, c in enumerate(test_c):
        meta["test_img_files"].append(f"{words[c]}_01s.jpg")
        meta["test_img_concepts"].append(f"{local + 1:05d}_{words[c]}")
        meta["test_img_concepts_THINGS"].append(things[c])

    erng = np.random.default_rng([p.seed, 1])
    return ImageSet(
        concept=concept,
        shape=c_shape[concept],
        hue=(c_hue[concept] + erng.normal(0, 0.02, n)) % 1.0,
        sat=np.clip(c_sat[concept] + erng.normal(0, 0.05, n), 0, 1),
        val=np.clip(c_val[concept] + erng.normal(0, 0.05, n), 0, 1),
        bg=np.clip(c_bg[concept] + erng.normal(0, 0.05, n), 0, 1),
        freq=c_freq[concept] * (c_freq[concept] > 0) * erng.uniform(0.9, 1.1, n),
        angle=c_angle[concept] + erng.normal(0, 0.1, n),
        scale=erng.uniform(0.5, 0.9, n),
        dx=erng.uniform(-0.12, 0.12, n),
        dy=erng.uniform(-0.12, 0.12, n),
        rotation=erng.uniform(0, 360, n),
        metadata=meta,
        n_train=len(meta["train_img_files"]),
    )


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple]:
    def ring(n, radii, offset=0.0):
        pts = []
        for i in range(n * len(radii)):
            a = np.deg2rad(rot + offset) + 2 * np.pi * i / (n * len(radii))
            rr = radii[i % len(radii)] * r
            pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
        return pts

    if shape == "square":
        return ring(4, [1.0], 45)
    if shape == "triangle":
        return ring(3, [1.0], 90)
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.6 * r, cy), (cx, cy + r), (cx - 0.6 * r, cy)]
    if shape == "star":
        return ring(5, [1.0, 0.45], 90)
    if shape == "hexagon":
        return ring(6, [1.0])
    if shape == "cross":
        w = 0.35 * r
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
               (-r, w), (-r, -w), (-w, -w)]
        a = np.deg2rad(rot)
        return [(cx + x * np.cos(a) - y * np.sin(a), cy + x * np.sin(a) + y * np.cos(a))
                for x, y in pts]
    raise ValueError(shape)


def render_image(images: ImageSet, i: int, size: int) -> Image.Image:
    """Draw image ``i`` as an RGB PIL image of ``size`` x ``size`` pixels."""
    shape = SHAPES[images.shape[i]]
    cx = size * (0.5 + images.dx[i])
    cy = size * (0.5 + images.dy[i])
    r = size * images.scale[i] / 2
    mask_img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask_img)
    if shape in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if shape == "ring":
            draw.ellipse([cx - 0.55 * r, cy - 0.55 * r, cx + 0.55 * r, cy + 0.55 * r], fill=0)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, images.rotation[i]), fill=255)
    mask = np.asarray(mask_img, dtype=np.float32)[..., None] / 255.0
    rgb = np.array(colorsys.hsv_to_rgb(images.hue[i], images.sat[i], images.val[i]),
                   dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if images.freq[i] > 0:
        a = images.angle[i]
        stripes = np.sin(2 * np.pi * images.freq[i] * (xx * np.cos(a) + yy * np.sin(a)))
        shade = 1.0 - 0.4 * (stripes > 0)
    else:
        shade = np.ones_like(xx)
    obj = rgb[None, None, :] * shade[..., None]
    bg = np.full((size, size, 3), images.bg[i], dtype=np.float32)
    img = bg * (1 - mask) + obj * mask
    return Image.fromarray(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8), "RGB")


def visual_features(images: ImageSet, size: int) -> np.ndarray:
    """(n_images, 48) visual features: a 4 x 4 RGB thumbnail of each drawn image.

    A crude retinotopic map of colour and luminance, the input of the forward model,
    scaled with fixed constants (not fitted to the data)."""
    thumbs = [np.asarray(render_image(images, i, size).resize((THUMB, THUMB), Image.BOX),
                         dtype=np.float64).ravel() for i in range(len(images.concept))]
    return (np.stack(thumbs) / 255.0 - 0.5) / 0.25


def write_images(out_dir: str | Path, p: DemoParams) -> ImageSet:
    """Write ``image_metadata.npy``, ``training_images.zip`` and ``test_images.zip``."""
    out_dir = Path(out_dir)
    images = make_image_set(p)
    meta = images.metadata
    save_npy_dict(out_dir / "image_metadata.npy", meta)
    for split, folder, offset in (("train", "training_images", 0),
                                  ("test", "test_images", images.n_train)):
        files, concepts = meta[f"{split}_img_files"], meta[f"{split}_img_concepts"]
        with (atomic_path(out_dir / f"{folder}.zip") as tmp,
              zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf):
            for j, (fname, concept) in enumerate(zip(files, concepts)):
                buf = io.BytesIO()
                render_image(images, offset + j, p.image_size).save(buf, "JPEG", quality=90)
                # A fixed timestamp keeps the archive byte-identical from run to run.
                info = zipfile.ZipInfo(f"{folder}/{concept}/{fname}", (1980, 1, 1, 0, 0, 0))
                zf.writestr(info, buf.getvalue())
        log.info("demo: wrote %d %s images to %s", len(files), split, out_dir / f"{folder}.zip")
    return images


# --------------------------------------------------------------------------------------
# EEG forward model


def _temporal_filter(n_times: int) -> np.ndarray:
    """Circulant filter L with a 1/f power spectrum; L @ white noise has unit variance."""
    freqs = np.fft.rfftfreq(n_times)
    amp = np.zeros_like(freqs)
    amp[1:] = 1.0 / np.sqrt(freqs[1:])
    amp[0] = amp[1]
    kernel = np.fft.irfft(amp, n=n_times)
    idx = (np.arange(n_times)[:, None] - np.arange(n_times)[None, :]) % n_times
    L = kernel[idx]
    return L / np.sqrt((L ** 2).sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class ForwardModel:
    """The known generative model of one simulated subject's EEG."""

    W1: np.ndarray  # (N_HIDDEN, N_FEATURES)
    b1: np.ndarray  # (N_HIDDEN,)
    W2: np.ndarray  # (N_SOURCES * n_components, N_HIDDEN)
    basis: np.ndarray  # (N_SOURCES * n_components, n_chans, n_times): topography x waveform
    evoked: np.ndarray  # (n_chans, n_times): image-independent ERP
    spatial: np.ndarray  # (n_chans, n_chans) noise mixing M
    temporal: np.ndarray  # (n_times, n_times) noise filter L
    noise_sd: float
    jitter_sd: float

    def mean_response(self, features: np.ndarray) -> np.ndarray:
        """Noise-free response (n_images, n_chans, n_times)."""
        return self.evoked[None] + np.einsum("nk,kct->nct", self.amplitudes(features),
                                             self.basis)

    def amplitudes(self, features: np.ndarray) -> np.ndarray:
        hidden = np.maximum(features @ self.W1.T + self.b1, 0.0)  # the nonlinear stage
        return hidden @ self.W2.T

    def simulate(self, features: np.ndarray, n_reps: int, rng: np.random.Generator,
                 chunk: int = 512) -> np.ndarray:
        """Single trials (n_images, n_reps, n_chans, n_times) in float64."""
        n = len(features)
        n_basis, n_chans, n_times = self.basis.shape
        out = np.empty((n, n_reps, n_chans, n_times), dtype=np.float64)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            mean = self.mean_response(features[start:stop])
            z = rng.standard_normal((stop - start, n_reps, n_chans, n_times))
            noise = np.matmul(np.matmul(self.spatial, z), self.temporal.T)
            jitter = rng.standard_normal((stop - start, n_reps, n_basis))
            block = mean[:, None] + self.noise_sd * noise
            block += self.jitter_sd * np.einsum("nrk,kct->nrct", jitter, self.basis)
            out[start:stop] = block
        return out

    def averaged_covariance(self, n_reps: int) -> np.ndarray:
        """Covariance of the repetition-averaged EEG, flattened channel-major (c * T + t)."""
        n_basis = self.basis.shape[0]
        B = self.basis.reshape(n_basis, -1).T
        cov = self.noise_sd ** 2 * np.kron(self.spatial @ self.spatial.T,
                                           self.temporal @ self.temporal.T)
        cov += self.jitter_sd ** 2 * (B @ B.T)
        return cov / n_reps


def source_topographies(pos: np.ndarray, centres: np.ndarray, signs: np.ndarray,
                        tilt: np.ndarray, tilt_dir: np.ndarray) -> np.ndarray:
    """(n_chans, n_sources) unit-norm topographies of sources seen on electrodes ``pos``.

    A source pointing straight out of the scalp shows as a Gaussian blob ``g`` around its
    centre (sd ``SOURCE_WIDTH``) with the polarity ``signs``; tilting it by ``tilt`` radians
    towards direction ``tilt_dir`` (an angle in the scalp plane) mixes in the dipolar pattern
    of a tangential source, ``g`` times the distance along that direction in units of the
    width: ``cos(tilt) g + sin(tilt) (u . (x - c) / w) g``.
    """
    rel = pos[:, None, :] - centres[None]  # (n_chans, n_sources, 2)
    g = np.exp(-(rel ** 2).sum(-1) / (2 * SOURCE_WIDTH ** 2))
    u = np.column_stack([np.cos(tilt_dir), np.sin(tilt_dir)])  # (n_sources, 2)
    tangential = (rel * u[None]).sum(-1) / SOURCE_WIDTH * g
    topo = (np.cos(tilt) * g + np.sin(tilt) * tangential) * signs
    return topo / np.linalg.norm(topo, axis=0, keepdims=True)


def forward_model(p: DemoParams, subject: int, ch_names=DEMO_CHANNEL_ORDER,
                  times: np.ndarray = TIMES) -> ForwardModel:
    """The forward model of ``subject``.

    All subjects share the visual code and its cortical sources (position and polarity);
    each subject displaces every source a little, tilts its orientation a little, and has
    its own noise level, so a decoder trained on some subjects partly transfers to others.
    """
    shared = np.random.default_rng([p.seed, 2])
    W1 = shared.normal(0, 1 / np.sqrt(N_FEATURES), (N_HIDDEN, N_FEATURES))
    b1 = shared.normal(0.5, 0.5, N_HIDDEN)
    n_comp = len(COMPONENTS)
    W2 = shared.normal(0, 1.0 / np.sqrt(N_HIDDEN), (N_SOURCES * n_comp, N_HIDDEN))
    centres = np.column_stack([shared.uniform(*SOURCE_X, N_SOURCES),
                               shared.uniform(*SOURCE_Y, N_SOURCES)])
    base_amp = shared.normal(0, 1.0, (N_SOURCES, n_comp))
    signs = np.where(shared.random(N_SOURCES) < 0.5, -1.0, 1.0)

    subj = np.random.default_rng([p.seed, 3, subject])
    centres = centres + subj.normal(0, SOURCE_JITTER, centres.shape)
    tilt_dir = subj.uniform(0, 2 * np.pi, N_SOURCES)
    noise_sd = p.noise * float(subj.uniform(0.8, 1.2))
    tilt = subj.normal(0, SOURCE_TILT, N_SOURCES)
    pos = positions(list(ch_names))
    topo = source_topographies(pos, centres, signs, tilt, tilt_dir)
    waves = np.stack([np.exp(-((times - lat) ** 2) / (2 * w ** 2)) * (-1) ** j
                      for j, (lat, w) in enumerate(COMPONENTS)])  # (n_comp, n_times)
    basis = np.einsum("cs,pt->spct", topo, waves).reshape(N_SOURCES * n_comp, len(ch_names),
                                                           len(times))
    evoked = np.einsum("sp,spct->ct", base_amp, basis.reshape(N_SOURCES, n_comp,
                                                              len(ch_names), len(times)))
    dist = np.sqrt(((pos[:, None, :] - pos[None]) ** 2).sum(-1))
    spatial = np.linalg.cholesky(np.exp(-dist / NOISE_LENGTH) + 1e-6 * np.eye(len(ch_names)))
    return ForwardModel(W1=W1, b1=b1, W2=W2, basis=basis, evoked=evoked, spatial=spatial,
                        temporal=_temporal_filter(len(times)), noise_sd=noise_sd,
                        jitter_sd=TRIAL_JITTER)


def simulate_subject(p: DemoParams, subject: int, images: ImageSet | None = None
                     ) -> tuple[dict, dict, ForwardModel, ImageSet]:
    """The two preprocessed-EEG dicts of ``subject`` (training, test), as in the release."""
    images = make_image_set(p) if images is None else images
    model = forward_model(p, subject)
    feats = visual_features(images, p.image_size)
    out = []
    for k, (rows, reps) in enumerate(((slice(0, images.n_train), p.train_reps),
                                      (slice(images.n_train, None), p.test_reps))):
        rng = np.random.default_rng([p.seed, 4, subject, k])
        data = model.simulate(feats[rows], reps, rng)
        out.append({"preprocessed_eeg_data": data, "ch_names": list(DEMO_CHANNEL_ORDER),
                    "times": TIMES.copy()})
    return out[0], out[1], model, images


def write_subject(out_dir: str | Path, p: DemoParams, subject: int) -> dict:
    """Write the subject's two release files; return the ideal-observer ceiling."""
    out_dir = Path(out_dir)
    train, test, model, images = simulate_subject(p, subject)
    save_npy_dict(out_dir / "preprocessed_eeg_training.npy", train)
    save_npy_dict(out_dir / "preprocessed_eeg_test.npy", test)
    log.info("demo: wrote subject %d EEG: training %s, test %s", subject,
             train["preprocessed_eeg_data"].shape, test["preprocessed_eeg_data"].shape)
    mu = model.mean_response(visual_features(images, p.image_size)[images.n_train:])
    x = test["preprocessed_eeg_data"].mean(axis=1)
    return ideal_observer(x, mu, model.averaged_covariance(p.test_reps))


def ideal_observer(observed: np.ndarray, means: np.ndarray, cov: np.ndarray) -> dict:
    """Identification accuracy of the Bayes-optimal observer.

    ``observed[i]`` is the averaged EEG of test image i, ``means[j]`` the noise-free
    response to candidate j, ``cov`` the exact noise covariance of ``observed``.  With
    Gaussian noise and equal priors, ranking candidates by Mahalanobis distance ranks them
    by likelihood.
    """
    from neurovision.retrieval import retrieval_metrics  # local: keeps demo import light

    n = len(observed)
    # A vanishing ridge keeps the factorisation defined when the covariance is singular
    # (data.demo.noise: 0 leaves only the low-rank trial jitter).
    jitter = 1e-9 * float(np.mean(np.diag(cov))) or 1e-12
    chol = np.linalg.cholesky(cov + jitter * np.eye(len(cov)))
    xw = np.linalg.solve(chol, observed.reshape(n, -1).T).T
    mw = np.linalg.solve(chol, means.reshape(n, -1).T).T
    d2 = (xw ** 2).sum(1)[:, None] - 2 * xw @ mw.T + (mw ** 2).sum(1)[None, :]
    return retrieval_metrics(-d2)
