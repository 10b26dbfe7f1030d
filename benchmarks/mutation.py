"""Mutation testing of the modules that carry the project's guarantees (mutmut).

For each module, mutmut changes its code one small edit at a time (a ``<`` becomes ``<=``,
an argument is dropped, a constant changes ...) and runs the module's fast unit tests
against each mutant.  A mutant the tests let through ("survived") is either equivalent to
the original (no test could tell them apart) or a hole in the tests.  Known equivalent
mutants are listed, with the reason, in ``benchmarks/mutation_equivalent.json``; the kill
rate is computed over the others.

    python benchmarks/mutation.py                      # every module below
    python benchmarks/mutation.py retrieval io         # some of them
    python benchmarks/mutation.py --show               # with each survivor's diff

Each module runs in a temporary copy of ``src/`` and ``tests/`` (mutmut writes its mutants
next to the code it mutates), so the checkout is never touched.  A development tool, not
part of CI: about a minute per module on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.json")

#: module (under src/neurovision) -> the fast unit tests that guard it
MODULES: dict[str, list[str]] = {
    "retrieval": ["tests/test_retrieval.py"],
    "io": ["tests/test_io.py"],
    "erp": ["tests/test_erp.py"],
    "evaluation": ["tests/test_evaluation.py"],
    "train_fit": ["tests/test_train_fit.py"],
    "protocol": ["tests/test_protocol.py"],
    "stats": ["tests/test_stats.py"],
    "model_files": ["tests/test_model_files.py"],
    "devices": ["tests/test_devices.py"],
    "cache_dirs": ["tests/test_cache_dirs.py"],
}
#: modules whose tests exist only once the module exists (added by later work)
OPTIONAL: dict[str, list[str]] = {}

RESULT = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>[\w ]+)$")


def _pyproject(module: str, tests: list[str]) -> str:
    return (
        "[tool.mutmut]\n"
        'source_paths = ["src/neurovision"]\n'
        f'only_mutate = ["src/neurovision/{module}.py"]\n'
        # log messages are not behaviour the guarantees rest on
        "do_not_mutate_patterns = ['^\\\\s*log\\\\.']\n"
        'also_copy = ["stages", "params.yaml", "dvc.yaml"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-m", "not integration"]\n'
        "\n[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        'markers = ["integration: dvc runs", "browser: chromium"]\n'
    )


def _diff(workdir: Path, name: str) -> tuple[str, str]:
    """The removed and the added line of a mutant (first of each), whitespace-trimmed."""
    out = subprocess.run([_mutmut(), "show", name], cwd=workdir, capture_output=True,
                         text=True).stdout
    minus = [ln[1:].strip() for ln in out.splitlines()
             if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:].strip() for ln in out.splitlines()
            if ln.startswith("+") and not ln.startswith("+++")]
    return (minus[0] if minus else ""), (plus[0] if plus else "")


def _mutmut() -> str:
    found = Path(sys.executable).with_name("mutmut")
    return str(found) if found.exists() else "mutmut"


def _function(name: str) -> str:
    """``neurovision.io.x_load_npy__mutmut_3`` -> ``load_npy`` (classes: ``C.m``)."""
    tail = name.split("__mutmut_")[0].rsplit(".", 1)[-1]
    return re.sub(r"^x[ǁ_]", "", tail).replace("ǁ", ".")


def run_module(module: str, tests: list[str], equivalent: list[dict]) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"mutation-{module}-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns(
            "__pycache__", "*.egg-info"))
        for folder in ("tests", "stages"):  # tests may run a stage script in-process
            shutil.copytree(ROOT / folder, work / folder,
                            ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("params.yaml", "dvc.yaml"):
            shutil.copy2(ROOT / name, work / name)
        (work / "pyproject.toml").write_text(_pyproject(module, tests))
        env = {**os.environ, "PYTHONPATH": str(work / "src")}
        proc = subprocess.run([_mutmut(), "run"], cwd=work, capture_output=True, text=True,
                              env=env)
        results = subprocess.run([_mutmut(), "results", "--all", "true"], cwd=work,
                                 capture_output=True, text=True, env=env).stdout
        rows = [m.groupdict() for line in results.splitlines() if (m := RESULT.match(line))]
        survivors = []
        for row in rows:
            if row["status"] not in ("survived", "no tests"):
                continue
            removed, added = _diff(work, row["name"])
            why = next((e["why"] for e in equivalent
                        if e["module"] == module and e["function"] == _function(row["name"])
                        and e["removed"] == removed and e["added"] == added), None)
            survivors.append({"name": row["name"], "status": row["status"],
                              "function": _function(row["name"]),
                              "removed": removed, "added": added, "equivalent": why})
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    if not rows or counts.get("not checked") == len(rows):
        raise RuntimeError(f"mutmut produced no results for {module} (exit {proc.returncode}):"
                           f"\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    n_equiv = sum(s["equivalent"] is not None for s in survivors)
    # a timeout is not a kill: a test that hangs on a mutant has not shown it wrong (and a
    # hang can come from state shared between forked workers, hiding other results)
    killed = counts.get("killed", 0)
    judged = len(rows) - n_equiv - counts.get("skipped", 0)
    return {"module": module, "tests": tests, "mutants": len(rows), "counts": counts,
            "killed": killed, "timeout": counts.get("timeout", 0), "survived": len(survivors),
            "equivalent": n_equiv,
            "kill_rate": killed / judged if judged else 1.0, "survivors": survivors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"default: {' '.join(MODULES)}")
    ap.add_argument("--show", action="store_true", help="print each survivor's edit")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    known = {**MODULES, **{m: t for m, t in OPTIONAL.items() if (ROOT / t[0]).exists()}}
    wanted = args.modules or list(known)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        ap.error(f"unknown module(s) {unknown}; expected some of {sorted(known)}")
    equivalent = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else []
    results = []
    for module in wanted:
        print(f"mutating src/neurovision/{module}.py against {' '.join(known[module])} ...",
              file=sys.stderr, flush=True)
        results.append(run_module(module, known[module], equivalent))
    print("\n| module | mutants | killed | timed out | survived (or no test reaches them) | "
          "of which equivalent | kill rate of the non-equivalent |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['module']} | {r['mutants']} | {r['killed']} | {r['timeout']} | "
              f"{r['survived']} | {r['equivalent']} | {100 * r['kill_rate']:.1f} % |")
    for r in results:
        for s in r["survivors"]:
            if s["equivalent"] is None or args.show:
                tag = (f"equivalent: {s['equivalent']}" if s["equivalent"] else
                       "NOT KILLED" if s["status"] == "survived" else "NO TEST REACHES IT")
                print(f"\n{r['module']}.{s['function']} ({tag})\n  - {s['removed']}\n"
                      f"  + {s['added']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
