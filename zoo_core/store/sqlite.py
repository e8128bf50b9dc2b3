"""The SQLite results store: one file holding every run and its per-epoch curves.

:class:`SQLiteStore` implements :class:`zoo_core.store.Store`; it is the embedded
default, the file ``$ZOO_HOME/zoo.db``.

Several ``zoo run`` processes may write at once. The file is in WAL mode, every write is one
short ``BEGIN IMMEDIATE`` transaction, and a writer waits up to 30 s for the lock rather than
failing with "database is locked". A connection belongs to the process that opened it: after a
fork the child opens its own. Nothing here imports TensorFlow.

Failures are :class:`StoreError` lines naming the file and the fix, never SQLite tracebacks: a
write that fails (a full disk, a read-only file) is rolled back whole, so earlier runs are
intact; a file that is damaged, foreign or from a newer zoo-core is reported and never
modified (before its first write, each process runs SQLite's ``quick_check`` on the file); an
older schema is upgraded in one transaction (``MIGRATIONS``).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Iterator

from zoo_core import paths
from zoo_core.errors import StoreError
from zoo_core.store import schema
from zoo_core.store.sql import SQLStore, translate_errors

BUSY_TIMEOUT_S = 30.0
FULL_BELOW = 1 << 20  # bytes free under which a disk I/O error is taken for a full disk

# The schema's migrations (read here at run time, so tests can append one).
MIGRATIONS = schema.MIGRATIONS

# The store files this process found intact before its first write: (pid, real path).
_INTACT: set[tuple[int, str]] = set()


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


class SQLiteStore(SQLStore):
    """The SQLite results store. Opens lazily; use as a context manager or call close().

    The methods (:class:`zoo_core.store.sql.SQLStore`'s) keep the contracts written down in
    :class:`zoo_core.store.Store`.

    Args:
        path: the database file; defaults to ``paths.store_path()`` (``$ZOO_HOME/zoo.db``).
    """

    _DB_ERROR = sqlite3.DatabaseError

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else paths.store_path()
        self.name = str(self.path)
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self.full_disk = False  # opened read-only: the disk is full (see _snapshot)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @translate_errors
    def check(self) -> None:
        """Open the store now, creating or upgrading its schema, and check that the file is
        intact and can be written (see Store.check): a store about to be written is checked
        before any work."""
        conn = self._connection()
        if self.full_disk:
            raise self._store_error(sqlite3.OperationalError("disk I/O error"))
        self._check_intact(conn)

    def artifacts(self) -> Path:
        """``ZOO_ARTIFACTS`` when set, else the ``runs`` folder beside the file, where a zoo
        whose home holds this file keeps its run folders (the default layout: a store read
        with ``--store`` from elsewhere still finds them)."""
        if os.environ.get(paths.ARTIFACTS_ENV):
            return paths.runs_dir()
        return self.path.absolute().parent / "runs"

    def version(self) -> int:
        """The file's schema version (after opening, and so migrating, it)."""
        return self._checked_version(self._connection())

    def _transaction(self, conn: sqlite3.Connection):
        if self.full_disk:  # opened read-only (_snapshot): the same words as the open's
            raise self._store_error(sqlite3.OperationalError("disk I/O error"))
        self._check_intact(conn)
        return _transaction(conn)

    def _check_intact(self, conn: sqlite3.Connection) -> None:
        """Before the first write of this process to this file: SQLite's ``quick_check``
        (every page and b-tree, not the indexes' contents: linear in the file's size, about
        60 ms for 10,000 runs of 10 epochs, ``benchmarks/store_check.py``), so that a damaged
        store is never written to."""
        key = (os.getpid(), os.path.realpath(self.path))
        if key in _INTACT:
            return
        try:
            rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.DatabaseError as exc:  # damaged beyond what quick_check can walk
            rows = [str(exc)]
        if rows != ["ok"]:
            raise StoreError(
                f"results store {self.path} is damaged ({'; '.join(rows)[:200]}), so zoo does "
                "not write to it: move it aside and zoo will start a new one"
            )
        _INTACT.add(key)

    def _metric(self, value: float | None):
        """A NaN as the text 'nan': SQLite would store NULL, which reads as "not measured"."""
        return "nan" if isinstance(value, float) and math.isnan(value) else value

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
        except sqlite3.OperationalError as exc:
            conn.close()
            snapshot = self._snapshot(exc)
            if snapshot is None:
                raise
            return snapshot
        except BaseException:
            conn.close()
            raise
        self.full_disk = False
        return conn

    def _snapshot(self, exc: sqlite3.OperationalError) -> sqlite3.Connection | None:
        """On a full disk, where SQLite cannot make the WAL index it needs to open the file,
        a read-only view of the file as it is, so that reading commands (``zoo leaderboard``)
        still work; every write is refused (:meth:`_transaction`). Only when no write-ahead
        log holds data not yet in the file, and its schema is up to date; else None."""
        wal = self.path.with_name(self.path.name + "-wal")
        if "disk I/O" not in str(exc) or not self._disk_full() or (
                wal.exists() and wal.stat().st_size > 0):
            return None
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?immutable=1"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            if self._checked_version(conn) == len(MIGRATIONS):
                self.full_disk = True
                return conn
        except sqlite3.DatabaseError:
            pass
        conn.close()
        return None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the file's schema up to date."""
        latest = len(MIGRATIONS)
        if self._checked_version(conn) == latest:
            return
        self._check_intact(conn)
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

    def _disk_full(self) -> bool:
        """Whether the disk holding the store has (almost) no room left: SQLite reports a
        full disk as a mere "disk I/O error" when it cannot grow its WAL index."""
        try:
            return shutil.disk_usage(self.path.parent).free < FULL_BELOW
        except OSError:
            return False

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
        if "full" in message or ("disk I/O" in message and self._disk_full()):
            # SQLITE_FULL ("database or disk is full"), or an I/O error (SQLite's own reason,
            # such as growing the WAL index at open) on a disk with no room left
            return StoreError(
                f"results store {self.path} could not be opened or written: No space left on "
                f"device ({message}); earlier runs are intact: "
                f"{paths.remedy(OSError(errno.ENOSPC, message))}"
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
