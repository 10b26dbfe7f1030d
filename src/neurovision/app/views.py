"""Tables and plot data for the explorer's views (pure: no files, no Streamlit).

Each function takes what a :class:`~neurovision.app.sources.Source` returned and gives the
frame or image the page draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from neurovision.app.sources import Erp
    from neurovision.experiments import Experiment

#: Summary metrics shown in the overview, in this order, with their chance keys.
SUMMARY_KEYS = ("top1", "top5", "top10", "two_way", "four_way", "ten_way", "fifty_way",
                "mean_rank", "median_rank")
#: Metrics of the experiments table.
EXPERIMENT_METRICS = ("top1", "top5", "top10", "mean_rank")


def concept_name(concept: str) -> str:
    """``00001_aardvark`` -> ``aardvark``; ``00042_ice_cream`` -> ``ice cream``."""
    head, _, rest = concept.partition("_")
    return (rest if head.isdigit() and rest else concept).replace("_", " ")


def summary_table(metrics: dict) -> pd.DataFrame:
    """Rows metric / value / sd / 95 % interval (ci_low, ci_high) / chance for the keys of
    :data:`SUMMARY_KEYS` present."""
    rows = []
    for key in SUMMARY_KEYS:
        if metrics.get(key) is None:
            continue
        rows.append({"metric": key, "value": float(metrics[key]),
                     "sd": metrics.get(f"{key}_sd"),
                     "ci_low": metrics.get(f"{key}_ci_low"),
                     "ci_high": metrics.get(f"{key}_ci_high"),
                     "chance": metrics.get(f"{key}_chance")})
    return pd.DataFrame(rows, columns=["metric", "value", "sd", "ci_low", "ci_high", "chance"])


def interval_text(metrics: dict, key: str) -> str | None:
    """``"95 % CI 4.0-15.0 %"`` for an accuracy's interval in ``metrics``; None without one."""
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    if low is None or high is None:
        return None
    return f"95 % CI {100 * low:.1f}-{100 * high:.1f} %"


def interval_note(metrics: dict) -> str | None:
    """What the intervals of ``metrics`` (a subject's or a summary) describe."""
    method = metrics.get("ci_method")
    if not method:
        return None
    if method.startswith("t "):
        return (f"95 % intervals: t interval of the mean over the "
                f"{metrics.get('n_subjects', '?')} subjects (how much the mean could differ "
                f"with other subjects).")
    return (f"95 % intervals: {method} ({metrics.get('n_test', '?')} images: how much the "
            f"score could differ on other test images).")


def subjects_table(per_subject: Sequence[dict]) -> pd.DataFrame:
    """One row per subject: top-1 and top-5 with their 95 % intervals, top-10, mean rank."""
    cols = ["top1", "top1_ci_low", "top1_ci_high", "top5", "top5_ci_low", "top5_ci_high",
            "top10", "mean_rank"]
    return pd.DataFrame([{"subject": f"sub-{m['subject']:02d}", **{k: m.get(k) for k in cols}}
                         for m in per_subject], columns=["subject", *cols])


def concept_ranks(trials_by_subject: dict[int, list[dict]]) -> pd.DataFrame:
    """Per test image: concept and mean rank of the true image over subjects, best first."""
    rows: dict[int, dict] = {}
    for subject, trials in trials_by_subject.items():
        for t in trials:
            row = rows.setdefault(t["trial"], {"trial": t["trial"], "concept": t["concept"]})
            row[f"sub-{subject}"] = int(t["rank"])
    df = pd.DataFrame(list(rows.values()))
    cols = [f"sub-{s}" for s in trials_by_subject]
    df["mean_rank"] = df[cols].mean(axis=1)
    return df.sort_values(["mean_rank", "trial"], kind="stable").reset_index(drop=True)


def butterfly_frame(erp: Erp, trial: int) -> pd.DataFrame:
    """Long table time / channel / amplitude of one trial's ERP."""
    x = erp.data[trial]  # (channel, time)
    return pd.DataFrame({
        "time": np.tile(erp.times, len(erp.ch_names)),
        "channel": np.repeat(list(erp.ch_names), len(erp.times)),
        "amplitude": x.reshape(-1).astype(np.float64),
    })


def peak_latency(erp: Erp, trial: int, window: tuple[float, float] | None) -> float:
    """Time of the largest global field power (sd over channels) inside ``window``."""
    gfp = erp.data[trial].std(axis=0)
    times = erp.times
    mask = np.ones(len(times), bool) if window is None else (
        (times >= window[0] - 1e-9) & (times <= window[1] + 1e-9))
    if not mask.any():
        mask[:] = True
    idx = np.flatnonzero(mask)
    return float(times[idx[np.argmax(gfp[idx])]])


def scalp_frame(values: Sequence[float], positions: np.ndarray, resolution: int = 41
                ) -> pd.DataFrame:
    """A scalp map on a grid: x, y, value, cubic interpolation inside the electrodes' hull.

    ``positions`` are 2-D (nose up, units of head radius); cells outside the convex hull
    of the electrodes are left out (no extrapolation).
    """
    from scipy.interpolate import griddata

    positions = np.asarray(positions, dtype=float)
    values = np.asarray(values, dtype=float)
    if positions.shape != (len(values), 2):
        raise ValueError(f"expected positions of shape ({len(values)}, 2), got "
                         f"{positions.shape}")
    grid = np.linspace(-1.0, 1.0, resolution)
    gx, gy = np.meshgrid(grid, grid)
    z = griddata(positions, values, (gx, gy), method="cubic")
    keep = np.isfinite(z)
    step = float(grid[1] - grid[0])
    return pd.DataFrame({"x": gx[keep] - step / 2, "x2": gx[keep] + step / 2,
                         "y": gy[keep] - step / 2, "y2": gy[keep] + step / 2,
                         "value": z[keep]})


def framed(img: Image.Image, color: str, width: int = 6) -> Image.Image:
    """``img`` with a coloured border (marks the true image among the results)."""
    return ImageOps.expand(img, border=width, fill=color)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


def experiments_table(experiments: Iterable[Experiment],
                      metric_keys: Sequence[str] = EXPERIMENT_METRICS) -> pd.DataFrame:
    """One row per experiment with summary metrics: the params that differ, the metrics.

    ``train.mapper`` is always shown.  Experiments without summary metrics (e.g. a baseline
    whose outputs were never computed) are left out.
    """
    rows = []
    for e in experiments:
        if not e.summary:
            continue
        row = {"experiment": e.name, "rev": e.rev[:7]}
        row.update({f"param:{k}": v for k, v in _flatten(e.params).items()})
        row.update({k: e.summary.get(k) for k in metric_keys})
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["experiment", "rev", *metric_keys])
    df = pd.DataFrame(rows)
    params = [c for c in df.columns if c.startswith("param:")]
    varying = [c for c in params
               if df[c].astype(str).nunique(dropna=False) > 1 or c == "param:train.mapper"]
    df = df[["experiment", "rev", *varying, *metric_keys]]
    return df.rename(columns={c: c[len("param:"):] for c in varying})
