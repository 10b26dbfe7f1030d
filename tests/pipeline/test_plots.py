"""`dvc plots show` and `dvc plots diff` write pages that render with no network: the
project's HTML template (.dvc/config: plots.html_template) carries vega, vega-lite and
vega-embed itself; checked in headless Chromium with every host name unresolvable."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    ROOT,
    TINY_DEMO,
    chromium_driver,
    copy_project,
    dvc,
    needs_chromium,
    write_params,
)

SMALL = {**TINY_DEMO, "n_train_concepts": 10, "n_test": 8, "test_reps": 4, "image_size": 32}
TEMPLATE = ROOT / ".dvc" / "plots-offline.html"
#: the plots dvc.yaml declares for one subject: top-K curve, rank histogram, top-1 bars
N_PLOTS = 3


def test_the_template_carries_the_libraries_and_loads_nothing():
    html = TEMPLATE.read_text()
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC's CDN tags stay out
    for lib in ("vega 5.20.2", "vega-lite 5.2.0", "vega-embed 6.18.2"):
        assert f"/* {lib} */" in html
    assert not re.search(r"<script[^>]+src=", html)
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"\[plots\]\s+html_template = plots-offline\.html", config)


def _rendered(driver, page: Path) -> list[str]:
    """Ids of the page's vega views that drew a chart (an svg or canvas with content)."""
    driver.get(page.as_uri())
    deadline = time.monotonic() + 30
    script = ("return Array.from(document.querySelectorAll('div[id]'))"
              ".filter(d => d.querySelector('svg .mark-group, canvas')).map(d => d.id)")
    done: list[str] = []
    while time.monotonic() < deadline:
        done = driver.execute_script(script)
        if len(done) >= N_PLOTS:
            break
        time.sleep(0.3)
    return done


@pytest.mark.integration
@pytest.mark.browser
@needs_chromium
def test_plots_render_offline_in_chromium(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("plots"))
    write_params(root / "params.yaml", data={"source": "demo", "subjects": [1], "local_dir": None,
                                             "demo": SMALL},
                 pca={"n_components": 8}, embed={"batch_size": 8})
    dvc(root, "repro")
    for args in (("add", "-A"), ("commit", "-qm", "baseline")):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    dvc(root, "exp", "run", "-S", "train.ridge.alpha=10", "-n", "alpha-10")
    dvc(root, "plots", "show")
    dvc(root, "plots", "diff", "HEAD", "alpha-10", "-o", "plots")
    assert "dvc_plots" in subprocess.run(["git", "status", "--porcelain", "--ignored"],
                                         cwd=root, capture_output=True, text=True).stdout
    untracked = [line for line in subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
    ).stdout.splitlines() if line.startswith("??")]
    assert untracked == []  # both plot folders are ignored: `git add -A` commits neither
    driver = chromium_driver(tmp_path_factory.mktemp("profile"), offline=True)
    try:
        for page in (root / "dvc_plots/index.html", root / "plots/index.html"):
            assert "cdn.jsdelivr" not in page.read_text()
            assert len(_rendered(driver, page)) == N_PLOTS, page
            errors = [e["message"] for e in driver.get_log("browser")
                      if e["level"] == "SEVERE"] if hasattr(driver, "get_log") else []
            assert not errors, errors
    finally:
        driver.quit()
