"""Shared fixtures: an isolated ZOO_HOME per test, the ``zoo`` command in this process,
recorded runs, fake installed plugins and a real PostgreSQL server. The helpers behind them
live in tests/helpers.py (one copy each); a test module takes them as fixtures and never
imports another test module."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import helpers

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def zoo_home(tmp_path, monkeypatch):
    home = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    for var in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def zoo():
    """``zoo(*args, store=None, code=None, input=None, env=None)``: the ``zoo`` command run in
    this process (click's CliRunner) in the test's ZOO_HOME; its result. See
    :func:`helpers.invoke`."""
    return helpers.invoke


@pytest.fixture(scope="session")
def the_zoo():
    """The zoo ``open_zoo()`` opens (the registry, the installed plugins), opened once for the
    session: for tests that resolve settings, build graphs or train; a test that installs a
    plugin opens its own."""
    from zoo_core.catalogue import open_zoo

    return open_zoo()


@pytest.fixture(scope="session")
def make_record():
    """``make_record(run_id, **fields)``: a RunRecord as the store tests write it."""
    return helpers.make_record


@pytest.fixture(scope="session")
def record():
    """``record(run_id, seed=0, **fields)``: a RunRecord as the CLI tests write it by hand."""
    return helpers.record


@pytest.fixture(scope="session")
def add_completed():
    """``add_completed(store, run_id, accuracy, seed=0, folder=None, **fields)``: a completed
    run with two epochs recorded, without training."""
    return helpers.add_completed


@pytest.fixture(scope="session")
def sweep_record():
    """``sweep_record(sweep_id, run_ids)``: a SweepRecord of the cnn whose trials are those runs."""
    return helpers.sweep_record


@pytest.fixture(scope="session")
def stop_at():
    """``stop_at(epoch)``: a progress reporter that presses Ctrl-C when that epoch starts."""
    return helpers.StopAt


@pytest.fixture(scope="session")
def dist_info():
    """``dist_info(site, dist, entry_points, version="0.1.0", group="zoo", requires=())``:
    write the ``.dist-info`` pip would, so importlib.metadata finds a fake plugin in ``site``."""
    return helpers.write_dist_info


@pytest.fixture(scope="session")
def recorded_runs(tmp_path_factory):
    """``recorded_runs(*commands)``: a fresh ZOO_HOME filled by real ``zoo run ARGS --json``
    commands, for a module-scoped fixture (tiny runs several tests share); returns the home
    and the runs' JSON records."""
    import json

    def record(*commands: list[str]) -> tuple[Path, list[dict]]:
        home = tmp_path_factory.mktemp("home")
        results = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ZOO_HOME", str(home))
            for args in commands:
                out = json.loads(helpers.invoke("run", *args, "--json", code=0).stdout)
                results += out if isinstance(out, list) else [out]
        return home, results

    return record


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """Install a fake distribution with ``zoo`` entry points onto sys.path.

    ``fake_dist("zoo-broken", {"zoo_broken": "raise ImportError('boom')"})`` writes the
    module and a ``.dist-info`` whose entry points importlib.metadata finds, exactly
    as it finds a pip-installed plugin. ``entry_points`` (name -> module; one per module
    unless given, none if empty) go in ``group``; ``requires`` are its Requires-Dist lines.
    """
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, modules: dict[str, str], entry_points: dict[str, str] | None = None,
             version: str = "0.1.0", group: str = "zoo", requires: tuple[str, ...] = ()):
        for mod, source in modules.items():
            (site / f"{mod}.py").write_text(textwrap.dedent(source))
        eps = entry_points if entry_points is not None else {
            m.removeprefix("zoo_"): m for m in modules}
        return helpers.write_dist_info(site, dist, eps, version, group, requires)

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
