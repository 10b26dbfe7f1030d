"""The device check: says "no GPU" and exits 0 where torch sees no CUDA device, and its
measuring path (the embed stage's function, per device and precision) compares like with
like, checked here CPU against CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from neurovision import demo
from neurovision.params import DemoParams

sys.path.insert(0, str(ROOT / "benchmarks"))
import device_check


def test_without_a_gpu_it_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/device_check.py")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("device check: no GPU (torch finds no CUDA device on this "
                                   "machine); nothing to compare, exiting")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_rows_compare_each_precision_with_the_cpu_reference(tmp_path: Path):
    demo.write_images(tmp_path, DemoParams(n_train_concepts=6, train_images_per_concept=2,
                                           n_test=2, image_size=32))
    rows = device_check.check_model("ViT-S-32", ["final", 0.5], tmp_path, cpu_images=8,
                                    batch_size=4, num_workers=0, device="cpu",
                                    precisions=("float32", "bfloat16"))
    assert [(r["device"], r["precision"], r["images"]) for r in rows] == [
        ("cpu", "float32", 8), ("cpu", "float32", 12), ("cpu", "bfloat16", 12)]
    assert rows[0]["max_abs_diff_to_cpu"] is None
    # the same device, precision and batches: the same bits on the compared images
    assert rows[1]["max_abs_diff_to_cpu"] == {"final": 0.0, "0.5": 0.0}
    lossy = rows[2]["max_abs_diff_to_cpu"]
    assert set(lossy) == {"final", "0.5"} and all(0 < v < 0.1 for v in lossy.values())
    assert all(r["images_per_s"] > 0 for r in rows)
    text = device_check.table(rows)
    assert "| ViT-S-32 | cpu | bfloat16 | 12 |" in text and "(reference)" in text
