"""Where the shared cache lives: the environment variable, then cache.dir, then the user's
cache directory; always absolute, the same for every copy of the workspace."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from neurovision.cache_dirs import CACHE_ENV, cache_root, downloads_dir, embed_dir
from neurovision.errors import ParamError


def test_the_environment_wins_then_the_param_then_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_root("/srv/team") == tmp_path / "env"
    monkeypatch.setenv(CACHE_ENV, "  ")  # blank is unset
    assert cache_root("/srv/team") == Path("/srv/team")
    monkeypatch.delenv(CACHE_ENV)
    assert cache_root("~/nv") == Path.home() / "nv"
    assert embed_dir("/srv/team") == Path("/srv/team/embed")
    assert downloads_dir("/srv/team") == Path("/srv/team/downloads")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG is Linux's convention")
def test_by_default_the_users_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(None) == tmp_path / "xdg" / "neurovision"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root(None) == Path.home() / ".cache" / "neurovision"


def test_a_relative_location_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "cache")
    with pytest.raises(ParamError, match=rf"environment: {CACHE_ENV}: expected an absolute "
                       r"path \(or ~/\.\.\.\), got 'cache'"):
        cache_root(None)
    monkeypatch.delenv(CACHE_ENV)
    with pytest.raises(ParamError, match=r"params: cache\.dir: expected an absolute path"):
        cache_root("data/cache")
