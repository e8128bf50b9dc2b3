"""The PostgreSQL results store: one database that a team's machines all record runs in.

:class:`PostgreSQLStore` implements :class:`zoo_core.store.Store` through psycopg 3 (the
optional extra ``zoo-core[postgresql]``); :func:`zoo_core.store.open_store` opens it for
a ``postgresql://`` URL (``ZOO_STORE``, ``zoo --store URL``). This module is the only one that
imports psycopg, and it is imported only when such a store is opened.

The schema is SQLite's (:mod:`zoo_core.store.schema`), migration for migration, with
the few spellings PostgreSQL needs (:func:`migrations`); the version is kept in a
``schema_version`` table, and an upgrade runs in one transaction under an advisory lock, so
concurrent first openings migrate once. Every write is one transaction; the claim of a queued
run selects it ``FOR UPDATE SKIP LOCKED``, and a write that checks a run's fields first locks
its row. Failures are :class:`StoreError` lines naming the server (password masked) and the
fix, never psycopg tracebacks.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from zoo_core.errors import StoreError, first_line, without_password
from zoo_core.store import ranking, schema
from zoo_core.store.sql import SQLStore

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.rows import dict_row
except ImportError:  # pragma: no cover - exercised by open_store's message
    psycopg = None

CONNECT_TIMEOUT_S = 10
# What PostgreSQL spells differently in the shared migrations: SQLite's REAL is 8 bytes,
# PostgreSQL's 4 (DOUBLE PRECISION is 8) ...
_SPELLINGS = ((" REAL", " DOUBLE PRECISION"),)
# ... and SQLite numbers rows itself (rowid, the order runs were added in): a column here.
_EXTRA = {0: ("ALTER TABLE runs ADD COLUMN rowid BIGSERIAL",)}
_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
_MIGRATION_LOCK = 0x7A6F6F  # pg_advisory_xact_lock key: "zoo"


def migrations() -> list[tuple[str, ...]]:
    """The SQLite migrations (``schema.MIGRATIONS``) as PostgreSQL runs them."""
    result = []
    for index, migration in enumerate(schema.MIGRATIONS):
        statements = []
        for statement in migration:
            for sqlite_spelling, postgresql_spelling in _SPELLINGS:
                statement = statement.replace(sqlite_spelling, postgresql_spelling)
            statements.append(statement)
        result.append((*statements, *_EXTRA.get(index, ())))
    return result


class PostgreSQLStore(SQLStore):
    """The PostgreSQL results store at ``url`` (``postgresql://user@host:port/db``). Opens
    lazily; use as a context manager or call close(). The password is best left out of the
    URL: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass``."""

    _CLAIM_LOCK = "FOR UPDATE SKIP LOCKED"
    _ROW_LOCK = "FOR UPDATE"
    _IS = "IS NOT DISTINCT FROM"
    _DIALECT = ranking.POSTGRESQL
    _DB_ERROR = psycopg.Error if psycopg is not None else Exception

    def __init__(self, url: str):
        if psycopg is None:
            raise StoreError(
                f"results store {without_password(url)}: the PostgreSQL store needs psycopg: "
                "pip install 'zoo-core[postgresql]'"
            )
        self.url = url
        self.name = without_password(url)
        self._conn = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def version(self) -> int:
        """The schema version of the database (after opening, and so migrating, it)."""
        return self._version(self._connection())

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _connection(self):
        if self._conn is not None and self._pid == os.getpid() and self._conn.closed:
            self._conn = None  # lost (the server restarted): connect again
        return super()._connection()

    @contextlib.contextmanager
    def _transaction(self, conn) -> Iterator[Any]:
        with conn.transaction():
            yield conn

    def _open(self):
        try:
            conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                   connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the results store {self.name} ({first_line(exc)}): check "
                "that the server runs and the URL's host, port, user and database; the "
                "password comes from PGPASSWORD or ~/.pgpass"
            ) from None
        try:
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _version(self, conn) -> int:
        """The schema version; refuses a newer zoo-core's database or someone else's."""
        row = conn.execute(
            "SELECT to_regclass('schema_version') IS NOT NULL AS versioned,"
            " to_regclass('runs') IS NOT NULL AS has_runs").fetchone()
        version = 0
        if row["versioned"]:
            found = conn.execute("SELECT max(version) AS v FROM schema_version").fetchone()
            version = found["v"] or 0
        latest = len(schema.MIGRATIONS)
        if version > latest:
            raise StoreError(
                f"results store {self.name} has schema version {version}, but this zoo-core "
                f"knows only up to {latest}: upgrade zoo-core (pip install -U zoo-core)"
            )
        if version == 0 and row["has_runs"]:
            raise StoreError(
                f"{self.name} has a table 'runs' but is not a zoo results store: "
                "give the URL of another database (or schema)"
            )
        return version

    def _migrate(self, conn) -> None:
        """Bring the database's schema up to date, in one transaction."""
        latest = len(schema.MIGRATIONS)
        if self._version(conn) == latest:
            return
        try:
            with conn.transaction():  # PostgreSQL's schema changes are transactional too
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                version = self._version(conn)  # another process may have migrated it
                conn.execute(_VERSION_TABLE)
                for migration in migrations()[version:]:
                    for statement in migration:
                        conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (latest,))
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot upgrade the results store {self.name} to schema version {latest} "
                f"({first_line(exc)}); it is left as it was: check that the user may create "
                "tables in the database, else report this"
            ) from None

    def _store_error(self, exc: BaseException) -> StoreError | None:
        """Every psycopg error as a StoreError line that says what to do."""
        text = first_line(exc)
        if isinstance(exc, pg_errors.UniqueViolation):
            return StoreError(f"that run is already in the results store {self.name} ({text})")
        if isinstance(exc, (pg_errors.UndefinedTable, pg_errors.UndefinedColumn)):
            return StoreError(
                f"results store {self.name} lacks part of its schema ({text}): something other "
                "than zoo changed it; run `zoo store migrate`, or point ZOO_STORE at a new database"
            )
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreError(
                f"results store {self.name} refused a write ({text}): grant the user "
                "SELECT, INSERT, UPDATE and DELETE on the zoo's tables"
            )
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(
                f"lost the connection to the results store {self.name} ({text}); what was "
                "being written is not kept: check the server, and try again"
            )
        return StoreError(f"results store {self.name}: {type(exc).__name__}: {text}: report this")
