"""The committed dvc.lock is current: for every stage of dvc.yaml (with params.yaml as
committed) it records the same command, the same set of deps, the md5 of every code file as
it is now, and the same param values, so a fresh clone's first `dvc repro` rewrites nothing
but output hashes (which can differ in the last bits between CPUs)."""

from __future__ import annotations

import hashlib

import yaml

from conftest import ROOT

LOCK = ROOT / "dvc.lock"


def _expected() -> dict[str, dict]:
    """What dvc.yaml and params.yaml say each stage's lock entry must hold."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    params = yaml.safe_load((ROOT / "params.yaml").read_text())

    def value(dotted: str):
        node = params
        for part in dotted.split("."):
            node = node[part]
        return node

    with Repo(str(ROOT)) as repo:
        out = {}
        for stage in repo.index.stages:
            deps = [d for d in stage.deps if not isinstance(d, ParamsDependency)]
            named = {k: value(k) for d in stage.deps if isinstance(d, ParamsDependency)
                     for k in d.params}
            out[stage.addressing] = {"cmd": stage.cmd, "deps": sorted(d.def_path for d in deps),
                                     "params": named}
        return out


def test_the_committed_lock_is_current():
    lock = yaml.safe_load(LOCK.read_text())["stages"]
    expected = _expected()
    assert sorted(lock) == sorted(expected), "stages in dvc.lock differ from dvc.yaml"
    for name, want in expected.items():
        got = lock[name]
        assert got["cmd"] == want["cmd"], name
        assert sorted(d["path"] for d in got.get("deps", [])) == want["deps"], name
        assert (got.get("params") or {}).get("params.yaml", {}) == want["params"], name
        for dep in got.get("deps", []):
            if dep["path"].endswith(".py"):
                md5 = hashlib.md5((ROOT / dep["path"]).read_bytes()).hexdigest()
                assert dep["md5"] == md5, f"{name}: {dep['path']} changed since dvc.lock"
