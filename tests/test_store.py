"""The results store: records, lookups, schema versions, damaged files, concurrent writers."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import subprocess
import sys
import time

import platformdirs
import pytest

from zoo_core import paths, store
from zoo_core.errors import StoreError, UnknownNameError, UsageError
from zoo_core.store import RunRecord, Store, config_id


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


@pytest.fixture
def db(tmp_path):
    with Store(tmp_path / "home" / "zoo.db") as opened:
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
    with Store() as db:
        db.create_run(make_record("r1"))
    assert (tmp_path / "home" / "zoo.db").is_file()


# -- records -----------------------------------------------------------------------------------


def test_config_id_is_canonical():
    assert config_id({"a": 1, "b": 2}) == config_id({"b": 2, "a": 1})
    assert config_id({"a": 1}) != config_id({"a": 2})
    assert len(config_id({})) == 10
    assert make_record("r").config_id == config_id(make_record("r").config)
    assert make_record("r", config_id="given").config_id == "given"


def test_create_add_epoch_finish_get(db):
    record = make_record("20240101-cnn-abc")
    db.create_run(record)
    assert db.get("20240101-cnn-abc") == record

    db.add_epoch(record.run_id, 1, train_loss=0.9, train_accuracy=0.7, val_loss=0.8,
                 val_accuracy=0.72, lr=0.001, seconds=2.5)
    db.add_epoch(record.run_id, 2, train_loss=0.5, val_accuracy=0.8)
    db.finish_run(record.run_id, status="completed", test_accuracy=0.91, test_loss=0.3,
                  best_epoch=2, params=12345, finished_at="2024-01-01T00:10:00+00:00")

    got = db.get(record.run_id)
    assert got.status == "completed"
    assert got.test_accuracy == 0.91
    assert got.best_epoch == 2
    assert got.params == 12345
    assert got.epochs_run == 2
    assert got.config == record.config
    assert got.split_sizes == record.split_sizes
    epochs = db.epochs(record.run_id)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0] == {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.7, "val_loss": 0.8,
                         "val_accuracy": 0.72, "lr": 0.001, "seconds": 2.5}
    assert epochs[1]["train_accuracy"] is None
    assert got.to_dict()["test_accuracy"] == 0.91


def test_add_epoch_replaces_a_repeated_epoch(db):
    db.create_run(make_record("r1"))
    db.add_epoch("r1", 1, val_accuracy=0.5)
    db.add_epoch("r1", 1, val_accuracy=0.6)
    assert [e["val_accuracy"] for e in db.epochs("r1")] == [0.6]
    assert db.get("r1").epochs_run == 1


def test_bad_writes_are_refused(db):
    db.create_run(make_record("r1"))
    with pytest.raises(StoreError, match="already"):
        db.create_run(make_record("r1"))
    with pytest.raises(ValueError, match="bogus"):
        db.finish_run("r1", bogus=1)
    with pytest.raises(ValueError, match="model"):
        db.finish_run("r1", model="other")
    with pytest.raises(ValueError, match="status"):
        db.finish_run("r1", status="exploded")
    with pytest.raises(ValueError, match="bogus"):
        db.add_epoch("r1", 1, bogus=1.0)
    with pytest.raises(UnknownNameError):
        db.finish_run("nope", status="failed")
    with pytest.raises(UnknownNameError):
        db.add_epoch("nope", 1, val_accuracy=0.1)
    assert db.get("r1").status == "running"
    assert db.epochs("r1") == []


def test_prefix_lookup(db):
    for run_id in ("abc123", "abd456", "xyz789"):
        db.create_run(make_record(run_id))
    assert db.get("x").run_id == "xyz789"
    assert db.get("abc").run_id == "abc123"
    with pytest.raises(UsageError, match="ambiguous") as excinfo:
        db.get("ab")
    assert "abc123" in str(excinfo.value) and "abd456" in str(excinfo.value)
    assert not isinstance(excinfo.value, UnknownNameError)


def test_unknown_run_suggests_a_close_id(db):
    db.create_run(make_record("abc123"))
    with pytest.raises(UnknownNameError, match="did you mean 'abc123'"):
        db.get("abd123")
    with pytest.raises(UnknownNameError):
        db.get("")


def test_runs_filters_and_order(db):
    specs = [
        ("r1", "cnn", "fashion", "2024-01-01T00:00:03+00:00", "completed"),
        ("r2", "rnn", "fashion", "2024-01-01T00:00:01+00:00", "completed"),
        ("r3", "lstm", "mnist", "2024-01-01T00:00:02+00:00", "failed"),
        ("r4", "cnn", "mnist", "2024-01-01T00:00:00+00:00", "running"),
    ]
    for run_id, model, dataset, started_at, status in specs:
        db.create_run(make_record(run_id, model=model, dataset=dataset,
                                  started_at=started_at, status=status))

    def ids(**filters):
        return [r.run_id for r in db.runs(**filters)]

    assert ids() == ["r4", "r2", "r3", "r1"]
    assert ids(model="cnn") == ["r4", "r1"]
    assert ids(model="*nn") == ["r4", "r2", "r1"]
    assert ids(model="[rl]*") == ["r2", "r3"]
    assert ids(dataset="mn?st") == ["r4", "r3"]
    assert ids(model="cnn", dataset="fashion") == ["r1"]
    assert ids(status="completed") == ["r2", "r1"]
    assert ids(model="CNN") == []
    with pytest.raises(ValueError):
        db.runs(status="done")


# -- schema and damaged files ------------------------------------------------------------------


def test_new_store_is_wal_at_the_latest_version(db):
    db.runs()
    conn = sqlite3.connect(db.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(store.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert db._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_older_schema_is_migrated(tmp_path, monkeypatch):
    path = tmp_path / "zoo.db"
    with Store(path) as db:
        db.create_run(make_record("old"))
    monkeypatch.setattr(
        store, "MIGRATIONS", [*store.MIGRATIONS, ("ALTER TABLE runs ADD COLUMN note TEXT",)]
    )
    with Store(path) as db:
        assert db.get("old").model == "cnn"
        db.create_run(make_record("new"))
        assert [r.run_id for r in db.runs()] == ["old", "new"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "zoo.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(store.MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade zoo-core"):
        Store(path).runs()


def test_corrupted_file_is_reported_and_left_alone(tmp_path):
    path = tmp_path / "zoo.db"
    garbage = random.Random(0).randbytes(8192)
    path.write_bytes(garbage)
    for action in (lambda db: db.runs(), lambda db: db.create_run(make_record("r"))):
        with pytest.raises(StoreError, match="not a readable SQLite database") as excinfo:
            action(Store(path))
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
        Store(path).runs()
    assert path.read_bytes() == before


def test_unwritable_location_suggests_zoo_home(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="ZOO_HOME") as excinfo:
        Store(blocker / "home" / "zoo.db").runs()
    assert str(blocker / "home" / "zoo.db") in str(excinfo.value)


def test_store_module_does_not_import_tensorflow():
    code = ("import sys, zoo_core.store, zoo_core.leaderboard, zoo_core.paths; "
            "assert not any(m.split('.')[0] == 'tensorflow' for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- several processes at once -----------------------------------------------------------------

WORKERS, RUNS_PER_WORKER, EPOCHS = 4, 25, 3


def _write_runs(db: Store, worker: int) -> None:
    """Create, train (epochs) and finish RUNS_PER_WORKER runs through an inherited Store."""
    for i in range(RUNS_PER_WORKER):
        run_id = f"w{worker}-r{i:02d}"
        db.create_run(make_record(run_id, seed=i))
        for epoch in range(1, EPOCHS + 1):
            db.add_epoch(run_id, epoch, train_loss=1.0 / epoch, val_accuracy=0.5 + epoch / 10)
        db.finish_run(run_id, status="completed", test_accuracy=0.9,
                      finished_at=store.utc_now())


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_concurrent_writers_lose_nothing(tmp_path):
    db = Store(tmp_path / "zoo.db")
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
    with Store(path) as db:
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
    with Store(path) as db:
        assert sorted(r.run_id for r in db.runs()) == [f"first-{w}" for w in range(WORKERS)]


# -- full disks, read-only files, odd paths ----------------------------------------------------


def _fill_up(db: Store) -> None:
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
        f"results store {db.path} could not be written (database or disk is full); earlier runs "
        "are intact: free some disk space, or set ZOO_HOME to a folder on a disk with room")
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
    with pytest.raises(StoreError, match="could not be written"):
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
        Store(blocker / "home" / "zoo.db").runs()
    assert str(excinfo.value) == (
        f"cannot create the folder of the results store {blocker}/home/zoo.db ({blocker} is a "
        "file, not a folder): move that file aside, or set ZOO_HOME to another folder")


def test_a_folder_where_the_store_belongs_is_reported(tmp_path):
    (tmp_path / "zoo.db").mkdir()
    with pytest.raises(StoreError, match=r"zoo.db is a folder, not a file: move it aside"):
        Store(tmp_path / "zoo.db").runs()


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
    for statement in store.MIGRATIONS[0]:
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
    monkeypatch.setattr(store, "MIGRATIONS", [*store.MIGRATIONS, V2])
    with Store(path) as db:
        old = db.get("v1-run")
        assert (old.status, old.seed, old.test_accuracy, old.config) == ("completed", 3, 0.9, {"epochs": 2})
        assert [e["val_accuracy"] for e in db.epochs("v1-run")] == [0.81, 0.82]
        db.create_run(make_record("v2-run"))
        db.add_epoch("v2-run", 1, val_accuracy=0.5)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT run_id, note FROM runs ORDER BY rowid").fetchall() == [
        ("v1-run", ""), ("v2-run", "")]
    assert conn.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 0
    conn.close()


def test_a_migration_that_fails_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "zoo.db"
    _version_1_file(path)
    broken = (V2[0], "CREATE TABLE runs (oops TEXT)")  # the first statement works, then it fails
    monkeypatch.setattr(store, "MIGRATIONS", [*store.MIGRATIONS, broken])
    with pytest.raises(StoreError) as excinfo:
        Store(path).runs()
    assert str(excinfo.value).startswith(
        f"cannot upgrade the results store {path} to schema version 2 (table runs already exists);"
        " it is left as it was")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "note" not in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:1])
    with Store(path) as db:  # the version-1 zoo-core still reads it
        assert db.get("v1-run").test_accuracy == 0.9


def test_a_store_missing_a_table_is_reported(tmp_path):
    path = tmp_path / "zoo.db"
    _version_1_file(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE epochs")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"lacks part of its schema \(no such table: epochs\)"):
        Store(path).epochs("v1-run")
