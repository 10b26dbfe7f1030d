"""Turn ``dvc exp show --json`` into a per-subject results table like the papers'.

Rows are subjects (plus mean ± sd and chance), columns are top-1 / top-5 (in %) per
experiment.  Run it in the project::

    neurovision table                       # every experiment dvc exp show lists
    neurovision table --exp ridge-a pls-b   # (or: python -m neurovision.report ...)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SUBJECT_FILE = re.compile(r"(?:^|/)sub-(\d+)/retrieval\.json$")
SUMMARY_FILE = "metrics/retrieval.json"


@dataclass(frozen=True)
class Experiment:
    name: str
    rev: str
    params: dict
    per_subject: dict[int, dict]  # subject -> that subject's metrics
    summary: dict


def _one(entry: dict, name: str | None) -> Experiment | None:
    data = entry.get("data") or {}
    metrics = data.get("metrics") or {}
    per_subject = {}
    for path, content in metrics.items():
        m = SUBJECT_FILE.search(path)
        if m and isinstance(content, dict) and content.get("data"):
            per_subject[int(m.group(1))] = content["data"]
    if not per_subject:
        return None
    summary = (metrics.get(SUMMARY_FILE) or {}).get("data") or {}
    # Only the subjects the experiment ran (stale per-subject files may linger).
    subjects = summary.get("subjects")
    if subjects:
        per_subject = {s: v for s, v in per_subject.items() if s in subjects}
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    rev = entry.get("rev") or data.get("rev") or ""
    return Experiment(name=name or entry.get("name") or rev[:7], rev=rev, params=params,
                      per_subject=per_subject, summary=summary)


def experiments_from_exp_show(rows: list[dict], include_workspace: bool = False
                              ) -> list[Experiment]:
    """Baselines and their experiments, in ``dvc exp show`` order, with metrics."""
    out: list[Experiment] = []
    seen = set()
    for entry in rows:
        candidates = []
        if entry.get("rev") != "workspace" or include_workspace:
            candidates.append((entry, entry.get("name") or entry.get("rev", "")[:7]))
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                candidates.append((rev, rev.get("name")))
        for item, name in candidates:
            exp = _one(item, name)
            if exp is not None and exp.rev not in seen:
                seen.add(exp.rev)
                out.append(exp)
    return out


def _fmt(values: Sequence[float]) -> str:
    arr = 100 * np.asarray(values, dtype=float)
    if len(arr) == 1:
        return f"{arr[0]:.1f}"
    return f"{arr.mean():.1f} ± {arr.std(ddof=1):.1f}"


def markdown_table(experiments: Iterable[Experiment], keys: Sequence[str] = ("top1", "top5")
                   ) -> str:
    """Subjects as rows; ``<experiment> <key>`` columns in percent; mean ± sd and chance."""
    exps = list(experiments)
    if not exps:
        raise ValueError("no experiment with per-subject metrics to tabulate")
    labels = {"top1": "top-1", "top5": "top-5", "top10": "top-10", "two_way": "2-way",
              "four_way": "4-way", "ten_way": "10-way", "fifty_way": "50-way"}
    header = ["subject"]
    for e in exps:
        mapper = (e.params.get("train") or {}).get("mapper")
        protocol = (e.params.get("train") or {}).get("protocol")
        tag = ", ".join(x for x in (mapper, protocol) if x)
        for k in keys:
            header.append(f"{e.name}{f' ({tag})' if tag else ''} {labels.get(k, k)} %")
    subjects = sorted(set().union(*(e.per_subject for e in exps)))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in subjects:
        cells = [f"sub-{s:02d}"]
        for e in exps:
            for k in keys:
                v = e.per_subject.get(s, {}).get(k)
                cells.append("–" if v is None else f"{100 * v:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    mean_row, chance_row = ["mean ± sd"], ["chance"]
    for e in exps:
        for k in keys:
            vals = [m[k] for m in e.per_subject.values() if m.get(k) is not None]
            mean_row.append(_fmt(vals) if vals else "–")
            ch = [m.get(f"{k}_chance") for m in e.per_subject.values()]
            chance_row.append(f"{100 * ch[0]:.1f}" if ch and ch[0] is not None else "–")
    lines.append("| " + " | ".join(mean_row) + " |")
    lines.append("| " + " | ".join(chance_row) + " |")
    return "\n".join(lines) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--input", help="a saved `dvc exp show --json` (default: run it here)")
    ap.add_argument("--exp", nargs="*", help="experiment names or revs to include (default: all)")
    ap.add_argument("--keys", nargs="*", default=["top1", "top5"], help="metrics to show")
    ap.add_argument("--workspace", action="store_true", help="include the workspace")


def run(args: argparse.Namespace) -> int:
    """Print the table for ``args`` (see :func:`add_arguments`); 0 on success."""
    if args.input:
        with open(args.input) as f:
            rows = json.load(f)
    else:
        proc = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        rows = json.loads(proc.stdout)
    exps = experiments_from_exp_show(rows, include_workspace=args.workspace)
    if args.exp:
        wanted = set(args.exp)
        exps = [e for e in exps if e.name in wanted or any(e.rev.startswith(w) for w in wanted)]
    if not exps:
        sys.stderr.write("no experiment with per-subject metrics found\n")
        return 1
    sys.stdout.write(markdown_table(exps, args.keys))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
