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


@pytest.fixture(scope="session")
def recorded_runs(tmp_path_factory):
    """``recorded_runs(*commands)``: a fresh ZOO_HOME filled by real ``zoo run ARGS --json``
    commands, for a module-scoped fixture (tiny runs several tests share); returns the home
    and the runs' JSON records."""
    import json

    from click.testing import CliRunner

    from zoo_core.cli import cli

    def record(*commands: list[str]) -> tuple[Path, list[dict]]:
        home = tmp_path_factory.mktemp("home")
        results = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ZOO_HOME", str(home))
            for args in commands:
                r = CliRunner().invoke(cli, ["run", *args, "--json"])
                assert r.exit_code == 0, r.output
                out = json.loads(r.stdout)
                results += out if isinstance(out, list) else [out]
        return home, results

    return record


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


# -- a real PostgreSQL server (issue 15; started by zoo_core/testing/postgresql.py) ---------------

@pytest.fixture(scope="session")
def postgresql_server():
    """The base URL (``postgresql://zoo@127.0.0.1:PORT``) of a real PostgreSQL server, started
    from Debian's binaries in a temporary folder for the session, on 127.0.0.1 only, as an
    unprivileged user; stopped at the end. Skipped where the binaries are absent, except in CI
    (``CI`` set), where that fails."""
    import os

    from zoo_core.testing.postgresql import pg_bindir, throwaway_postgresql

    if pg_bindir() is None:
        reason = ("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are absent: "
                  "apt-get install postgresql (make test does)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="pip install 'zoo-core[postgresql]'")
    with throwaway_postgresql() as url:
        yield url


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgresql_url(postgresql_server) -> str:
    """The URL of a new, empty database on the test server."""
    from zoo_core.testing.postgresql import new_database

    return new_database(postgresql_server, f"zoo_test_{next(_databases)}")
