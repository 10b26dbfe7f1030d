"""The project's DVC experiments, read once for the results table and the explorer.

:func:`exp_show` runs ``dvc exp show --json`` in a project; :func:`parse_exp_show` turns its
output into :class:`Experiment` records (name, rev, params, per-subject and summary
metrics).  ``dvc.api.exp_show`` is not used: it returns DVC's flattened display table, whose
column names depend on which other experiments exist and whose values are re-parsed from
their printed text, whereas ``--json`` keeps each metrics file's own values.

``dvc exp show`` holds only the declared metrics files.  :func:`load_results` reads an
experiment's, a revision's or the workspace's per-trial files (``trials.json``, cached DVC
outputs) through DVC's file system, without running anything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurovision.errors import DataError, NeurovisionError

#: Metrics files, as ``dvc exp show`` names them (the outputs of summarize and evaluate@N).
SUMMARY_FILE = "metrics/retrieval.json"
SUBJECT_FILE = re.compile(r"(?:^|/)sub-(\d+)/retrieval\.json$")
#: The rev (and name) ``dvc exp show`` gives the working tree.
WORKSPACE = "workspace"
#: What :func:`load_results` reads (the outputs of summarize and evaluate@N).
DETAILS_FILE = "metrics/details.json"
SUBJECT_DETAILS = "metrics/subjects/sub-{subject}/details.json"
SUBJECT_TRIALS = "metrics/subjects/sub-{subject}/trials.json"


@dataclass(frozen=True)
class Experiment:
    """One row of ``dvc exp show``: the workspace, a baseline commit or an experiment."""

    name: str
    rev: str
    params: dict  # params.yaml, nested as in the file
    per_subject: dict[int, dict]  # subject -> that subject's metrics
    summary: dict  # metrics/retrieval.json (empty if absent)

    @property
    def is_workspace(self) -> bool:
        return self.rev == WORKSPACE


def _data(d: Any, *keys: str) -> dict:
    """``d[k1]["data"]``-style lookup that gives ``{}`` wherever something is missing."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d if isinstance(d, dict) else {}


def _record(entry: dict, name: str) -> Experiment | None:
    data = _data(entry, "data")
    metrics = _data(data, "metrics")
    summary = _data(metrics, SUMMARY_FILE, "data")
    per_subject = {}
    for path, content in metrics.items():
        m = SUBJECT_FILE.search(path)
        if m and _data(content, "data"):
            per_subject[int(m.group(1))] = content["data"]
    # Only the subjects the experiment ran, where the summary lists them (DVC itself
    # leaves lists out of exp show and shows only the metrics files dvc.yaml declares;
    # a saved or edited JSON may carry stale per-subject files).
    subjects = summary.get("subjects")
    if subjects:
        per_subject = {s: v for s, v in per_subject.items() if s in subjects}
    if not summary and not per_subject:
        return None
    rev = entry.get("rev") or data.get("rev") or ""
    return Experiment(name=name or rev[:7], rev=rev,
                      params=_data(data, "params", "params.yaml", "data"),
                      per_subject=per_subject, summary=summary)


def parse_exp_show(rows: Any, source: str = "dvc exp show --json") -> list[Experiment]:
    """Every row of ``dvc exp show --json`` with metrics, in its order, each rev once.

    The workspace is named ``workspace``, a baseline by its branch or short rev, an
    experiment by its name.  ``source`` names the input in errors.
    """
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{source}: expected a list of revisions (the output of "
                        f"`dvc exp show --json`), got {type(rows).__name__}")
    out: list[Experiment] = []
    seen: set[str] = set()
    for entry in rows:
        rev = entry.get("rev") or ""
        candidates = [(entry, WORKSPACE if rev == WORKSPACE else entry.get("name"))]
        for group in entry.get("experiments") or []:
            for item in (group.get("revs") or []) if isinstance(group, dict) else []:
                if isinstance(item, dict):
                    candidates.append((item, item.get("name") or group.get("name")))
        for item, name in candidates:
            exp = _record(item, name)
            if exp is not None and exp.rev not in seen:
                seen.add(exp.rev)
                out.append(exp)
    return out


def exp_show(root: str | Path = ".", timeout: float = 120.0) -> list:
    """The output of ``dvc exp show --json`` run in ``root``.

    The ``dvc`` next to this Python is preferred (a virtual environment need not be on
    PATH); any failure becomes a :class:`NeurovisionError` with DVC's message.
    """
    dvc = Path(sys.executable).parent / "dvc"
    cmd = [str(dvc) if dvc.exists() else "dvc", "exp", "show", "--json"]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NeurovisionError(f"dvc exp show failed in {root}: {exc}") from exc
    if proc.returncode != 0:
        raise NeurovisionError(f"dvc exp show failed in {root}: "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise NeurovisionError(f"dvc exp show in {root} printed no JSON: {exc}") from exc


def load_experiments(root: str | Path = ".", timeout: float = 120.0) -> list[Experiment]:
    """The experiments ``dvc exp show`` lists in ``root``, as :class:`Experiment` records."""
    return parse_exp_show(exp_show(root, timeout))


@dataclass(frozen=True)
class Results:
    """One run's per-subject results as its files hold them."""

    ref: str  # as asked for: an experiment name, a git revision or ``workspace``
    summary: dict  # metrics/details.json
    metrics: dict[int, dict]  # subject -> its details.json
    trials: dict[int, list[dict]]  # subject -> its trials.json


def load_results(ref: str, root: str | Path = ".") -> Results:
    """The summary and every subject's metrics and trials of ``ref`` in the project at
    ``root``: ``workspace`` (the files in ``root``), an experiment name or any git revision
    (read through ``dvc.api.DVCFileSystem``, from the git objects and DVC's cache)."""
    root = Path(root)
    if ref == WORKSPACE:
        def read(path: str) -> str:
            return (root / path).read_text()
        where = f"{root}"
    else:
        from dvc.api import DVCFileSystem
        from dvc.exceptions import DvcException
        from dvc.scm import RevError, SCMError

        fs = DVCFileSystem(str(root), rev=ref)  # opens the repository on first use

        def read(path: str) -> str:
            try:
                return fs.read_text(path)
            except (RevError, SCMError) as exc:
                raise NeurovisionError(f"{ref}: not an experiment, a git revision or "
                                       f"'{WORKSPACE}' in {root} ({exc})") from exc
            except DvcException as exc:
                raise OSError(str(exc)) from exc
        where = f"{root} at {ref}"

    def load(path: str):
        try:
            text = read(path)
        except OSError as exc:
            raise DataError(f"{path} ({where}): not found or not readable (expected the "
                            f"outputs of a finished run: {exc})") from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise DataError(f"{path} ({where}): expected JSON: {exc}") from exc

    summary = load(DETAILS_FILE)
    subjects = summary.get("subjects") if isinstance(summary, dict) else None
    if not subjects or not all(isinstance(s, int) for s in subjects):
        raise DataError(f"{DETAILS_FILE} ({where}): expected a 'subjects' list, got "
                        f"{subjects!r}")
    metrics = {s: load(SUBJECT_DETAILS.format(subject=s)) for s in subjects}
    trials = {s: load(SUBJECT_TRIALS.format(subject=s)) for s in subjects}
    for s, t in trials.items():
        if not isinstance(t, list) or not all(isinstance(x, dict) and "rank" in x for x in t):
            raise DataError(f"{SUBJECT_TRIALS.format(subject=s)} ({where}): expected a list "
                            f"of trials with a 'rank' each")
    return Results(ref=ref, summary=summary, metrics=metrics, trials=trials)
