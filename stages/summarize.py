"""DVC stage summarize: mean and sd across subjects of every per-subject metric.

metrics/retrieval.json keeps the single-subject keys (top1, top5, ...), now the means over
data.subjects, and adds <key>_sd, n_subjects and subjects.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from neurovision.io import atomic_path, load_json, save_json
from neurovision.stage import params_from, parser, run

NON_METRIC = {"subject", "protocol", "mapper"}


def summarize(per_subject: list[dict]) -> dict:
    """Mean (under the original key) and sample sd (``<key>_sd``) of numeric metrics."""
    first = per_subject[0]
    out: dict = {k: first[k] for k in ("protocol", "mapper") if k in first}
    out["n_subjects"] = len(per_subject)
    out["subjects"] = [m["subject"] for m in per_subject]
    for key, value in first.items():
        if key in NON_METRIC:
            continue
        values = [m.get(key) for m in per_subject]
        if value is None or any(v is None for v in values):
            out[key] = None
            continue
        arr = np.asarray(values, dtype=float)
        if key == "n_test":
            out[key] = int(arr.max())
            continue
        out[key] = float(arr.mean())
        if not key.endswith("_chance"):
            out[f"{key}_sd"] = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return out


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subjects-dir", required=True, help="metrics/subjects")
    ap.add_argument("--out", required=True, help="summary JSON")
    ap.add_argument("--table", required=True, help="per-subject CSV (top-1 bars)")
    args = ap.parse_args(argv)
    subjects = params_from(args).data.subjects
    per_subject = [load_json(Path(args.subjects_dir) / f"sub-{s}" / "retrieval.json")
                   for s in subjects]
    save_json(args.out, summarize(per_subject))
    with atomic_path(args.table) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject", "top1", "top5", "top1_chance"])
            for m in per_subject:
                w.writerow([f"sub-{m['subject']:02d}", m["top1"], m["top5"], m["top1_chance"]])


if __name__ == "__main__":
    sys.exit(run(main))
