"""The per-subject results table (`neurovision table`) from `dvc exp show --json`."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from math import comb
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from neurovision import report
from neurovision.errors import DataError
from neurovision.experiments import Results, parse_exp_show
from neurovision.report import markdown_table, select
from neurovision.stats import percentile_bootstrap


def _exp_show_row(name, rev, mapper, per_subject):
    # what a subject's retrieval.json holds (the headline scores): chance follows from n_test
    metrics = {f"metrics/subjects/sub-{s}/retrieval.json": {"data": {"top1": t1, "top5": t5,
                                                                      "n_test": 200}}
               for s, (t1, t5) in per_subject.items()}
    metrics["metrics/retrieval.json"] = {"data": {"subjects": sorted(per_subject)}}
    return {"rev": rev, "name": name,
            "data": {"rev": rev, "metrics": metrics,
                     "params": {"params.yaml": {"data": {"train": {"mapper": mapper,
                                                                    "protocol": "intra"}}}}}}


def exp_show_rows() -> list[dict]:
    base = _exp_show_row("main", "a" * 40, "ridge", {1: (0.10, 0.30), 2: (0.20, 0.50)})
    exp = _exp_show_row("exp-x", "b" * 40, "pls", {1: (0.15, 0.35), 2: (0.25, 0.45)})
    base["experiments"] = [{"revs": [exp]}]
    workspace = {**_exp_show_row(None, "workspace", "ridge", {1: (0.9, 0.9)}),
                 "experiments": None}
    return [workspace, base]


TABLE = """\
| subject | main (ridge, intra) top-1 % | main (ridge, intra) top-5 % | exp-x (pls, intra) top-1 % | exp-x (pls, intra) top-5 % |
|---|---|---|---|---|
| sub-01 | 10.0 | 30.0 | 15.0 | 35.0 |
| sub-02 | 20.0 | 50.0 | 25.0 | 45.0 |
| mean ± sd | 15.0 ± 7.1 | 40.0 ± 14.1 | 20.0 ± 7.1 | 40.0 ± 7.1 |
| chance | 0.5 | 2.5 | 0.5 | 2.5 |
"""  # noqa: E501


def test_results_table_from_exp_show():
    exps = select(parse_exp_show(exp_show_rows()))
    assert [e.name for e in exps] == ["main", "exp-x"]  # the workspace only on request
    assert markdown_table(exps) == TABLE  # mean ± sample sd over subjects


def test_select_by_name_rev_prefix_and_workspace():
    exps = parse_exp_show(exp_show_rows())
    assert [e.name for e in select(exps, include_workspace=True)] == ["workspace", "main",
                                                                      "exp-x"]
    assert [e.name for e in select(exps, ["exp-x"])] == ["exp-x"]
    assert [e.name for e in select(exps, ["aaaa"])] == ["main"]
    assert select(exps, ["nosuch"]) == []


def test_one_subject_has_no_sd_and_missing_values_are_dashes():
    rows = [_exp_show_row("a", "a" * 40, "ridge", {1: (0.5, 0.75)}),
            _exp_show_row("b", "b" * 40, "pls", {2: (0.25, 0.5)})]
    lines = markdown_table(select(parse_exp_show(rows))).splitlines()
    assert lines[2] == "| sub-01 | 50.0 | 75.0 | – | – |"
    assert lines[3] == "| sub-02 | – | – | 25.0 | 50.0 |"
    assert lines[4] == "| mean ± sd | 50.0 | 75.0 | 25.0 | 50.0 |"
    with pytest.raises(ValueError, match="no experiment"):
        markdown_table([])


def args(**kw) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{"input": None, "exp": None, "keys": ["top1", "top5"],
                                    "workspace": False, "each_seed": False, **kw})


def test_run_prints_the_table_of_a_saved_exp_show(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show_rows()))
    assert report.run(args(input=str(saved))) == 0
    assert capsys.readouterr().out == TABLE
    assert report.run(args(input=str(saved), exp=["exp-x"], keys=["top1"])) == 0
    assert capsys.readouterr().out.splitlines()[0] == "| subject | exp-x (pls, intra) top-1 % |"


def test_run_says_what_went_wrong(tmp_path, capsys, monkeypatch):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show_rows()))
    assert report.run(args(input=str(saved), exp=["nosuch"])) == 1
    assert capsys.readouterr().err == "no experiment with per-subject metrics found\n"
    saved.write_text("{not json")
    assert report.run(args(input=str(saved))) == 1
    assert f"{saved}: expected JSON" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # not a DVC project: dvc exp show fails
    assert report.run(args()) == 1
    assert capsys.readouterr().err.startswith(f"dvc exp show failed in {tmp_path}")


def test_python_dash_m_report(tmp_path):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show_rows()))
    proc = subprocess.run([sys.executable, "-m", "neurovision.report", "--input", str(saved)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == TABLE


# --------------------------------------------------------------------------------------
# Seed groups


def _seeded_row(name, rev, mapper, seed, per_subject, alpha=1.0):
    row = _exp_show_row(name, rev, mapper, per_subject)
    row["data"]["params"]["params.yaml"]["data"]["train"].update(
        seed=seed, ridge={"alpha": alpha})
    return row


def seed_rows() -> list[dict]:
    return [
        _seeded_row("main", "a" * 40, "ridge", 0, {1: (0.10, 0.30), 2: (0.20, 0.40)}),
        _seeded_row("s0", "b" * 40, "ridge", 0, {1: (0.10, 0.30), 2: (0.20, 0.40)}),  # rerun
        _seeded_row("s1", "c" * 40, "ridge", 1, {1: (0.20, 0.50), 2: (0.30, 0.60)}),
        _seeded_row("s2", "d" * 40, "ridge", 2, {1: (0.30, 0.40), 2: (0.10, 0.50)}),
        _seeded_row("alpha", "e" * 40, "ridge", 1, {1: (0.50, 0.50), 2: (0.50, 0.50)},
                    alpha=2.0),
    ]


def test_experiments_that_differ_only_in_the_seed_form_one_group():
    exps = parse_exp_show(seed_rows())
    groups = report.seed_groups(exps)
    assert [[e.name for e in g] for g in groups] == [["main", "s1", "s2"], ["alpha"]]
    changed = parse_exp_show([*seed_rows(), _seeded_row(
        "s0-new-code", "f" * 40, "ridge", 0, {1: (0.9, 0.9), 2: (0.9, 0.9)})])
    assert [[e.name for e in g] for g in report.seed_groups(changed)] == [
        ["main", "s1", "s2"], ["alpha"], ["s0-new-code"]]  # same params, other results


def test_a_seed_group_shows_mean_and_sd_over_seeds():
    exps = parse_exp_show(seed_rows())
    lines = markdown_table(exps).splitlines()
    assert lines[0] == ("| subject | main (ridge, intra; seeds 0, 1, 2) top-1 % | "
                        "main (ridge, intra; seeds 0, 1, 2) top-5 % | "
                        "alpha (ridge, intra) top-1 % | alpha (ridge, intra) top-5 % |")
    sub1 = [np.mean([10, 20, 30]), np.std([10, 20, 30], ddof=1),
            np.mean([30, 50, 40]), np.std([30, 50, 40], ddof=1)]
    assert lines[2] == ("| sub-01 | {:.1f} ± {:.1f} | {:.1f} ± {:.1f} | 50.0 | 50.0 |"
                        .format(*sub1))
    # mean row: each seed's mean over subjects (15, 25, 20 and 35, 55, 45), then over seeds
    assert lines[4] == ("| mean ± sd | 20.0 ± 5.0 | 45.0 ± 10.0 | 50.0 ± 0.0 | 50.0 ± 0.0 |")
    assert lines[-1].startswith("Columns with several seeds: each subject's cell is the mean")
    each = markdown_table(exps, group_seeds=False).splitlines()
    assert len(each[0].split(" | ")) == 1 + 2 * 5 and not each[-1].startswith("Columns")


def test_a_groups_seeds_are_listed_in_order():
    rows = [_seeded_row(f"s{seed}", f"{seed:040d}", "ridge", seed, {1: (0.1, 0.2)})
            for seed in (10, 2, 0)]
    header = markdown_table(parse_exp_show(rows), keys=["top1"]).splitlines()[0]
    assert header == "| subject | s10 (ridge, intra; seeds 0, 2, 10) top-1 % |"


def test_run_groups_seeds_unless_asked_not_to(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(seed_rows()))
    assert report.run(args(input=str(saved))) == 0
    assert "seeds 0, 1, 2" in capsys.readouterr().out
    assert report.run(args(input=str(saved), each_seed=True)) == 0
    assert "seeds" not in capsys.readouterr().out.splitlines()[0]


# --------------------------------------------------------------------------------------
# Two runs compared


def parse_markdown(text: str) -> tuple[list[str], list[list[str]], list[str]]:
    """A printed table's header, its rows (cells) and the paragraphs after it."""
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("|")]
    rest = [line for line in lines if line and not line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert set(cells[1]) == {"---"}
    return cells[0], cells[2:], rest


def brute_p(n_plus: int, n_minus: int) -> float:
    """Exact two-sided binomial p (p = 1/2), summed by hand."""
    n = n_plus + n_minus
    return sum(comb(n, j) for j in range(n + 1) if comb(n, j) <= comb(n, n_plus)) / 2 ** n


def expected_compare_rows(ranks_a: dict[int, list[int]], ranks_b: dict[int, list[int]],
                          k: int, resamples: int = 10000, seed: int = 0) -> list[list[str]]:
    """What `neurovision compare` must print, recomputed by brute force from the ranks."""
    rows, sa, sb, mra, mrb = [], [], [], [], []
    for s in sorted(ranks_a):
        ra, rb = ranks_a[s], ranks_b[s]
        ha, hb = [r <= k for r in ra], [r <= k for r in rb]
        n = len(ra)
        sa.append(sum(ha) / n)
        sb.append(sum(hb) / n)
        mra.append(sum(ra) / n)
        mrb.append(sum(rb) / n)
        n10 = sum(a and not b for a, b in zip(ha, hb))
        n01 = sum(b and not a for a, b in zip(ha, hb))
        better_b = sum(y < x for x, y in zip(ra, rb))
        better_a = sum(x < y for x, y in zip(ra, rb))
        diff = [float(b) - float(a) for a, b in zip(ha, hb)]
        lo, hi = percentile_bootstrap(np.array(diff), resamples=resamples, seed=seed)
        rows.append([f"sub-{s:02d}", f"{100 * sa[-1]:.1f}", f"{100 * sb[-1]:.1f}",
                     f"{100 * sum(diff) / n:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]",
                     f"{brute_p(n01, n10):.3g}", f"{mra[-1]:.1f}", f"{mrb[-1]:.1f}",
                     f"{better_b} / {better_a}", f"{brute_p(better_b, better_a):.3g}"])
    if len(rows) > 1:
        d = np.array(sb) - np.array(sa)
        m, half = d.mean(), sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        ci = (max(m - half, -1), min(m + half, 1)) if half > 0 else (m, m)
        up, down = int((d > 0).sum()), int((d < 0).sum())
        lower_b = sum(y < x for x, y in zip(mra, mrb))
        lower_a = sum(x < y for x, y in zip(mra, mrb))
        rows.append([f"mean ({len(rows)} subjects)", f"{100 * np.mean(sa):.1f}",
                     f"{100 * np.mean(sb):.1f}",
                     f"{100 * m:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]",
                     f"{brute_p(up, down):.3g}", f"{np.mean(mra):.1f}", f"{np.mean(mrb):.1f}",
                     f"{lower_b} / {lower_a} subjects", f"{brute_p(lower_b, lower_a):.3g}"])
    return rows


def results(ref: str, ranks: dict[int, list[int]]) -> Results:
    trials = {s: [{"trial": i, "file": f"img{i}.jpg", "rank": r} for i, r in enumerate(rs)]
              for s, rs in ranks.items()}
    return Results(ref=ref, summary={"subjects": sorted(ranks)},
                   metrics={s: {} for s in ranks}, trials=trials)


_rng = np.random.default_rng(0)
RANKS_A = {s: [int(r) for r in _rng.integers(1, 6, 40)] for s in (1, 2)}
RANKS_B = {1: [max(1, r - int(_rng.integers(0, 2))) for r in RANKS_A[1]],  # B better
           2: [int(r) for r in _rng.integers(1, 6, 40)]}
RANKS_A[3] = RANKS_B[3] = [1, 3, 3, 2, 1, 1, 6, 2] * 5  # the same ranks: a tie everywhere


@pytest.mark.parametrize("k", [1, 2])
def test_compare_table_against_a_brute_force_recomputation(k):
    text = report.compare_table(results("A", RANKS_A), results("B", RANKS_B), k=k,
                                resamples=2000, seed=1)
    header, rows, notes = parse_markdown(text)
    assert header == ["subject", f"A top-{k} %", f"B top-{k} %",
                      "B - A, points (95 % CI)", "McNemar p", "A mean rank", "B mean rank",
                      "trials ranked better: B / A", "sign test p"]
    assert rows == expected_compare_rows(RANKS_A, RANKS_B, k, resamples=2000, seed=1)
    sa = [np.mean(np.array(RANKS_A[s]) <= k) for s in (1, 2, 3)]
    sb = [np.mean(np.array(RANKS_B[s]) <= k) for s in (1, 2, 3)]
    up, down = sum(b > a for a, b in zip(sa, sb)), sum(b < a for a, b in zip(sa, sb))
    assert notes[0] == (f"B vs A: top-{k} higher in {up} of 3 subject(s), lower in {down}, "
                        f"equal in {3 - up - down}; exact sign test over subjects p = "
                        f"{brute_p(up, down):.3g}.")
    assert "2000 resamples, seed 1" in notes[1]


def test_compare_one_subject_has_no_mean_row_and_subjects_must_overlap():
    a, b = results("A", {1: RANKS_A[1], 2: RANKS_A[2]}), results("B", {1: RANKS_B[1]})
    _, rows, notes = parse_markdown(report.compare_table(a, b))
    assert [r[0] for r in rows] == ["sub-01"]
    assert notes[-1] == "Subjects in only one of the two (left out): [2]."
    with pytest.raises(DataError, match=r"A \(subjects \[1, 2\]\) and C \(subjects \[3\]\) "
                                        r"have no subject in common"):
        report.compare_table(a, results("C", {3: [1, 2]}))


def test_compare_refuses_different_test_trials():
    a, b = results("A", {1: [1, 2, 3]}), results("B", {1: [1, 2]})
    with pytest.raises(DataError, match="sub-1: A and B rank different test trials"):
        report.compare_table(a, b)
    b.trials[1][:] = [{**t, "file": f"other{i}.jpg"} for i, t in enumerate(a.trials[1])]
    with pytest.raises(DataError, match="different test trials"):
        report.compare_table(a, b)


def compare_args(**kw) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{"a": "workspace", "b": "workspace", "root": ".", "k": 1,
                                    "resamples": 10000, "seed": 0, **kw})


