"""The SQLite results store: one file holding every run and its per-epoch curves.

:class:`SQLiteStore` implements :class:`zoo_core.runs.store.Store`; it is the embedded
default, the file ``$ZOO_HOME/zoo.db``.

Several ``zoo run`` processes may write at once. The file is in WAL mode, every write is one
short ``BEGIN IMMEDIATE`` transaction, and a writer waits up to 30 s for the lock rather than
failing with "database is locked". A connection belongs to the process that opened it: after a
fork the child opens its own. Nothing here imports TensorFlow.

Failures are :class:`StoreError` lines naming the file and the fix, never SQLite tracebacks: a
write that fails (a full disk, a read-only file) is rolled back whole, so earlier runs are
intact; a file that is damaged, foreign or from a newer zoo-core is reported and never
modified; an older schema is upgraded in one transaction (``MIGRATIONS``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import functools
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from zoo_core import paths
from zoo_core.errors import StoreError, UnknownNameError, UsageError
from zoo_core.runs import sqlite_schema
from zoo_core.runs.records import (
    COLUMNS,
    JSON_FIELDS,
    LATEST,
    RunRecord,
    check_epoch_metrics,
    check_expect,
    check_fields,
    check_final_status,
    check_status,
    check_tags,
)
from zoo_core.train.metrics import EPOCH_METRICS

BUSY_TIMEOUT_S = 30.0

# The schema's migrations (read here at run time, so tests can append one).
MIGRATIONS = sqlite_schema.MIGRATIONS

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM runs"
_QUEUE_ORDER = "ORDER BY started_at, rowid"  # oldest first: also the order of runs()

# Connections inherited across a fork. SQLite forbids using (even closing) them in the child,
# so they are kept referenced here and never garbage-collected.
_INHERITED: list[sqlite3.Connection] = []


def _encode(name: str, value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if name in JSON_FIELDS else value


def _from_row(row: sqlite3.Row) -> RunRecord:
    values = {name: row[name] for name in COLUMNS}
    for name in JSON_FIELDS:
        values[name] = json.loads(values[name])
    return RunRecord(**values)


def _has(conn: sqlite3.Connection, run_id: str, expect: Mapping[str, Any] | None) -> bool:
    """Whether the run has the ``expect`` fields (names already checked; None is NULL)."""
    if not expect:
        return True
    where = " AND ".join(f"{name} IS ?" for name in expect)
    return conn.execute(f"SELECT 1 FROM runs WHERE run_id = ? AND {where}",
                        (run_id, *expect.values())).fetchone() is not None


def _matches(value: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, pattern)


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL mode (a no-op once it is).

    Switching needs a moment of exclusive access, and SQLite reports "locked" for it at once,
    without waiting, while another process opens the same new file: so retry until the timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short write transaction; the write lock is taken at the start (waiting if busy)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")  # may fail too (a full disk): then nothing of it is kept
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _translate_errors(method):
    """Turn SQLite's errors about the file itself into a StoreError that says what to do."""

    @functools.wraps(method)
    def wrapper(self: SQLiteStore, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            error = self._store_error(exc)
            if error is None:
                raise
            raise error from exc

    return wrapper


class SQLiteStore:
    """The SQLite results store. Opens lazily; use as a context manager or call close().

    The methods keep the contracts written down in :class:`zoo_core.runs.store.Store`.

    Args:
        path: the database file; defaults to ``paths.store_path()`` (``$ZOO_HOME/zoo.db``).
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else paths.store_path()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close this process's connection (a later call reopens it)."""
        if self._conn is not None:
            if self._pid == os.getpid():
                self._conn.close()
            else:
                _INHERITED.append(self._conn)
            self._conn = None

    @_translate_errors
    def check(self) -> None:
        """Open the file now, creating or upgrading it (see Store.check)."""
        self._connection()

    # -- writing -----------------------------------------------------------------------------

    @_translate_errors
    def create_run(self, record: RunRecord) -> None:
        """Insert a new run with the record's status (see Store.create_run)."""
        check_status(record.status)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (record.run_id,)).fetchone():
                raise StoreError(
                    f"run {record.run_id!r} is already in the results store {self.path}"
                )
            conn.execute(
                f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                [_encode(name, getattr(record, name)) for name in COLUMNS],
            )

    def queue_run(self, record: RunRecord) -> None:
        """Insert a new run with status "queued" (see Store.queue_run)."""
        self.create_run(dataclasses.replace(record, status="queued"))

    @_translate_errors
    def claim_run(self) -> RunRecord | None:
        """Make the oldest queued run running and return it (see Store.claim_run).

        Atomic across processes: the select and the update are one ``BEGIN IMMEDIATE``
        transaction, which holds the file's write lock from its start, so no two claimers
        read the same queued run.
        """
        with self._write() as conn:
            row = conn.execute(
                f"{_SELECT} WHERE status = 'queued' {_QUEUE_ORDER} LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (row["run_id"],))
        return dataclasses.replace(_from_row(row), status="running")

    @_translate_errors
    def add_epoch(self, run_id: str, epoch: int, **metrics: float | None) -> None:
        """Record (or replace) one epoch's metrics (see Store.add_epoch)."""
        check_epoch_metrics(metrics)
        names = ["run_id", "epoch", *metrics]
        marks = ", ".join("?" * len(names))
        with self._write() as conn:
            self._require(conn, run_id)
            conn.execute(
                f"INSERT OR REPLACE INTO epochs ({', '.join(names)}) VALUES ({marks})",
                [run_id, epoch, *metrics.values()],
            )
            conn.execute(
                "UPDATE runs SET epochs_run = (SELECT COUNT(*) FROM epochs WHERE run_id = ?)"
                " WHERE run_id = ?",
                (run_id, run_id),
            )

    @_translate_errors
    def mark_running(self, run_id: str, *, host: str | None = None, pid: int | None = None,
                     expect: Mapping[str, Any] | None = None) -> bool:
        """Set the status to running, the owner, and clear the error, in one write, if the run
        still has the ``expect`` fields (see Store.mark_running)."""
        check_expect(expect)
        with self._write() as conn:
            self._require(conn, run_id)
            if not _has(conn, run_id, expect):
                return False
            owner = {} if host is None and pid is None else {"host": host or "", "pid": pid}
            fields = {"status": "running", "error": None, **owner}
            conn.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} "
                         "WHERE run_id = ?", (*fields.values(), run_id))
        return True

    def finish_run(self, run_id: str, *, status: str, **fields: Any) -> None:
        """Set a final status and the results (see Store.finish_run)."""
        check_final_status(status)
        if fields:
            check_fields(fields)
        self._set(run_id, {"status": status, **fields})

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Update fields other than the status and the identity (see Store.update_run)."""
        check_fields(fields)
        self._set(run_id, fields)

    @_translate_errors
    def delete_run(self, run_id: str, *, expect: Mapping[str, Any] | None = None) -> bool:
        """Remove a run's row, its epochs and its tags, if it still has the ``expect``
        fields (see Store.delete_run)."""
        check_expect(expect)
        with self._write() as conn:
            self._require(conn, run_id)
            if not _has(conn, run_id, expect):
                return False
            conn.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        return True

    @_translate_errors
    def tag_run(self, run_id: str, add=(), remove=()) -> list[str]:
        """Add and remove tags in one write; the run's tags after it (see Store.tag_run)."""
        add, remove = check_tags(add), check_tags(remove)
        with self._write() as conn:
            self._require(conn, run_id)
            row = conn.execute("SELECT tags FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            tags = sorted((set(json.loads(row[0])) | set(add)) - set(remove))
            conn.execute("UPDATE runs SET tags = ? WHERE run_id = ?", (json.dumps(tags), run_id))
        return tags

    # -- reading -----------------------------------------------------------------------------

    @_translate_errors
    def get(self, run_id: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with it (see Store.get)."""
        conn = self._connection()
        rows = conn.execute(f"{_SELECT} WHERE run_id = ?", (run_id,)).fetchall()
        if not rows and run_id == LATEST:
            rows = conn.execute(
                f"{_SELECT} ORDER BY started_at DESC, rowid DESC LIMIT 1"
            ).fetchall()
        elif not rows and run_id:
            rows = conn.execute(
                f"{_SELECT} WHERE substr(run_id, 1, ?) = ? {_QUEUE_ORDER}",
                (len(run_id), run_id),
            ).fetchall()
        if not rows:
            raise UnknownNameError("run", run_id, self._ids(conn))
        if len(rows) > 1:
            shown = [row["run_id"] for row in rows[:10]]
            more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
            raise UsageError(
                f"run id prefix {run_id!r} is ambiguous: it matches {', '.join(shown)}{more}; "
                "give more characters"
            )
        return _from_row(rows[0])

    @_translate_errors
    def runs(
        self, model: str | None = None, dataset: str | None = None, status: str | None = None,
        tag: str | None = None,
    ) -> list[RunRecord]:
        """The runs, oldest first, optionally filtered (see Store.runs)."""
        query, args = _SELECT, ()
        if status is not None:
            check_status(status)
            query, args = f"{query} WHERE status = ?", (status,)
        rows = self._connection().execute(f"{query} {_QUEUE_ORDER}", args)
        records = [
            _from_row(row)
            for row in rows
            if _matches(row["model"], model) and _matches(row["dataset"], dataset)
        ]
        return records if tag is None else [r for r in records if tag in r.tags]

    @_translate_errors
    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """The run's per-epoch metrics in epoch order (see Store.epochs)."""
        rows = self._connection().execute(
            f"SELECT epoch, {', '.join(EPOCH_METRICS)} FROM epochs WHERE run_id = ? ORDER BY epoch",
            (run_id,),
        )
        return [dict(row) for row in rows]

    # -- internals ---------------------------------------------------------------------------

    @_translate_errors
    def _set(self, run_id: str, fields: dict[str, Any]) -> None:
        """Write already-checked fields of one existing run."""
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [_encode(name, value) for name, value in fields.items()]
        with self._write() as conn:
            self._require(conn, run_id)
            conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values, run_id])

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened (and the schema migrated) on first use."""
        if self._conn is not None and self._pid != os.getpid():
            _INHERITED.append(self._conn)
            self._conn = None
        if self._conn is None:
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return _transaction(self._connection())

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of the results store {self.path} "
                f"({paths.why_not(exc, self.path.parent)}): {paths.remedy(exc)}"
            ) from None
        if self.path.is_dir():
            raise StoreError(
                f"results store {self.path} is a folder, not a file: move it aside, "
                "or set ZOO_HOME to another folder"
            )
        # timeout= is SQLite's busy_timeout: wait for a lock instead of failing.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            self._checked_version(conn)  # reads only: a file we refuse is left untouched
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the file's schema up to date."""
        latest = len(MIGRATIONS)
        if self._checked_version(conn) == latest:
            return
        try:
            with _transaction(conn):  # all or nothing: SQLite's schema changes are transactional
                version = self._checked_version(conn)  # another process may have migrated it
                for migration in MIGRATIONS[version:]:
                    for statement in migration:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {latest}")
        except sqlite3.DatabaseError as exc:
            error = self._store_error(exc)
            if error is not None:
                raise error from exc
            raise StoreError(
                f"cannot upgrade the results store {self.path} to schema version {latest} "
                f"({exc}); it is left as it was: report this, and use the zoo-core that "
                "wrote it meanwhile"
            ) from exc

    def _checked_version(self, conn: sqlite3.Connection) -> int:
        """The file's schema version; refuses a newer zoo-core's file or someone else's."""
        # One statement, so both come from the same snapshot of the file.
        version, has_tables = conn.execute(
            "SELECT user_version, EXISTS (SELECT 1 FROM sqlite_master) FROM pragma_user_version"
        ).fetchone()
        latest = len(MIGRATIONS)
        if version > latest:
            raise StoreError(
                f"results store {self.path} has schema version {version}, but this zoo-core "
                f"knows only up to {latest}: upgrade zoo-core (pip install -U zoo-core)"
            )
        if version == 0 and has_tables:
            raise StoreError(
                f"{self.path} is a SQLite database but not a zoo results store: "
                "move it aside and zoo will start a new one"
            )
        return version

    def _require(self, conn: sqlite3.Connection, run_id: str) -> None:
        if not conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            raise UnknownNameError("run", run_id, self._ids(conn))

    @staticmethod
    def _ids(conn: sqlite3.Connection) -> list[str]:
        return [row[0] for row in conn.execute("SELECT run_id FROM runs")]

    def _store_error(self, exc: sqlite3.DatabaseError) -> StoreError | None:
        """The StoreError for an error about the file itself; None for any other error."""
        message = str(exc)
        if type(exc) is sqlite3.DatabaseError:  # SQLITE_NOTADB, SQLITE_CORRUPT
            return StoreError(
                f"results store {self.path} is not a readable SQLite database ({message}): "
                "move it aside and zoo will start a new one"
            )
        if not isinstance(exc, sqlite3.OperationalError):
            return None
        if "locked" in message or "busy" in message:
            return StoreError(
                f"results store {self.path} stayed locked by another process for "
                f"{BUSY_TIMEOUT_S:.0f} s ({message}): try again"
            )
        if "full" in message:  # SQLITE_FULL: "database or disk is full"
            return StoreError(
                f"results store {self.path} could not be written ({message}); earlier runs are "
                f"intact: {paths.remedy(OSError(errno.ENOSPC, message))}"
            )
        if any(text in message for text in ("readonly", "unable to open", "disk I/O")):
            return StoreError(
                f"cannot open or write the results store {self.path} ({message}): "
                "make its folder writable or set ZOO_HOME to a writable folder"
            )
        if "no such table" in message or "no such column" in message:
            return StoreError(
                f"results store {self.path} lacks part of its schema ({message}): something "
                "other than zoo changed it; move it aside and zoo will start a new one"
            )
        return None
