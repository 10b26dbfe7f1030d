"""Benchmark: preprocess@N on one simulated subject's raw recordings (4 sessions), time and
peak memory.

Simulates the subject's 8 raw files with the demo's raw simulator (``stages/download.py``
with ``data.eeg: raw``; full size by default: 16,540 training images x 4 repetitions, each
image in 2 of the 4 sessions, and 200 test images x 80, 63 channels + stim at 1000 Hz, in
float32), then runs ``stages/preprocess.py`` on them once per preset.  Each stage runs as its
own process; its wall time, CPU time and peak resident memory (``ru_maxrss`` from
``wait4``) are printed, with the sizes of the raw files and of the output.

    python benchmarks/raw_preprocess.py --workdir /tmp/nv-raw          # full size
    python benchmarks/raw_preprocess.py --train-concepts 150 --per-concept 4 --test 100
    python benchmarks/raw_preprocess.py --presets default "official release"

Presets: ``default`` (params.yaml's ``preprocess`` section as committed) and the names of
``neurovision.preprocess.PRESETS``.  The simulated recordings are kept in --workdir and
reused by a later run with the same sizes (delete the folder to reclaim the space).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from neurovision.preprocess import PRESETS  # noqa: E402


def measured(cmd: list[str], log: Path) -> dict:
    """Run ``cmd``; its wall and CPU seconds and peak RSS (the process and its children)."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed ({rc}); see {log}:\n{log.read_text()[-2000:]}")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_mb": ru.ru_maxrss / 1024}


def apply(params: dict, overrides: tuple[str, ...]) -> dict:
    """params.yaml's dict with ``key=value`` overrides (values read as YAML)."""
    for item in overrides:
        key, value = item.split("=", 1)
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = yaml.safe_load(value)
    return params


def size_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                      "nv-raw-benchmark"))
    ap.add_argument("--train-concepts", type=int, default=1654)
    ap.add_argument("--per-concept", type=int, default=10)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--train-reps", type=int, default=4)
    ap.add_argument("--test-reps", type=int, default=80)
    ap.add_argument("--presets", nargs="+", default=["default", "official release"],
                    help=f"default, or any of {list(PRESETS)}")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    unknown = [p for p in args.presets if p != "default" and p not in PRESETS]
    if unknown:
        sys.exit(f"unknown preset(s) {unknown}: expected default or one of {list(PRESETS)}")

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    base["data"].update(source="demo", eeg="raw", subjects=[1])
    base["data"]["demo"].update(n_train_concepts=args.train_concepts,
                                train_images_per_concept=args.per_concept, n_test=args.test,
                                train_reps=args.train_reps, test_reps=args.test_reps)
    key = "-".join(str(base["data"]["demo"][k]) for k in sorted(base["data"]["demo"]))
    raw = work / f"raw-{key}"
    results: dict = {"load_1min_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    if not (raw / "ses-04" / "raw_eeg_test.npy").is_file():
        prm = work / "params-simulate.yaml"
        prm.write_text(yaml.safe_dump(base, sort_keys=False))
        results["simulate"] = measured(
            [sys.executable, "stages/download.py", "--params", str(prm), "--subject", "1",
             "--out", str(raw), "--ceiling", str(work / "ceiling.json"), "--cache",
             str(work / "downloads")], work / "simulate.log")
    results["raw_gb"] = size_gb(raw)
    for preset in args.presets:
        overrides = () if preset == "default" else PRESETS[preset]
        params = apply(yaml.safe_load(yaml.safe_dump(base)), overrides)
        slug = preset.replace(" ", "_").replace("/", "")
        prm = work / f"params-{slug}.yaml"
        prm.write_text(yaml.safe_dump(params, sort_keys=False))
        out = work / f"eeg-{slug}"
        results[preset] = measured(
            [sys.executable, "stages/preprocess.py", "--params", str(prm), "--subject", "1",
             "--source", str(raw), "--out", str(out)], work / f"preprocess-{slug}.log")
        results[preset]["out_gb"] = size_gb(out)
        results[preset]["shapes"] = json.loads((out / "preprocess.json").read_text())["shapes"]
    results["load_1min_end"] = round(os.getloadavg()[0], 2)

    n_img = args.train_concepts * args.per_concept
    print(f"Subject: {n_img} training images x {args.train_reps} repetitions, {args.test} test "
          f"x {args.test_reps}; raw recordings {results['raw_gb']:.2f} GB (8 files, float32); "
          f"{results['cpus']} CPUs, 1-min load average {results['load_1min_start']} at start, "
          f"{results['load_1min_end']} at end\n")
    print("| step | wall s | CPU s | peak memory (MB) | output |")
    print("| --- | ---: | ---: | ---: | --- |")
    if "simulate" in results:
        r = results["simulate"]
        print(f"| simulate (download@1, demo) | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['peak_mb']:.0f} | {results['raw_gb']:.2f} GB |")
    for preset in args.presets:
        r = results[preset]
        shapes = ", ".join("x".join(map(str, v)) for v in r["shapes"].values())
        print(f"| preprocess@1, {preset} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['peak_mb']:.0f} | {r['out_gb']:.2f} GB ({shapes}) |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
