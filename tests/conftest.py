"""Shared fixtures: a tiny demo dataset and in-process access to the stage scripts."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: A demo small enough for a full `dvc repro` in well under a minute.
TINY_DEMO = {"seed": 0, "n_train_concepts": 40, "train_images_per_concept": 4, "n_test": 20,
             "train_reps": 4, "test_reps": 20, "image_size": 48, "noise": 1.0}


def load_stage(name: str):
    """Import stages/<name>.py as a module (its ``main(argv)`` raises instead of exiting)."""
    if str(ROOT / "stages") not in sys.path:  # for the stages' ``import _workspace``
        sys.path.append(str(ROOT / "stages"))
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_params(path: Path, **sections) -> Path:
    """params.yaml = the project's defaults, with ``sections`` merged in (one level deep)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key] = {**params[key], **value}
        else:
            params[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def tiny_params(tmp_path: Path) -> Path:
    return write_params(tmp_path / "params.yaml", data={"source": "demo", "subjects": [1],
                                                        "local_dir": None, "demo": TINY_DEMO})


def copy_project(dest: Path, keep_lock: bool = False) -> Path:
    """Copy the tracked project files into ``dest`` and make it a git + DVC repository
    (without dvc.lock unless ``keep_lock``: a fresh clone of main has the committed one)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = ROOT / rel
        if not src.is_file() or rel.startswith(("data/", "embeds/", "models/", "metrics/")):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    if not keep_lock:
        (dest / "dvc.lock").unlink(missing_ok=True)
    def run(*cmd):
        return subprocess.run(cmd, cwd=dest, check=True, capture_output=True, text=True)
    run("git", "init", "-q")
    run("git", "config", "user.email", "test@example.invalid")
    run("git", "config", "user.name", "neurovision tests")
    return dest


def project_cache(cwd: Path) -> Path:
    """The shared cache (neurovision.cache_dirs) a test project uses: next to the project,
    not the user's, so tests neither see nor fill each other's or the user's cache."""
    root = Path(cwd).resolve()
    while not (root / ".dvc").is_dir() and root.parent != root:
        root = root.parent
    root = root if (root / ".dvc").is_dir() else Path(cwd).resolve()
    return root.with_name(root.name + ".nvcache")


def dvc(cwd: Path, *args: str, check: bool = True,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real ``dvc`` command line of this environment in ``cwd`` (``env``: more
    environment variables; NEUROVISION_CACHE defaults to :func:`project_cache`)."""
    bindir = Path(sys.executable).parent
    # no PYTHONPATH: the stages import the copy's own src/ by themselves (stages/_workspace.py)
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               NEUROVISION_CACHE=str(project_cache(cwd)))
    env.update(extra)
    proc = subprocess.run([str(bindir / "dvc"), *args], cwd=cwd, capture_output=True, text=True,
                          env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def run_queue(cwd: Path, jobs: int = 1, timeout: float = 1800,
              env: dict | None = None) -> tuple[str, str]:
    """``dvc queue start --jobs N`` as a user runs it, then wait until no queued experiment
    is queued or running; returns (start's output, the final ``dvc queue status``)."""
    import time

    started = dvc(cwd, "queue", "start", "--jobs", str(jobs), env=env).stdout
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(cwd, "queue", "status", env=env).stdout
        tasks = [line.split() for line in status.splitlines()[1:] if line.strip()
                 and not line.startswith(("Worker status", "No experiment"))]
        if not any(t and t[-1] in ("Queued", "Running") for t in tasks):
            return started, status
        if time.monotonic() > deadline:
            dvc(cwd, "queue", "stop", "--kill", check=False, env=env)
            raise AssertionError(f"the queue did not finish in {timeout:.0f} s:\n{status}")
        time.sleep(3)


#: Debian's chromium and chromium-driver (.ci/run installs them) for the real-browser tests
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium"
                                        if Path("/usr/bin/chromium").exists() else None)
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--window-size=1400,1700", "--hide-scrollbars"]
#: Skip browser tests only where no chromium exists; under CI a missing browser fails.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI", "").lower() != "true",
    reason="no chromium binary (apt-get install chromium chromium-driver)")


def chromium_driver(profile: Path, offline: bool = False):
    """A headless Chromium (selenium); ``offline``: every host name fails to resolve, so
    nothing outside the page itself can load."""
    assert CHROMIUM, "CI must have chromium: apt-get install chromium chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    if offline:
        flags.append("--host-resolver-rules=MAP * ~NOTFOUND")
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver
