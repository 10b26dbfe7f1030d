"""The explorer in a real browser: `neurovision app` on 127.0.0.1, headless Chromium.

Uses Debian's chromium and chromium-driver (installed by .ci/run).  Skipped only where no
chromium binary exists; under CI (CI=true) a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from appdata import TOP_K, copy_outputs, outputs_fixture  # noqa: F401  (the fixture)

from conftest import chromium_driver, needs_chromium
from neurovision.app.views import concept_name

pytestmark = [pytest.mark.browser, needs_chromium]

LOADED_RESULTS = ("return Array.from(document.querySelectorAll('.st-key-results img'))"
                  ".filter(i => i.complete && i.naturalWidth > 0).length")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start `neurovision app` on a free port of 127.0.0.1; return it once it answers."""
    port = free_port()
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "neurovision.cli", "app", "--root", str(root), "--port",
             str(port), "--address", "127.0.0.1", "--no-browser"],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise AssertionError(f"the app did not answer within 60 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium_driver(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture
def app(tmp_path):
    procs = []

    def start(root: Path) -> str:
        proc, url = serve(root, tmp_path / f"app{len(procs)}.log")
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def error_boxes(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], '
                                                  '[data-testid="stAlertContentError"]')
    return [e.text for e in found]


def test_browser_shows_title_k_images_and_no_error(outputs, browser, app):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = app(outputs)
    t0 = time.monotonic()
    browser.get(url)
    WebDriverWait(browser, 90).until(lambda d: d.execute_script(LOADED_RESULTS) >= TOP_K)
    loaded = time.monotonic() - t0
    WebDriverWait(browser, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')) >= 2)
    print(f"page with {TOP_K} result images in {loaded:.1f} s")

    assert browser.title == "neurovision explorer"
    assert browser.find_element(By.TAG_NAME, "h1").text == "neurovision explorer"
    assert browser.execute_script(LOADED_RESULTS) == TOP_K
    assert error_boxes(browser) == []
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in body
    rank = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text
    trials = json.loads((outputs / "metrics/subjects/sub-1/trials.json").read_text())
    assert int(rank) == trials[0]["rank"]
    # the results grid shows the top-K of trials.json, in order, with their scores
    t = trials[0]
    for j, (idx, score) in enumerate(zip(t["top_indices"][:TOP_K], t["top_scores"][:TOP_K])):
        assert f"#{j + 1} {concept_name(trials[idx]['concept'])} · {score:.3f}" in body


def test_browser_detects_an_error_box(outputs, browser, app, tmp_path):
    """The negative control of the check above: a broken output does show an error box."""
    from selenium.webdriver.support.ui import WebDriverWait

    broken = copy_outputs(outputs, tmp_path / "broken")
    (broken / "metrics/subjects/sub-1/trials.json").write_text("[]")
    browser.get(app(broken))
    WebDriverWait(browser, 90).until(lambda d: error_boxes(d))
    assert any("expected a list of 12 trials" in text for text in error_boxes(browser))
    assert browser.execute_script(LOADED_RESULTS) == 0
