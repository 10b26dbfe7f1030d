"""Benchmark: a full-size simulated subject through the real pipeline, per-stage cost.

Copies the project into a work folder, sets ``data.demo`` to the size of THINGS-EEG2
(16,540 training images x 4 repetitions, 200 test images x 80, 17 channels x 100 samples;
all 16,740 images embedded) and runs the real ``dvc repro`` there.  Each stage's process is
started through a ``python`` shim placed first on PATH, which records its wall time, CPU
time and peak resident memory (``ru_maxrss`` from ``wait4``: the largest of the stage
process and its children, e.g. decoding workers).  Then ``benchmarks/dvc_overhead.py``
runs on the result (no-op ``dvc repro``; a ``train.ridge.alpha`` change).

    python benchmarks/fullsize.py --workdir /tmp/nv-fullsize      # about 30 min on 2 cores
    python benchmarks/fullsize.py --train-concepts 100 --per-concept 4 --test 50   # a rehearsal

The ``download*`` stages here *simulate* the data (rendering every image, drawing the EEG);
with real data they are network downloads, so their rows say how long the simulator takes,
not the pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from dvc_overhead import dvc_env, overhead, print_overhead  # noqa: E402
from embed_throughput import machine  # noqa: E402

SHIM = '''#!{python}
"""python, measured: runs the real interpreter and appends one JSON line per process."""
import json, os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen([{python!r}] + sys.argv[1:])
try:
    _, status, ru = os.wait4(proc.pid, 0)
except KeyboardInterrupt:
    proc.kill()
    raise
rc = os.waitstatus_to_exitcode(status)
with open(os.environ["NV_BENCH_LOG"], "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "wall_s": time.perf_counter() - t0,
                        "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss,
                        "rc": rc}}) + "\\n")
sys.exit(rc)
'''


def copy_project(dest: Path) -> Path:
    """The tracked and untracked-not-ignored project files, as a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in files:
        src = ROOT / rel
        if not src.is_file() or rel.startswith(("data/", "embeds/", "models/", "metrics/")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    (dest / "dvc.lock").unlink(missing_ok=True)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "bench@example.invalid"],
                ["git", "config", "user.name", "neurovision benchmark"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def stage_name(argv: list[str]) -> str:
    script = next((a for a in argv if a.endswith(".py")), " ".join(argv[:2]))
    name = Path(script).stem
    if "--subject" in argv:
        name += f"@{argv[argv.index('--subject') + 1]}"
    return name


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", help="folder for the project copy (kept; default: a new "
                                      "folder under $TMPDIR)")
    ap.add_argument("--train-concepts", type=int, default=1654)
    ap.add_argument("--per-concept", type=int, default=10)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--train-reps", type=int, default=4)
    ap.add_argument("--test-reps", type=int, default=80)
    ap.add_argument("--image-size", type=int, default=96,
                    help="stored image size of the simulation (the model sees 224 x 224 "
                         "either way; embed_throughput.py measures 500 x 500 decoding)")
    ap.add_argument("--no-overhead", action="store_true", help="skip dvc_overhead")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    work = Path(args.workdir) if args.workdir else Path(
        os.environ.get("TMPDIR", "/tmp")) / f"nv-fullsize-{os.getpid()}"
    if work.exists() and any(work.iterdir()):
        sys.exit(f"{work}: exists and is not empty; give a new --workdir")
    work.mkdir(parents=True, exist_ok=True)
    project = copy_project(work / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "demo"
    params["data"]["subjects"] = [1]
    params["data"]["demo"].update(
        n_train_concepts=args.train_concepts, train_images_per_concept=args.per_concept,
        n_test=args.test, train_reps=args.train_reps, test_reps=args.test_reps,
        image_size=args.image_size)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    shim_dir = work / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "python"
    shim.write_text(SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    (shim_dir / "python3").symlink_to(shim)
    log = work / "stages.jsonl"
    env = dvc_env(project, shim_dir=shim_dir, log=log)

    info = machine()
    print(f"work folder: {work}; 1-min load average at start {info['load_1min']}",
          file=sys.stderr)
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=project,
                          env=env, capture_output=True, text=True)
    total = time.perf_counter() - t0
    (work / "repro.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        sys.exit(f"dvc repro failed ({proc.returncode}); see {work / 'repro.log'}")
    info["load_1min_end"] = round(os.getloadavg()[0], 2)
    stages = [{"stage": stage_name(r["argv"]), **r} for r in read_log(log)]
    raw = project / "data" / "raw" / "sub-1" / "preprocessed_eeg_training.npy"
    raw_bytes = raw.stat().st_size
    raw_array = (args.train_concepts * args.per_concept * args.train_reps * 17 * 100 * 8)

    print(f"\nMachine: {info['cpu']}, {info['usable_cpus']} usable CPU(s), torch "
          f"{info['torch']}; 1-min load average {info['load_1min']} at start, "
          f"{info['load_1min_end']} at end")
    n_img = args.train_concepts * args.per_concept
    print(f"Data: {n_img} training images x {args.train_reps} reps, {args.test} test x "
          f"{args.test_reps}, 17 ch x 100 samples (float64 training array "
          f"{raw_array / 1e9:.2f} GB); {n_img + args.test} images of "
          f"{args.image_size} px embedded with {params['embed']['model']} "
          f"(pretrained: {params['embed']['pretrained']})\n")
    print("| stage | wall s | CPU s | peak memory (MB) |")
    print("| --- | ---: | ---: | ---: |")
    for s in stages:
        print(f"| {s['stage']} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | "
              f"{s['maxrss_kb'] / 1024:.0f} |")
    in_stages = sum(s["wall_s"] for s in stages)
    print(f"| DVC itself (hashing, caching, bookkeeping) | {total - in_stages:.1f} | | |")
    print(f"| **dvc repro, end to end** | **{total:.1f}** ({total / 60:.1f} min) | | |")
    erp = [s for s in stages if s["stage"].startswith("erp@")]
    if erp:
        peak = erp[0]["maxrss_kb"] * 1024
        print(f"\nERP stage peak memory {peak / 1e9:.2f} GB = {peak / raw_array:.2f}x the raw "
              f"float64 training array ({raw_array / 1e9:.2f} GB; file {raw_bytes / 1e9:.2f} GB)")
    result = {"machine": info, "total_s": total, "stages": stages, "raw_array_bytes": raw_array,
              "params_demo": params["data"]["demo"], "workdir": str(work)}
    if not args.no_overhead:
        result["overhead"] = overhead(project, env)
        print_overhead(result["overhead"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nproject kept in {project} (delete it when done: about "
          f"{sum(f.stat().st_size for f in work.rglob('*') if f.is_file()) / 1e9:.1f} GB)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
