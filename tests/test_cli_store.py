"""The PostgreSQL store from the command line (issue 15): `zoo --store URL`, `zoo store
migrate`, `zoo store copy SQLITE_FILE URL`, and a real training run recorded on a real
PostgreSQL server (started by tests/conftest.py)."""

from __future__ import annotations

import json

import pytest

from zoo_core.store import schema
from zoo_core.store import open_store


@pytest.fixture
def sqlite_file(add_completed, record, tmp_path):
    """A SQLite store with three runs: completed (epochs, tags), failed, queued."""
    path = tmp_path / "old.db"
    with open_store(path) as store:
        add_completed(store, "cnn-a", 0.90, started_at="2026-01-01T00:00:00+00:00")
        store.tag_run("cnn-a", add=["baseline", "v1"])
        add_completed(store, "cnn-b", 0.91, seed=1, started_at="2026-01-01T00:00:00+00:00")
        store.finish_run("cnn-b", status="failed", error="boom")
        store.queue_run(record("cnn-q", seed=2, started_at="2026-01-02T00:00:00+00:00"))
    return path


def _contents(location):
    with open_store(location) as store:
        return [(r, store.epochs(r.run_id)) for r in store.runs()]


def test_store_copy_moves_every_run_epoch_and_tag_and_is_idempotent(
        zoo, sqlite_file, postgresql_url):
    r = zoo("store", "copy", str(sqlite_file), postgresql_url)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        f"copied 3 run(s) (4 epochs, 2 tags) from {sqlite_file} to {postgresql_url}; "
        "0 already there, identical",
        f"checked: every run reads back the same; {postgresql_url} now holds 3 run(s)"]
    assert _contents(postgresql_url) == _contents(sqlite_file)  # order, ties, fields, epochs
    again = zoo("store", "copy", str(sqlite_file), postgresql_url)
    assert again.exit_code == 0, again.output
    assert "copied 0 run(s) (0 epochs, 0 tags)" in again.output
    assert "3 already there, identical" in again.output
    assert _contents(postgresql_url) == _contents(sqlite_file)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_copy_brings_the_sweeps_along(record, sweep_record, zoo, sqlite_file, backend,
                                             request, tmp_path):
    """Issue 31: the trials keep their sweep_id, and on the target `zoo sweep status ID`
    knows the sweep; a second copy changes nothing."""
    with open_store(sqlite_file) as store:
        store.create_sweep(sweep_record("sweep-20260101-000000-abcd", ["cnn-s1", "cnn-s2"]),
                           [record("cnn-s1", seed=3), record("cnn-s2", seed=4)])
        store.cancel_sweep("sweep-20260101-000000-abcd", "cancelled by a test")
    target = (str(tmp_path / "new.db") if backend == "sqlite"
              else request.getfixturevalue("postgresql_url"))
    # the first copy, then a second that changes nothing
    for runs, there, sweeps in (("5 run(s) (4 epochs, 2 tags)", 0, 1),
                                ("0 run(s) (0 epochs, 0 tags)", 5, 0)):
        copied = zoo("store", "copy", str(sqlite_file), target, code=0).output.splitlines()
        assert copied[:2] == [
            f"copied {runs} from {sqlite_file} to {target}; {there} already there, identical",
            f"copied {sweeps} sweep(s) (their trials are among the runs); {1 - sweeps} already "
            "there, identical"]
    with open_store(sqlite_file) as source, open_store(target) as copy:
        assert copy.sweeps() == source.sweeps()
    status = zoo("--store", target, "sweep", "status", "sweep-20260101")
    assert status.exit_code == 0, status.output
    assert "cnn-s1" in status.output and "cnn-s2" in status.output
    assert status.output == zoo("--store", str(sqlite_file), "sweep", "status",
                                "sweep-20260101").output
    assert _contents(target) == _contents(sqlite_file)


def test_store_copy_finishes_a_copy_that_stopped_half_way(zoo, sqlite_file, postgresql_url):
    with open_store(sqlite_file) as source, open_store(postgresql_url) as target:
        run = source.get("cnn-a")
        target.create_run(run)
        target.add_epoch("cnn-a", 1, **{k: v for k, v in source.epochs("cnn-a")[0].items()
                                        if k != "epoch"})
        target.update_run("cnn-a", epochs_run=run.epochs_run)
    r = zoo("store", "copy", str(sqlite_file), postgresql_url)
    assert r.exit_code == 0, r.output
    assert _contents(postgresql_url) == _contents(sqlite_file)


def test_store_copy_refuses_a_target_with_other_runs_of_the_same_id(
        record, zoo, sqlite_file, postgresql_url):
    with open_store(postgresql_url) as target:
        target.create_run(record("cnn-b", seed=7))
    r = zoo("store", "copy", str(sqlite_file), postgresql_url)
    assert r.exit_code == 1
    assert "already holds run 'cnn-b' with other contents: nothing was copied" in r.output
    with open_store(postgresql_url) as target:
        assert [run.run_id for run in target.runs()] == ["cnn-b"]


def test_store_copy_needs_an_existing_sqlite_file(zoo, tmp_path, postgresql_url):
    r = zoo("store", "copy", str(tmp_path / "nope.db"), postgresql_url)
    assert r.exit_code == 1 and f"no SQLite store at {tmp_path / 'nope.db'}" in r.output
    assert not (tmp_path / "nope.db").exists()


def test_store_migrate_creates_the_schema_on_either_backend(zoo, postgresql_url, tmp_path):
    latest = len(schema.MIGRATIONS)
    r = zoo("store", "migrate", "--store", postgresql_url)
    assert r.exit_code == 0, r.output
    assert r.output == (f"results store {postgresql_url}: schema version {latest} of {latest}, "
                        "up to date\n")
    assert zoo("--store", postgresql_url, "store", "migrate").output == r.output
    path = tmp_path / "new.db"
    r = zoo("store", "migrate", env={"ZOO_STORE": str(path)})
    assert r.exit_code == 0 and f"results store {path}: schema version {latest}" in r.output


@pytest.mark.slow
def test_a_run_on_postgresql_shows_on_its_leaderboard(zoo, postgresql_url, zoo_home):
    r = zoo("run", "cnn", "--epochs", "1", "--limit", "300", "--store", postgresql_url, "--json")
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)
    assert run["status"] == "completed" and run["epochs_run"] == 1
    board = zoo("leaderboard", "--include-partial", "--format", "json", "--store", postgresql_url)
    assert board.exit_code == 0, board.output
    assert [row["model"] for row in json.loads(board.output)] == ["cnn"]
    assert zoo("leaderboard", "--include-partial", env={"ZOO_STORE": postgresql_url}).output \
        == zoo("--store", postgresql_url, "leaderboard", "--include-partial").output
    assert not (zoo_home / "zoo.db").exists()  # nothing went to the default SQLite file
    with open_store(postgresql_url) as store:
        assert [e["epoch"] for e in store.epochs(run["run_id"])] == [1]
