"""The per-subject results table (`neurovision table`) from `dvc exp show --json`."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from neurovision import report
from neurovision.experiments import parse_exp_show
from neurovision.report import markdown_table, select


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
                                    "workspace": False, **kw})


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
