"""Benchmark: what ``dvc repro`` costs when there is nothing to do, and after a mapper tweak.

On a project whose pipeline is already reproduced (benchmarks/fullsize.py leaves one
behind, on full-size data):

1. ``dvc repro`` with nothing to do, ``--repeats`` times;
2. ``train.ridge.alpha`` doubled in params.yaml, then ``dvc repro``: which stages ran,
   and how long it took;
3. the old alpha back, then ``dvc repro`` (DVC's run cache restores the earlier outputs).

    python benchmarks/dvc_overhead.py --project /tmp/nv-fullsize/project

It edits the project's params.yaml (and leaves it as it found it); run it on a copy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml


def dvc_env(project: Path, shim_dir: Path | None = None, log: Path | None = None) -> dict:
    """The environment the stages run in: this interpreter's tools first on PATH, the
    project copy's own library on PYTHONPATH (optionally a measuring ``python`` shim)."""
    path = [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    if shim_dir is not None:
        path.insert(0, str(shim_dir))
    env = {**os.environ, "PATH": os.pathsep.join(path), "PYTHONPATH": str(project / "src"),
           "DVC_NO_ANALYTICS": "1"}
    if log is not None:
        env["NV_BENCH_LOG"] = str(log)
    return env


def repro(project: Path, env: dict) -> tuple[float, list[str], str]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=project,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"dvc repro failed in {project} ({proc.returncode}):\n{out[-3000:]}")
    ran = re.findall(r"Running stage '([^']+)'", out)
    return wall, ran, out


def overhead(project: Path, env: dict, repeats: int = 3) -> dict:
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    if params["train"]["mapper"] != "ridge":
        raise SystemExit(f"{params_path}: train.mapper is {params['train']['mapper']!r}; this "
                         f"benchmark changes train.ridge.alpha, so it needs 'ridge'")
    first, ran, _ = repro(project, env)
    if ran:
        raise SystemExit(f"the pipeline in {project} was not up to date: {ran} ran; run "
                         f"dvc repro there first")
    noop = [first] + [repro(project, env)[0] for _ in range(repeats - 1)]
    alpha = float(params["train"]["ridge"]["alpha"])
    params["train"]["ridge"]["alpha"] = alpha * 2
    try:
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        changed, changed_ran, _ = repro(project, env)
    finally:
        params_path.write_text(original)
    back, back_ran, back_out = repro(project, env)
    back_cached = re.findall(r"Stage '([^']+)' is cached", back_out)
    return {"noop_s": noop, "noop_median_s": statistics.median(noop),
            "alpha": [alpha, alpha * 2],
            "alpha_change_s": changed, "alpha_change_ran": changed_ran,
            "alpha_back_s": back, "alpha_back_ran": back_ran,
            "alpha_back_from_run_cache": back_cached,
            "load_1min": round(os.getloadavg()[0], 2)}


def print_overhead(r: dict) -> None:
    print("\n| dvc repro | wall s | stages that ran |")
    print("| --- | ---: | --- |")
    print(f"| nothing to do (median of {len(r['noop_s'])}: "
          f"{', '.join(f'{x:.1f}' for x in r['noop_s'])}) | {r['noop_median_s']:.1f} | none |")
    print(f"| train.ridge.alpha {r['alpha'][0]:g} -> {r['alpha'][1]:g} | "
          f"{r['alpha_change_s']:.1f} | {', '.join(r['alpha_change_ran']) or 'none'} |")
    cached = r["alpha_back_from_run_cache"]
    how = f"; restored from DVC's run cache: {', '.join(cached)}" if cached else ""
    print(f"| alpha back to {r['alpha'][0]:g} | {r['alpha_back_s']:.1f} | "
          f"{', '.join(r['alpha_back_ran']) or 'none'}{how} |")
    print(f"\n1-min load average at the end: {r['load_1min']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", required=True, help="a reproduced project copy")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    project = Path(args.project).resolve()
    r = overhead(project, dvc_env(project), args.repeats)
    print_overhead(r)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
