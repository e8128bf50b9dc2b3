"""Shared fixtures: an isolated ZOO_HOME per test, and fake installed plugins."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def zoo_home(tmp_path, monkeypatch):
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    for var in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """Install a fake distribution with ``zoo`` entry points onto sys.path.

    ``fake_dist("zoo-broken", {"zoo_broken": "raise ImportError('boom')"})`` writes the
    module and a ``.dist-info`` whose entry points importlib.metadata finds, exactly
    as it finds a pip-installed plugin.
    """
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, modules: dict[str, str], entry_points: dict[str, str] | None = None,
             version: str = "0.1.0"):
        for mod, source in modules.items():
            (site / f"{mod}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        eps = entry_points or {m.removeprefix("zoo_"): m for m in modules}
        (info / "entry_points.txt").write_text(
            "[zoo]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        )
        return info

    return make

# tests/data holds fixtures, among them a plugin's own tests, which run only through
# tests/test_compat.py (with the plugin on the path).
collect_ignore_glob = ["data/*"]