def test_run_compare_reads_the_workspace_and_reports_errors(tmp_path, capsys):
    write_results(tmp_path, {1: RANKS_A[1], 2: RANKS_A[2]})
    assert report.run_compare(compare_args(root=str(tmp_path))) == 0
    _, rows, _ = parse_markdown(capsys.readouterr().out)
    assert rows[0][3] == "+0.0 [+0.0, +0.0]" and rows[0][4] == "1"
    assert report.run_compare(compare_args(root=str(tmp_path), k=0)) == 1
    assert capsys.readouterr().err == ("compare: expected --k >= 1 and --resamples >= 100, "
                                       "got --k 0, --resamples 10000\n")
    assert report.run_compare(compare_args(root=str(tmp_path / "nothing"))) == 1
    assert "metrics/details.json" in capsys.readouterr().err


def write_results(root: Path, ranks: dict[int, list[int]]) -> Path:
    """A workspace's summary, subject details and trials files for these ranks."""
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "metrics/details.json").write_text(json.dumps({"subjects": sorted(ranks)}))
    for s, rs in ranks.items():
        d = root / f"metrics/subjects/sub-{s}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "details.json").write_text(json.dumps({"subject": s, "top1": 0.0}))
        (d / "trials.json").write_text(json.dumps(
            [{"trial": i, "file": f"img{i}.jpg", "rank": r} for i, r in enumerate(rs)]))
    return root
