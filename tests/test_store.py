"""The results store: records, lookups, the queue, schema versions, damaged files, concurrent
writers.

The tests of the store's contract (zoo_core.store.Store) take the ``store`` fixture,
which opens every backend in BACKENDS through open_store(); the others are about SQLite.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import platformdirs
import pytest

from zoo_core import paths
from zoo_core.errors import StoreError, UnknownNameError, UsageError
from zoo_core.store import sqlite
from zoo_core.store.records import (STATUSES, RunRecord, config_id, precision_ran, run_files,
                                    utc_now)
from zoo_core.store.sqlite import SQLiteStore
from zoo_core.store import Store, open_store

# The store backends every contract test runs against (PostgreSQL: a real server that
# tests/conftest.py starts).
BACKENDS = ["sqlite", "postgresql"]
RELEASE_0_1_0_STORE = Path(__file__).parent / "data" / "store-0.1.0.db"


def make_record(run_id: str, **overrides) -> RunRecord:
    fields = dict(
        run_id=run_id,
        model="cnn",
        dataset="fashion",
        plugin="zoo-cnn",
        plugin_version="0.1.0",
        zoo_version="0.1.0",
        tf_version="2.16.1",
        config={"epochs": 3, "lr": 0.001, "limit": None},
        seed=1,
        data_checksums={"train-images": "aa", "test-images": "bb"},
        split_sizes={"train": 54000, "val": 6000, "test": 10000},
    )
    fields.update(overrides)
    return RunRecord(**fields)


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path) -> str:
    """Where a new, empty store of each backend lives, as open_store() takes it."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgresql_url")
    return str(tmp_path / "home" / "zoo.db")


@pytest.fixture
def store(location) -> Store:
    with open_store(location) as opened:
        yield opened


@pytest.fixture
def db(tmp_path) -> SQLiteStore:
    """A SQLite store, for the tests of SQLite itself (its file, locks and errors)."""
    with SQLiteStore(tmp_path / "home" / "zoo.db") as opened:
        yield opened


# -- paths -------------------------------------------------------------------------------------


def test_paths_follow_zoo_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    assert paths.zoo_home() == tmp_path
    assert paths.store_path() == tmp_path / "zoo.db"
    assert paths.runs_dir() == tmp_path / "runs"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value", [None, ""])
