"""Turn ``dvc exp show --json`` into a per-subject results table like the papers'.

Rows are subjects (plus mean ± sd and chance), columns are top-1 / top-5 (in %) per
experiment.  Run it in the project::

    neurovision table                       # every experiment dvc exp show lists
    neurovision table --exp ridge-a pls-b   # (or: python -m neurovision.report ...)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from neurovision.errors import NeurovisionError
from neurovision.experiments import Experiment, exp_show, parse_exp_show
from neurovision.io import load_json
from neurovision.retrieval import chance_levels


def select(experiments: Iterable[Experiment], names: Sequence[str] | None = None,
           include_workspace: bool = False) -> list[Experiment]:
    """The experiments to tabulate: those with per-subject metrics, the workspace only if
    asked, and only those named in ``names`` (experiment names or rev prefixes) if given."""
    out = [e for e in experiments if e.per_subject and (include_workspace or not e.is_workspace)]
    if names:
        wanted = set(names)
        out = [e for e in out if e.name in wanted or any(e.rev.startswith(w) for w in wanted)]
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
            n_test = [m.get("n_test") for m in e.per_subject.values() if m.get("n_test")]
            ch = chance_levels(int(n_test[0])).get(f"{k}_chance") if n_test else None
            chance_row.append("–" if ch is None else f"{100 * ch:.1f}")
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
    try:
        if args.input:
            exps = parse_exp_show(load_json(args.input), source=args.input)
        else:
            exps = parse_exp_show(exp_show(Path.cwd()))
    except NeurovisionError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    exps = select(exps, args.exp, include_workspace=args.workspace)
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
