"""Intra- and inter-subject training sets: who trains on whom."""

from neurovision.report import experiments_from_exp_show, markdown_table


def _exp_show_row(name, rev, mapper, per_subject):
    metrics = {f"metrics/subjects/sub-{s}/retrieval.json": {"data": {"top1": t1, "top5": t5,
                                                                      "top1_chance": 0.005,
                                                                      "top5_chance": 0.025}}
               for s, (t1, t5) in per_subject.items()}
    metrics["metrics/retrieval.json"] = {"data": {"subjects": sorted(per_subject)}}
    return {"rev": rev, "name": name,
            "data": {"rev": rev, "metrics": metrics,
                     "params": {"params.yaml": {"data": {"train": {"mapper": mapper,
                                                                    "protocol": "intra"}}}}}}


def test_results_table_from_exp_show():
    base = _exp_show_row("main", "a" * 40, "ridge", {1: (0.10, 0.30), 2: (0.20, 0.50)})
    exp = _exp_show_row("exp-x", "b" * 40, "pls", {1: (0.15, 0.35), 2: (0.25, 0.45)})
    base["experiments"] = [{"revs": [exp]}]
    workspace = {**_exp_show_row(None, "workspace", "ridge", {1: (0.9, 0.9)}), "experiments": None}
    exps = experiments_from_exp_show([workspace, base])
    assert [e.name for e in exps] == ["main", "exp-x"]
    table = markdown_table(exps)
    lines = table.strip().splitlines()
    assert lines[0] == ("| subject | main (ridge, intra) top-1 % | main (ridge, intra) top-5 % | "
                        "exp-x (pls, intra) top-1 % | exp-x (pls, intra) top-5 % |")
    assert lines[2] == "| sub-01 | 10.0 | 30.0 | 15.0 | 35.0 |"
    assert lines[3] == "| sub-02 | 20.0 | 50.0 | 25.0 | 45.0 |"
    # mean ± sample sd over subjects
    assert lines[4] == "| mean ± sd | 15.0 ± 7.1 | 40.0 ± 14.1 | 20.0 ± 7.1 | 40.0 ± 7.1 |"
    assert lines[5] == "| chance | 0.5 | 2.5 | 0.5 | 2.5 |"


