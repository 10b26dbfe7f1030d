"""Results tables in Markdown: per subject from ``dvc exp show --json``, and two runs compared.

``neurovision table``: rows are subjects (plus mean ± sd and chance), columns are top-1 /
top-5 (in %) per experiment; experiments that differ only in ``train.seed`` share one
column set, each cell the mean ± sd over seeds.  ``neurovision compare A B``: paired tests
of two runs on the same test trials, per subject and across subjects.  Run them in the
project::

    neurovision table                       # every experiment dvc exp show lists
    neurovision table --exp ridge-a pls-b   # (or: python -m neurovision.report ...)
    neurovision compare ridge-a pls-b       # experiment names, git revisions or workspace
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from neurovision.errors import DataError, NeurovisionError
from neurovision.experiments import Experiment, Results, exp_show, load_results, parse_exp_show
from neurovision.io import load_json
from neurovision.retrieval import chance_levels
from neurovision.stats import (
    CONFIDENCE,
    mcnemar_exact,
    percentile_bootstrap,
    sign_test,
    t_interval,
)

#: The parameter whose values a seed group spans.
SEED_PARAM = ("train", "seed")
LABELS = {"top1": "top-1", "top5": "top-5", "top10": "top-10", "two_way": "2-way",
          "four_way": "4-way", "ten_way": "10-way", "fifty_way": "50-way"}


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


def _without_seed(params: dict) -> str:
    train = {k: v for k, v in (params.get("train") or {}).items() if k != SEED_PARAM[1]}
    return json.dumps({**params, "train": train}, sort_keys=True, default=str)


def seed_groups(experiments: Iterable[Experiment]) -> list[list[Experiment]]:
    """The experiments in groups whose params differ only in ``train.seed``, each seed
    once, in the order of each group's first experiment.

    An experiment with the params and the per-subject results of one already in a group
    (a baseline and the experiment that reran it) counts once, as the first.  One with
    the same params but other results (the code changed in between) starts a group of
    its own.  Experiments without params stay alone.
    """
    groups: list[list[Experiment]] = []
    keys: list[str] = []
    for i, e in enumerate(experiments):
        key = _without_seed(e.params) if e.params else f"#{i}"
        for group, k in zip(groups, keys):
            if k != key:
                continue
            same = [g for g in group if _seed(g) == _seed(e)]
            if not same:
                group.append(e)
                break
            if same[0].per_subject == e.per_subject:
                break  # a duplicate
        else:
            groups.append([e])
            keys.append(key)
    return groups


def _seed(e: Experiment):
    return (e.params.get("train") or {}).get(SEED_PARAM[1])


def markdown_table(experiments: Iterable[Experiment], keys: Sequence[str] = ("top1", "top5"),
                   group_seeds: bool = True) -> str:
    """Subjects as rows; ``<experiment> <key>`` columns in percent; mean ± sd and chance.

    With ``group_seeds``, experiments that differ only in ``train.seed`` share one column
    per key (named after the group's first experiment, with the seeds): each subject's
    cell is the mean ± sd over seeds, the mean row the mean over subjects ± its sd over
    seeds (the field's convention for several seeds).
    """
    exps = list(experiments)
    if not exps:
        raise ValueError("no experiment with per-subject metrics to tabulate")
    groups = seed_groups(exps) if group_seeds else [[e] for e in exps]
    header = ["subject"]
    for group in groups:
        e = group[0]
        mapper = (e.params.get("train") or {}).get("mapper")
        protocol = (e.params.get("train") or {}).get("protocol")
        tag = ", ".join(x for x in (mapper, protocol) if x)
        if len(group) > 1:
            seeds = sorted((_seed(g) for g in group), key=lambda x: (str(type(x)), x))
            tag += f"; seeds {', '.join(str(x) for x in seeds)}"
        for k in keys:
            header.append(f"{e.name}{f' ({tag})' if tag else ''} {LABELS.get(k, k)} %")
    subjects = sorted(set().union(*(e.per_subject for e in exps)))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in subjects:
        cells = [f"sub-{s:02d}"]
        for group in groups:
            for k in keys:
                vals = [v for e in group
                        if (v := e.per_subject.get(s, {}).get(k)) is not None]
                cells.append(_fmt(vals) if vals else "–")
        lines.append("| " + " | ".join(cells) + " |")
    mean_row, chance_row = ["mean ± sd"], ["chance"]
    for group in groups:
        for k in keys:
            per_run = [[m[k] for m in e.per_subject.values() if m.get(k) is not None]
                       for e in group]
            if len(group) == 1:
                mean_row.append(_fmt(per_run[0]) if per_run[0] else "–")
            else:  # the mean over subjects of each seed, then mean ± sd over seeds
                means = [float(np.mean(v)) for v in per_run if v]
                mean_row.append(_fmt(means) if means else "–")
            n_test = [m.get("n_test") for e in group for m in e.per_subject.values()
                      if m.get("n_test")]
            ch = chance_levels(int(n_test[0])).get(f"{k}_chance") if n_test else None
            chance_row.append("–" if ch is None else f"{100 * ch:.1f}")
    lines.append("| " + " | ".join(mean_row) + " |")
    lines.append("| " + " | ".join(chance_row) + " |")
    if any(len(g) > 1 for g in groups):
        lines += ["", "Columns with several seeds: each subject's cell is the mean ± sd over "
                      "seeds; the mean row is the mean over subjects, ± its sd over seeds."]
    return "\n".join(lines) + "\n"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--input", help="a saved `dvc exp show --json` (default: run it here)")
    ap.add_argument("--exp", nargs="*", help="experiment names or revs to include (default: all)")
    ap.add_argument("--keys", nargs="*", default=["top1", "top5"], help="metrics to show")
    ap.add_argument("--workspace", action="store_true", help="include the workspace")
    ap.add_argument("--each-seed", action="store_true",
                    help="one column per experiment (default: experiments that differ only "
                         "in train.seed share one, mean ± sd over seeds)")


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
    sys.stdout.write(markdown_table(exps, args.keys, group_seeds=not args.each_seed))
    return 0


# --------------------------------------------------------------------------------------
# Two runs compared on the same test trials


def _p(p: float) -> str:
    return f"{p:.3g}"


def _points(d: float, interval: tuple[float, float] | None) -> str:
    ci = "" if interval is None else f" [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"
    return f"{100 * d:+.1f}{ci}"


def _paired_trials(a: Results, b: Results, s: int) -> tuple[np.ndarray, np.ndarray]:
    ta, tb = a.trials[s], b.trials[s]
    files_a, files_b = ([t.get("file") for t in x] for x in (ta, tb))
    if files_a != files_b:
        raise DataError(f"sub-{s}: {a.ref} and {b.ref} rank different test trials "
                        f"({len(ta)} and {len(tb)} trials, or another order); a paired "
                        f"comparison needs the same ones")
    return (np.array([t["rank"] for t in ta], dtype=float),
            np.array([t["rank"] for t in tb], dtype=float))


def compare_table(a: Results, b: Results, *, k: int = 1, resamples: int = 10000,
                  seed: int = 0) -> str:
    """Markdown: ``b`` against ``a`` per subject and across subjects, on the same trials.

    Per subject, from each trial's rank of the true image (``trials.json``): both top-k
    scores (share of trials with rank <= k), the difference b - a in points with a paired
    percentile-bootstrap 95 % interval over test images, McNemar's exact p on the paired
    hits, both mean ranks and the exact sign test on the trials whose ranks differ.  Across
    subjects: the means, the mean difference with its t interval, and exact sign tests on
    the per-subject scores (how many subjects improved).
    """
    subjects = sorted(set(a.trials) & set(b.trials))
    if not subjects:
        raise DataError(f"{a.ref} (subjects {sorted(a.trials)}) and {b.ref} (subjects "
                        f"{sorted(b.trials)}) have no subject in common")
    top = f"top-{k}"
    header = ["subject", f"{a.ref} {top} %", f"{b.ref} {top} %",
              f"{b.ref} - {a.ref}, points (95 % CI)", "McNemar p", f"{a.ref} mean rank",
              f"{b.ref} mean rank", f"trials ranked better: {b.ref} / {a.ref}",
              "sign test p"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    score_a, score_b, rank_a, rank_b = [], [], [], []
    for s in subjects:
        ra, rb = _paired_trials(a, b, s)
        ha, hb = ra <= k, rb <= k
        diff = hb.astype(float) - ha.astype(float)
        low, high = percentile_bootstrap(diff, resamples=resamples, seed=seed)
        better_b, better_a = int((rb < ra).sum()), int((ra < rb).sum())
        score_a.append(float(ha.mean()))
        score_b.append(float(hb.mean()))
        rank_a.append(float(ra.mean()))
        rank_b.append(float(rb.mean()))
        lines.append("| " + " | ".join([
            f"sub-{s:02d}", f"{100 * score_a[-1]:.1f}", f"{100 * score_b[-1]:.1f}",
            _points(float(diff.mean()), (float(low), float(high))),
            _p(mcnemar_exact(ha, hb)), f"{rank_a[-1]:.1f}", f"{rank_b[-1]:.1f}",
            f"{better_b} / {better_a}", _p(sign_test(better_b, better_a))]) + " |")
    diffs = np.array(score_b) - np.array(score_a)
    up, down = int((diffs > 0).sum()), int((diffs < 0).sum())
    lower_b = int((np.array(rank_b) < np.array(rank_a)).sum())
    lower_a = int((np.array(rank_a) < np.array(rank_b)).sum())
    n = len(subjects)
    if n > 1:
        interval = t_interval(diffs, bounds=(-1.0, 1.0))
        lines.append("| " + " | ".join([
            f"mean ({n} subjects)", f"{100 * np.mean(score_a):.1f}",
            f"{100 * np.mean(score_b):.1f}", _points(float(diffs.mean()), interval),
            _p(sign_test(up, down)), f"{np.mean(rank_a):.1f}", f"{np.mean(rank_b):.1f}",
            f"{lower_b} / {lower_a} subjects", _p(sign_test(lower_b, lower_a))]) + " |")
    only = sorted(set(a.trials) ^ set(b.trials))
    among = "ranked first" if k == 1 else f"among the {k} best"
    notes = [
        f"{b.ref} vs {a.ref}: {top} higher in {up} of {n} subject(s), lower in {down}, "
        f"equal in {n - up - down}; exact sign test over subjects p = "
        f"{_p(sign_test(up, down))}.",
        f"Per subject: {top} = share of test trials whose true image is {among} (its rank "
        f"in trials.json; the metrics' {top} is the same unless cosine scores tie). The "
        f"difference's {100 * CONFIDENCE:.0f} % interval: paired percentile bootstrap over "
        f"test images ({resamples} resamples, seed {seed}). McNemar: exact, on the trials "
        f"that only one of the two got right. Sign test: exact, on the trials whose "
        f"true-image rank differs.",
    ]
    if n > 1:
        notes.append(f"Mean row: means over subjects; the difference's interval is t with "
                     f"{n - 1} degree(s) of freedom; its p values are exact sign tests on the "
                     f"per-subject {top} and mean ranks.")
    if only:
        notes.append(f"Subjects in only one of the two (left out): {only}.")
    return "\n".join(lines) + "\n" + "".join(f"\n{note}\n" for note in notes)


def add_compare_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("a", help="experiment name, git revision or 'workspace'")
    ap.add_argument("b", help="experiment name, git revision or 'workspace'")
    ap.add_argument("--root", default=".", help="the project (default: here)")
    ap.add_argument("--k", type=int, default=1, help="compare top-K hits (default: 1)")
    ap.add_argument("--resamples", type=int, default=10000,
                    help="bootstrap resamples of the test images (default: 10000)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")


def run_compare(args: argparse.Namespace) -> int:
    """Print :func:`compare_table` for ``args`` (see :func:`add_compare_arguments`)."""
    if args.k < 1 or args.resamples < 100:
        sys.stderr.write(f"compare: expected --k >= 1 and --resamples >= 100, got --k "
                         f"{args.k}, --resamples {args.resamples}\n")
        return 1
    try:
        a, b = (load_results(ref, args.root) for ref in (args.a, args.b))
        table = compare_table(a, b, k=args.k, resamples=args.resamples, seed=args.seed)
    except NeurovisionError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
