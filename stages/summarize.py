"""DVC stage summarize: mean, sd and 95 % t interval across subjects of every metric.

metrics/details.json keeps the single-subject keys (top1, top5, ...), now the means over
data.subjects, and adds <key>_sd, <key>_ci_low / <key>_ci_high, n_subjects and subjects;
metrics/retrieval.json holds its headline scores (what `dvc metrics show` prints).
"""

from __future__ import annotations

import sys
from pathlib import Path

import _workspace  # noqa: F401  (this workspace's src/ first on sys.path)

from neurovision.evaluation import headline, per_subject_rows, summarize
from neurovision.io import load_json, save_csv, save_json
from neurovision.stage import params_from, parser, run


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--subjects-dir", required=True, help="metrics/subjects")
    ap.add_argument("--out", required=True, help="summary JSON: the headline scores")
    ap.add_argument("--details", required=True, help="summary JSON: every metric")
    ap.add_argument("--table", required=True, help="per-subject CSV (top-1 bars)")
    args = ap.parse_args(argv)
    subjects = params_from(args).data.subjects
    per_subject = [load_json(Path(args.subjects_dir) / f"sub-{s}" / "details.json")
                   for s in subjects]
    summary = summarize(per_subject)
    save_json(args.details, summary)
    save_json(args.out, headline(summary))
    save_csv(args.table, ["subject", "top1", "top5", "top1_chance"],
             per_subject_rows(per_subject))


if __name__ == "__main__":
    sys.exit(run(main))