def test_paths_default_to_user_data_dir(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("ZOO_HOME", raising=False)
    else:
        monkeypatch.setenv("ZOO_HOME", value)
    assert str(paths.zoo_home()) == platformdirs.user_data_dir("zoo")


def test_default_store_lives_in_zoo_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    with open_store() as db:
        db.create_run(make_record("r1"))
    assert (tmp_path / "home" / "zoo.db").is_file()


# -- records -----------------------------------------------------------------------------------


def test_config_id_is_canonical():
    assert config_id({"a": 1, "b": 2}) == config_id({"b": 2, "a": 1})
    assert config_id({"a": 1}) != config_id({"a": 2})
    assert len(config_id({})) == 10
    assert make_record("r").config_id == config_id(make_record("r").config)
    assert make_record("r", config_id="given").config_id == "given"


def test_run_files_lists_the_files_that_exist_in_order(tmp_path):
    record = make_record("r1", run_dir=str(tmp_path))
    assert run_files(record) == {}
    for name in ("confusion.png", "config.json", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert list(run_files(record).items()) == [
        ("config.json", tmp_path / "config.json"), ("confusion.png", tmp_path / "confusion.png")]


def test_create_add_epoch_finish_get(store):
    record = make_record("20240101-cnn-abc")
    store.create_run(record)
    assert store.get("20240101-cnn-abc") == record

    store.add_epoch(record.run_id, 1, train_loss=0.9, train_accuracy=0.7, val_loss=0.8,
                 val_accuracy=0.72, lr=0.001, seconds=2.5)
    store.add_epoch(record.run_id, 2, train_loss=0.5, val_accuracy=0.8)
    store.finish_run(record.run_id, status="completed", test_accuracy=0.91, test_loss=0.3,
                  best_epoch=2, params=12345, finished_at="2024-01-01T00:10:00+00:00")

    got = store.get(record.run_id)
    assert got.status == "completed"
    assert got.test_accuracy == 0.91
    assert got.best_epoch == 2
    assert got.params == 12345
    assert got.epochs_run == 2
    assert got.config == record.config
    assert got.split_sizes == record.split_sizes
    epochs = store.epochs(record.run_id)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0] == {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.7, "val_loss": 0.8,
                         "val_accuracy": 0.72, "lr": 0.001, "seconds": 2.5}
    assert epochs[1]["train_accuracy"] is None
    assert got.to_dict()["test_accuracy"] == 0.91


def test_add_epoch_replaces_a_repeated_epoch(store):
    store.create_run(make_record("r1"))
    store.add_epoch("r1", 1, val_accuracy=0.5)
    store.add_epoch("r1", 1, val_accuracy=0.6)
    assert [e["val_accuracy"] for e in store.epochs("r1")] == [0.6]
    assert store.get("r1").epochs_run == 1


def test_a_nan_or_infinite_epoch_metric_reads_back_as_it_was(store):
    # SQLite would store a NaN as NULL, which reads as "not measured" (issue 19, case 8)
    store.create_run(make_record("r1"))
    store.add_epoch("r1", 1, train_loss=1.0, val_loss=float("nan"), val_accuracy=None,
                    lr=float("inf"))
    (epoch,) = store.epochs("r1")
    assert math.isnan(epoch["val_loss"]) and epoch["lr"] == float("inf")
    assert epoch["train_loss"] == 1.0 and epoch["val_accuracy"] is None


def test_a_run_with_a_nan_epoch_copies_and_copies_again_as_identical(store, tmp_path):
    from zoo_core.store.manage import copy_runs

    store.create_run(make_record("r1"))
    store.add_epoch("r1", 1, val_loss=float("nan"), val_accuracy=0.5)
    with SQLiteStore(tmp_path / "copy.db") as target:
        assert copy_runs(store, target).runs == 1
        assert math.isnan(target.epochs("r1")[0]["val_loss"])
        assert copy_runs(store, target).already == 1  # nan == nan for the comparison


def test_the_largest_seed_zoo_run_takes_is_stored_by_every_backend(store):
    from zoo_core.settings import MAX_SEED

    store.create_run(make_record("r1", seed=MAX_SEED))  # PostgreSQL's seed is an INTEGER
    assert store.get("r1").seed == MAX_SEED


def test_bad_writes_are_refused(store):
    store.create_run(make_record("r1"))
    with pytest.raises(StoreError, match="already"):
        store.create_run(make_record("r1"))
    with pytest.raises(ValueError, match="bogus"):
        store.finish_run("r1", status="completed", bogus=1)
    with pytest.raises(ValueError, match="model"):
        store.finish_run("r1", status="completed", model="other")
    with pytest.raises(ValueError, match="status"):
        store.finish_run("r1", status="exploded")
    with pytest.raises(ValueError, match="bogus"):
        store.add_epoch("r1", 1, bogus=1.0)
    with pytest.raises(UnknownNameError):
        store.finish_run("nope", status="failed")
    with pytest.raises(UnknownNameError):
        store.add_epoch("nope", 1, val_accuracy=0.1)
    assert store.get("r1").status == "running"
    assert store.epochs("r1") == []


def test_prefix_lookup(store):
    for run_id in ("abc123", "abd456", "xyz789"):
        store.create_run(make_record(run_id))
    assert store.get("x").run_id == "xyz789"
    assert store.get("abc").run_id == "abc123"
    with pytest.raises(UsageError, match="ambiguous") as excinfo:
        store.get("ab")
    assert "abc123" in str(excinfo.value) and "abd456" in str(excinfo.value)
    assert not isinstance(excinfo.value, UnknownNameError)


def test_unknown_run_suggests_a_close_id(store):
    store.create_run(make_record("abc123"))
    with pytest.raises(UnknownNameError, match="did you mean 'abc123'"):
        store.get("abd123")
    with pytest.raises(UnknownNameError):
        store.get("")


def test_runs_filters_and_order(store):
    specs = [
        ("r1", "cnn", "fashion", "2024-01-01T00:00:03+00:00", "completed"),
        ("r2", "rnn", "fashion", "2024-01-01T00:00:01+00:00", "completed"),
        ("r3", "lstm", "mnist", "2024-01-01T00:00:02+00:00", "failed"),
        ("r4", "cnn", "mnist", "2024-01-01T00:00:00+00:00", "running"),
    ]
    for run_id, model, dataset, started_at, status in specs:
        store.create_run(make_record(run_id, model=model, dataset=dataset,
                                  started_at=started_at, status=status))

    def ids(**filters):
        return [r.run_id for r in store.runs(**filters)]

    assert ids() == ["r4", "r2", "r3", "r1"]
    assert ids(model="cnn") == ["r4", "r1"]
    assert ids(model="*nn") == ["r4", "r2", "r1"]
    assert ids(model="[rl]*") == ["r2", "r3"]
    assert ids(dataset="mn?st") == ["r4", "r3"]
    assert ids(model="cnn", dataset="fashion") == ["r1"]
    assert ids(status="completed") == ["r2", "r1"]
    assert ids(model="CNN") == []
    with pytest.raises(ValueError):
        store.runs(status="done")


def test_queue_and_claim_serve_the_oldest_queued_run_once(store):
    assert store.claim_run() is None  # an empty store: nothing queued
    store.create_run(make_record("busy"))  # running, not queued: never claimed
    for run_id, started_at in (("q2", "2024-01-01T00:00:02+00:00"),
                               ("q1", "2024-01-01T00:00:01+00:00"),
                               ("q3", "2024-01-01T00:00:03+00:00")):
        store.queue_run(make_record(run_id, started_at=started_at, status="running"))
    assert [r.run_id for r in store.runs(status="queued")] == ["q1", "q2", "q3"]

    first = store.claim_run()
    assert first == store.get("q1") and first.status == "running"
    assert first.config == make_record("q1").config and first.seed == 1
    assert [store.claim_run().run_id, store.claim_run().run_id] == ["q2", "q3"]
    assert store.claim_run() is None
    assert [r.status for r in store.runs()] == ["running"] * 4
    with pytest.raises(StoreError, match="already"):
        store.queue_run(make_record("q1"))


def test_two_stores_never_claim_the_same_run(store, location):
    for i in range(6):
        store.queue_run(make_record(f"q{i}", started_at=f"2024-01-01T00:00:0{i}+00:00"))
    with open_store(location) as other:
        claimed = []
        while (run := (store, other)[len(claimed) % 2].claim_run()) is not None:
            claimed.append(run.run_id)
    assert claimed == [f"q{i}" for i in range(6)]


CLAIMERS, QUEUED = 2, 40


def _claim_all(location: str, barrier, results) -> None:
    """Claim until the queue is empty, through a store of this process's own."""
    claimed = []
    with open_store(location) as store:
        store.check()  # connected before the race starts
        barrier.wait()
        while (run := store.claim_run()) is not None:
            claimed.append(run.run_id)
            time.sleep(0.002)  # a little work, so that the claimers interleave
    results.put(claimed)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_claiming_at_once_take_each_run_exactly_once(store, location):
    for i in range(QUEUED):
        store.queue_run(make_record(f"q{i:02d}", seed=i))
    store.close()
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(CLAIMERS), ctx.Queue()
    claimers = [ctx.Process(target=_claim_all, args=(location, barrier, results))
                for _ in range(CLAIMERS)]
    for claimer in claimers:
        claimer.start()
    claimed = [results.get(timeout=60) for _ in claimers]
    for claimer in claimers:
        claimer.join()
    assert [claimer.exitcode for claimer in claimers] == [0] * CLAIMERS
    # (how the runs split between the claimers is up to the scheduler: on a loaded machine
    # one may take them all, so only exactly-once is asserted)
    every = [run_id for ids in claimed for run_id in ids]
    assert sorted(every) == [f"q{i:02d}" for i in range(QUEUED)]  # none twice, none lost
    assert store.runs(status="queued") == []
    assert len(store.runs(status="running")) == QUEUED


def test_finish_run_takes_a_final_status_and_mark_running_resumes(store):
    assert STATUSES == ("queued", "running", "completed", "interrupted", "failed", "pruned")
    store.create_run(make_record("r1"))
    store.finish_run("r1", status="interrupted", error="interrupted after 1 epoch(s)",
                     finished_at="2024-01-01T00:10:00+00:00")
    for status in ("running", "queued"):
        with pytest.raises(ValueError, match=f"a run is finished with a final status .*{status}"):
            store.finish_run("r1", status=status)
    with pytest.raises(ValueError, match="unknown run status 'exploded'"):
        store.finish_run("r1", status="exploded")
    with pytest.raises(TypeError):
        store.finish_run("r1", test_accuracy=0.5)  # the status is required
    assert (store.get("r1").status, store.get("r1").error) == (
        "interrupted", "interrupted after 1 epoch(s)")

    store.mark_running("r1")
    got = store.get("r1")
    assert (got.status, got.error) == ("running", None)
    store.finish_run("r1", status="completed", test_accuracy=0.9)
    assert (store.get("r1").status, store.get("r1").test_accuracy) == ("completed", 0.9)
    with pytest.raises(UnknownNameError):
        store.mark_running("nope")
    store.create_run(make_record("r2"))  # a search's pruner stopped it: final, with its reason
    store.finish_run("r2", status="pruned", error="median pruner: ...", best_epoch=1)
    assert (store.get("r2").status, store.get("r2").error) == ("pruned", "median pruner: ...")
    assert [r.run_id for r in store.runs(status="pruned")] == ["r2"]


def test_update_run_changes_fields_but_never_the_status(store):
    store.create_run(make_record("r1"))
    store.update_run("r1", run_dir="/runs/r1", params=42)
    got = store.get("r1")
    assert (got.status, got.run_dir, got.params) == ("running", "/runs/r1", 42)
    for fields, match in (({"status": "completed"}, "status"), ({"seed": 2}, "seed"),
                          ({}, "at least one field")):
        with pytest.raises(ValueError, match=match):
            store.update_run("r1", **fields)
    with pytest.raises(UnknownNameError):
        store.update_run("nope", params=1)
    assert store.get("r1") == got


# -- opening a store ---------------------------------------------------------------------------


def test_open_store_opens_the_sqlite_file(monkeypatch, tmp_path, location):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    default = open_store()
    assert isinstance(default, SQLiteStore) and isinstance(default, Store)
    assert default.path == tmp_path / "home" / "zoo.db"
    assert open_store(str(tmp_path / "other.db")).path == tmp_path / "other.db"
    assert isinstance(open_store(location), Store)
    assert not (tmp_path / "other.db").exists()  # opened lazily


def test_an_unreachable_postgresql_server_is_one_line_with_the_password_masked():
    pytest.importorskip("psycopg")
    store = open_store("postgresql://zoo:s3cret@127.0.0.1:1/zoo")
    with pytest.raises(StoreError) as excinfo:
        store.runs()
    text = str(excinfo.value)
    assert text.startswith("cannot connect to the results store postgresql://zoo:***@127.0.0.1:1/zoo (")
    assert "s3cret" not in text and "PGPASSWORD or ~/.pgpass" in text


@pytest.mark.parametrize("url", ["postgresql://zoo:s3cret@db.example:5432/zoo",
                                 "postgres://db.example/zoo"])
def test_a_postgresql_url_without_psycopg_says_what_to_install(monkeypatch, url):
    from zoo_core.store import postgresql

    monkeypatch.setattr(postgresql, "psycopg", None)
    with pytest.raises(StoreError, match=r"pip install 'zoo-core\[postgresql\]'") as excinfo:
        open_store(url)
    assert "s3cret" not in str(excinfo.value)
    assert "db.example" in str(excinfo.value)


def test_zoo_store_names_the_default_store(monkeypatch, tmp_path, location):
    monkeypatch.setenv("ZOO_STORE", location)
    with open_store() as store:
        store.create_run(make_record("r1"))
    monkeypatch.delenv("ZOO_STORE")
    with open_store(location) as store:
        assert [r.run_id for r in store.runs()] == ["r1"]


def test_a_newer_or_foreign_postgresql_database_is_refused(postgresql_url):
    import psycopg

    with psycopg.connect(postgresql_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (x INTEGER)")
    with pytest.raises(StoreError, match="has a table 'runs' but is not a zoo results store"):
        open_store(postgresql_url).runs()
    with psycopg.connect(postgresql_url, autocommit=True) as conn:
        conn.execute("DROP TABLE runs")
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(StoreError, match="has schema version 99, but this zoo-core knows only"):
        open_store(postgresql_url).runs()


def test_postgresql_has_the_same_migrations_and_doubles(postgresql_url):
    from zoo_core.store import postgresql

    assert len(postgresql.migrations()) == len(sqlite.MIGRATIONS)
    with open_store(postgresql_url) as store:
        assert store.version() == len(sqlite.MIGRATIONS)
        store.create_run(make_record("r1"))
        store.finish_run("r1", status="completed", test_accuracy=0.9123456789)
        assert store.get("r1").test_accuracy == 0.9123456789  # 8 bytes, as in SQLite


def test_an_unknown_store_url_is_refused():
    with pytest.raises(StoreError, match="unknown kind of store 'mysql'"):
        open_store("mysql://db.example/zoo")


def test_a_store_written_by_release_0_1_0_reads_back_whole(tmp_path):
    path = tmp_path / "zoo.db"
    shutil.copy(RELEASE_0_1_0_STORE, path)
    with open_store(str(path)) as store:
        runs = {run.run_id: run for run in store.runs()}
        assert [run.status for run in runs.values()] == ["completed", "interrupted", "failed"]
        cnn = runs["20240301-120000-cnn-fashion-s0"]
        assert (cnn.model, cnn.dataset, cnn.plugin, cnn.seed, cnn.config_id) == (
            "cnn", "fashion", "zoo-cnn", 0, "9f28062ebb")
        assert cnn.config == {"epochs": 2, "lr": 0.001, "batch_size": 128, "limit": None,
                              "dropout": 0.5}
        assert cnn.config_id == config_id(cnn.config)
        # recorded before runs kept the precision they ran in: the config says it (no bf16)
        assert (cnn.precision, precision_ran(cnn)) == (None, "float32")
        assert cnn.split_sizes == {"train": 54000, "val": 6000, "test": 10000}
        assert cnn.data_checksums["test-labels"] == "dd44"
        assert (cnn.params, cnn.best_epoch, cnn.epochs_run, cnn.test_accuracy, cnn.test_loss,
                cnn.val_accuracy, cnn.train_seconds, cnn.examples_per_sec) == (
            93322, 2, 2, 0.8791, 0.34, 0.88, 27.5, 3927.3)
        assert (cnn.started_at, cnn.finished_at, cnn.error) == (
            "2024-03-01T12:00:00+00:00", "2024-03-01T12:00:31+00:00", None)
        assert cnn.run_dir == "/old/home/runs/20240301-120000-cnn-fashion-s0"
        assert store.epochs(cnn.run_id) == [
            {"epoch": 1, "train_loss": 0.61, "train_accuracy": 0.78, "val_loss": 0.45,
             "val_accuracy": 0.84, "lr": 0.001, "seconds": 13.5},
            {"epoch": 2, "train_loss": 0.38, "train_accuracy": 0.86, "val_loss": 0.33,
             "val_accuracy": 0.88, "lr": 0.001, "seconds": 14.5}]
        rnn = store.get("20240301-120100")
        assert (rnn.plugin, rnn.epochs_run, rnn.error) == (
            "zoo-rnn", 1, "interrupted after 1 epoch(s)")
        assert [e["val_accuracy"] for e in store.epochs(rnn.run_id)] == [0.4]
        failed = runs["20240301-120200-cnn-mnist-s0"]
        assert (failed.error, failed.epochs_run, store.epochs(failed.run_id)) == (
            "the loss became NaN at step 7", 0, [])
        store.mark_running(rnn.run_id)  # and it takes new writes
        store.add_epoch(rnn.run_id, 2, val_accuracy=0.5)
        store.finish_run(rnn.run_id, status="completed", test_accuracy=0.5)
        assert store.get(rnn.run_id).epochs_run == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(sqlite.MIGRATIONS)
    conn.close()



def test_new_store_is_wal_at_the_latest_version(db):
    db.runs()
    conn = sqlite3.connect(db.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(sqlite.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert db._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_older_schema_is_migrated(tmp_path, monkeypatch):
    path = tmp_path / "zoo.db"
    with SQLiteStore(path) as db:
        db.create_run(make_record("old"))
    monkeypatch.setattr(
        sqlite, "MIGRATIONS", [*sqlite.MIGRATIONS, ("ALTER TABLE runs ADD COLUMN note TEXT",)]
    )
    with SQLiteStore(path) as db:
        assert db.get("old").model == "cnn"
        db.create_run(make_record("new"))
        assert [r.run_id for r in db.runs()] == ["old", "new"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(sqlite.MIGRATIONS)
    assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "zoo.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(sqlite.MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade zoo-core"):
        SQLiteStore(path).runs()


def test_corrupted_file_is_reported_and_left_alone(tmp_path):
    path = tmp_path / "zoo.db"
    garbage = random.Random(0).randbytes(8192)
    path.write_bytes(garbage)
    for action in (lambda db: db.runs(), lambda db: db.create_run(make_record("r"))):
        with pytest.raises(StoreError, match="not a readable SQLite database") as excinfo:
            action(SQLiteStore(path))
        assert str(path) in str(excinfo.value)
        assert "move it aside" in str(excinfo.value)
    assert path.read_bytes() == garbage
    assert [p.name for p in tmp_path.iterdir()] == ["zoo.db"]


def test_foreign_sqlite_file_is_left_alone(tmp_path):
    path = tmp_path / "zoo.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a zoo results store"):
        SQLiteStore(path).runs()
    assert path.read_bytes() == before


def test_unwritable_location_suggests_zoo_home(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="ZOO_HOME") as excinfo:
        SQLiteStore(blocker / "home" / "zoo.db").runs()
    assert str(blocker / "home" / "zoo.db") in str(excinfo.value)


def test_store_module_does_not_import_tensorflow():
    code = ("import sys, zoo_core.store, zoo_core.store.sqlite, zoo_core.results.leaderboard, "
            "zoo_core.paths; "
            "assert not any(m.split('.')[0] in ('tensorflow', 'click') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- several processes at once -----------------------------------------------------------------

WORKERS, RUNS_PER_WORKER, EPOCHS = 4, 25, 3


def _write_runs(db: SQLiteStore, worker: int) -> None:
    """Create, train (epochs) and finish RUNS_PER_WORKER runs through an inherited Store."""
    for i in range(RUNS_PER_WORKER):
        run_id = f"w{worker}-r{i:02d}"
        db.create_run(make_record(run_id, seed=i))
        for epoch in range(1, EPOCHS + 1):
            db.add_epoch(run_id, epoch, train_loss=1.0 / epoch, val_accuracy=0.5 + epoch / 10)
        db.finish_run(run_id, status="completed", test_accuracy=0.9,
                      finished_at=utc_now())


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_concurrent_writers_lose_nothing(tmp_path):
    db = SQLiteStore(tmp_path / "zoo.db")
    assert db.runs() == []  # the parent's connection is open before the fork
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_write_runs, args=(db, w)) for w in range(WORKERS)]
    for worker in workers:
        worker.start()
    seen = 0
    while any(worker.is_alive() for worker in workers):
        count = len(db.runs())
        assert count >= seen
        seen = count
        time.sleep(0.005)
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * WORKERS

    runs = db.runs()
    ids = [run.run_id for run in runs]
    assert len(ids) == WORKERS * RUNS_PER_WORKER
    assert len(set(ids)) == len(ids)
    assert all(run.status == "completed" and run.epochs_run == EPOCHS for run in runs)
    assert all(len(db.epochs(run_id)) == EPOCHS for run_id in ids)
    db.close()


def _create_one(path: str, barrier, worker: int) -> None:
    barrier.wait()
    with SQLiteStore(path) as db:
        db.create_run(make_record(f"first-{worker}"))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_creating_a_new_store_at_once(tmp_path):
    path = str(tmp_path / "new" / "zoo.db")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    workers = [ctx.Process(target=_create_one, args=(path, barrier, w)) for w in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * WORKERS
    with SQLiteStore(path) as db:
        assert sorted(r.run_id for r in db.runs()) == [f"first-{w}" for w in range(WORKERS)]


# -- full disks, read-only files, odd paths ----------------------------------------------------


def _fill_up(db: SQLiteStore) -> None:
    """Cap the file at its current size: SQLite then fails every growth with SQLITE_FULL,
    "database or disk is full", exactly as on a full disk."""
    conn = db._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_is_a_store_error_and_earlier_runs_are_intact(db):
    db.create_run(make_record("before"))
    db.add_epoch("before", 1, val_accuracy=0.5)
    _fill_up(db)
    big = {"note": "x" * 20_000}
    with pytest.raises(StoreError) as excinfo:
        db.create_run(make_record("too-big", config=big))
    assert str(excinfo.value) == (
        f"results store {db.path} could not be opened or written: No space left on device "
        "(database or disk is full); earlier runs are intact: free some disk space, or set "
        "ZOO_HOME to a folder on a disk with room")
    with pytest.raises(StoreError, match="database or disk is full"):
        for epoch in range(2, 200):
            db.add_epoch("before", epoch, val_accuracy=0.5 + epoch / 1000)
    assert [r.run_id for r in db.runs()] == ["before"]
    assert not db._connection().in_transaction  # nothing left half-done
    db._connection().execute("PRAGMA max_page_count = 1073741823")  # space freed
    db.create_run(make_record("after", config=big))
    assert [r.run_id for r in db.runs()] == ["before", "after"]
    fresh = sqlite3.connect(db.path)  # what another process sees
    assert fresh.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    fresh.close()


class _FailingCommit:
    """A connection whose COMMIT fails as it does when the disk fills at the last moment."""

    def __init__(self, conn, message="database or disk is full"):
        self._conn, self.message = conn, message

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError(self.message)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_failed_commit_keeps_nothing_of_the_write(db):
    db.create_run(make_record("kept"))
    real = db._connection()
    db._conn = _FailingCommit(real)
    with pytest.raises(StoreError, match="could not be opened or written: No space left"):
        db.create_run(make_record("lost"))
    assert not real.in_transaction
    db._conn = real
    assert [r.run_id for r in db.runs()] == ["kept"]
    db.create_run(make_record("next"))  # the connection still works
    assert [r.run_id for r in db.runs()] == ["kept", "next"]


def test_a_read_only_store_says_what_to_do(db):
    db.create_run(make_record("r1"))
    db._connection().execute("PRAGMA query_only = ON")  # SQLITE_READONLY, as on a read-only file
    with pytest.raises(StoreError) as excinfo:
        db.finish_run("r1", status="failed")
    assert str(excinfo.value).startswith(f"cannot open or write the results store {db.path} (")
    assert str(excinfo.value).endswith("make its folder writable or set ZOO_HOME to a writable folder")
    assert db.get("r1").status == "running"


def test_zoo_home_under_a_file_names_the_file_in_the_way(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError) as excinfo:
        SQLiteStore(blocker / "home" / "zoo.db").runs()
    assert str(excinfo.value) == (
        f"cannot create the folder of the results store {blocker}/home/zoo.db ({blocker} is a "
        "file, not a folder): move that file aside, or set ZOO_HOME to another folder")


def test_a_folder_where_the_store_belongs_is_reported(tmp_path):
    (tmp_path / "zoo.db").mkdir()
    with pytest.raises(StoreError, match=r"zoo.db is a folder, not a file: move it aside"):
        SQLiteStore(tmp_path / "zoo.db").runs()


def test_zoo_home_is_absolute_and_expanded(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_HOME", "relative/home")
    assert paths.zoo_home() == tmp_path / "relative" / "home"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ZOO_HOME", "~/zoo")
    assert paths.zoo_home() == tmp_path / "zoo"


# -- migrations --------------------------------------------------------------------------------


def _version_1_file(path) -> None:
    """A store as zoo-core with schema version 1 wrote it, built by hand (rollback journal)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sqlite.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO runs (run_id, status, model, dataset, plugin, plugin_version, zoo_version,"
        " tf_version, config, config_id, seed, data_checksums, split_sizes, epochs_run,"
        " best_epoch, test_accuracy, started_at, finished_at, run_dir) VALUES"
        " ('v1-run', 'completed', 'cnn', 'fashion', 'zoo-cnn', '0.0.9', '0.0.9', '2.15.0',"
        " '{\"epochs\": 2}', 'abc', 3, '{}', '{\"train\": 55000}', 2, 2, 0.9, "
        " '2023-05-01T10:00:00+00:00', '2023-05-01T10:05:00+00:00', '/old/runs/v1-run')")
    for epoch in (1, 2):
        conn.execute("INSERT INTO epochs (run_id, epoch, val_accuracy) VALUES ('v1-run', ?, ?)",
                     (epoch, (80 + epoch) / 100))
    conn.execute("PRAGMA user_version = 1")
    conn.close()


V2 = ("ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''",
      "CREATE TABLE tags (run_id TEXT NOT NULL REFERENCES runs (run_id), tag TEXT NOT NULL)")


def test_a_version_1_store_is_migrated_and_its_data_survive(tmp_path, monkeypatch):
    path = tmp_path / "zoo.db"
    _version_1_file(path)
    monkeypatch.setattr(sqlite, "MIGRATIONS", [*sqlite.MIGRATIONS, V2])
    with SQLiteStore(path) as db:
        old = db.get("v1-run")
        assert (old.status, old.seed, old.test_accuracy, old.config) == ("completed", 3, 0.9, {"epochs": 2})
        assert [e["val_accuracy"] for e in db.epochs("v1-run")] == [0.81, 0.82]
        assert (old.tags, old.host, old.pid) == ([], "", None)  # migration 2's defaults
        db.create_run(make_record("v2-run"))
        db.add_epoch("v2-run", 1, val_accuracy=0.5)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(sqlite.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT run_id, note FROM runs ORDER BY rowid").fetchall() == [
        ("v1-run", ""), ("v2-run", "")]
    assert conn.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 0
    conn.close()


def test_a_migration_that_fails_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "zoo.db"
    _version_1_file(path)
    broken = (V2[0], "CREATE TABLE runs (oops TEXT)")  # the first statement works, then it fails
    monkeypatch.setattr(sqlite, "MIGRATIONS", [*sqlite.MIGRATIONS, broken])
    with pytest.raises(StoreError) as excinfo:
        SQLiteStore(path).runs()
    assert str(excinfo.value).startswith(
        f"cannot upgrade the results store {path} to schema version {len(sqlite.MIGRATIONS)} "
        "(table runs already exists);"
        " it is left as it was")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "note" not in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    conn = sqlite3.connect(path)  # what the version-1 zoo-core reads is intact
    assert conn.execute("SELECT test_accuracy FROM runs").fetchall() == [(0.9,)]
    conn.close()
    monkeypatch.undo()  # without the broken migration, this zoo-core upgrades it
    with SQLiteStore(path) as db:
        assert db.get("v1-run").test_accuracy == 0.9


def test_a_store_missing_a_table_is_reported(tmp_path):
    path = tmp_path / "zoo.db"
    _version_1_file(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE epochs")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"lacks part of its schema \(no such table: epochs\)"):
        SQLiteStore(path).epochs("v1-run")


# -- run management: delete, tags, latest (issue 18) ---------------------------------------------


def test_delete_run_removes_the_row_and_its_epochs(store):
    store.create_run(make_record("keep"))
    store.create_run(make_record("gone"))
    store.add_epoch("gone", 1, val_accuracy=0.5)
    store.delete_run("gone")
    assert [r.run_id for r in store.runs()] == ["keep"]
    assert store.epochs("gone") == []
    with pytest.raises(UnknownNameError, match="unknown run 'gone'"):
        store.delete_run("gone")
    store.create_run(make_record("gone"))  # the id is free again
    assert store.epochs("gone") == []


def test_delete_run_with_expect_deletes_only_a_run_that_still_has_those_fields(store):
    store.create_run(make_record("r1", host="h", pid=1))
    assert store.delete_run("r1", expect={"status": "running", "host": "h", "pid": 2}) is False
    assert store.delete_run("r1", expect={"status": "queued"}) is False
    assert store.get("r1").status == "running"  # kept
    with pytest.raises(ValueError, match="cannot expect run field.s. model"):
        store.delete_run("r1", expect={"model": "cnn"})
    store.queue_run(make_record("q", pid=None))
    assert store.delete_run("q", expect={"status": "queued", "pid": None}) is True
    assert store.delete_run("r1", expect={"status": "running", "host": "h", "pid": 1}) is True
    assert store.runs() == []


def test_mark_running_sets_the_owner_in_the_same_write_if_still_expected(store):
    store.create_run(make_record("r1", host="old", pid=1))
    store.finish_run("r1", status="interrupted", error="its process died")
    before = {"status": "interrupted", "host": "old", "pid": 1}
    assert store.mark_running("r1", host="new", pid=2, expect=before) is True
    got = store.get("r1")
    assert (got.status, got.error, got.host, got.pid) == ("running", None, "new", 2)
    # a second resume that read the run as interrupted does not take it over
    assert store.mark_running("r1", host="other", pid=3, expect=before) is False
    assert (store.get("r1").host, store.get("r1").pid) == ("new", 2)


def test_a_taken_over_owner_cannot_add_an_epoch(store):
    """The old owner's epoch write is fenced like mark_running and delete_run: once another
    process took the run over, its add_epoch writes no row and publishes nothing."""
    store.create_run(make_record("r1", host="old", pid=1))
    old = {"status": "running", "host": "old", "pid": 1}
    assert store.add_epoch("r1", 1, expect=old, val_accuracy=0.5) is True
    store.finish_run("r1", status="interrupted", error="its process died")
    assert store.mark_running("r1", host="new", pid=2, expect={**old, "status": "interrupted"})
    published = []
    assert store.add_epoch("r1", 2, expect=old, publish=lambda: published.append(2),
                           val_accuracy=0.6) is False
    assert [e["epoch"] for e in store.epochs("r1")] == [1] and published == []
    assert store.get("r1").epochs_run == 1
    assert store.add_epoch("r1", 2, expect={**old, "host": "new", "pid": 2},
                           val_accuracy=0.6) is True  # the new owner's is written


def test_tags_are_added_removed_listed_and_filtered(store):
    store.create_run(make_record("a"))
    store.create_run(make_record("b"))
    assert store.get("a").tags == []
    assert store.tag_run("a", add=["baseline", "v2", "baseline"]) == ["baseline", "v2"]
    assert store.tag_run("a", add=["x"], remove=["v2", "absent"]) == ["baseline", "x"]
    assert store.get("a").tags == ["baseline", "x"]
    assert [r.run_id for r in store.runs(tag="baseline")] == ["a"]
    assert store.runs(tag="v2") == []
    with pytest.raises(ValueError, match="invalid tag"):
        store.tag_run("a", add=["no spaces"])
    assert store.get("a").tags == ["baseline", "x"]
    with pytest.raises(UnknownNameError):
        store.tag_run("nope", add=["x"])
    with pytest.raises(ValueError, match="cannot update run field"):
        store.update_run("a", tags=["sneaky"])


def test_latest_is_the_most_recently_started_run(store):
    with pytest.raises(UnknownNameError, match="unknown run 'latest'"):
        store.get("latest")
    store.create_run(make_record("new", started_at="2024-02-01T00:00:00+00:00"))
    store.create_run(make_record("old", started_at="2024-01-01T00:00:00+00:00"))
    store.create_run(make_record("tie", started_at="2024-02-01T00:00:00+00:00"))
    assert store.get("latest").run_id == "tie"
    with pytest.raises(ValueError, match="'latest' cannot be a run id"):  # a reserved word
        store.create_run(make_record("latest"))
    assert store.get("latest").run_id == "tie"


def test_the_owner_is_recorded_and_updatable(store):
    store.create_run(make_record("r", host="box", pid=123))
    assert (store.get("r").host, store.get("r").pid) == ("box", 123)
    store.update_run("r", host="other", pid=456)
    assert (store.get("r").host, store.get("r").pid) == ("other", 456)


def test_a_version_1_postgresql_database_is_migrated_and_its_data_survive(postgresql_url):
    import psycopg

    from zoo_core.store import postgresql

    with psycopg.connect(postgresql_url, autocommit=True) as conn:
        for statement in postgresql.migrations()[0]:
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO runs (run_id, status, model, dataset, plugin, plugin_version,"
            " zoo_version, tf_version, config, config_id, seed, data_checksums, split_sizes,"
            " started_at) VALUES ('v1-run', 'completed', 'cnn', 'fashion', 'zoo-cnn', '0.0.9',"
            " '0.0.9', '2.15.0', '{\"epochs\": 2}', 'abc', 3, '{}', '{}',"
            " '2023-05-01T10:00:00+00:00')")
    with open_store(postgresql_url) as store:
        old = store.get("v1-run")
        assert (old.seed, old.config, old.tags, old.host, old.pid) == (3, {"epochs": 2}, [], "", None)
        assert store.version() == len(sqlite.MIGRATIONS)
        assert store.tag_run("v1-run", add=["kept"]) == ["kept"]
