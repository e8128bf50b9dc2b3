"""What the SQL store backends share: :class:`SQLStore`, the Store methods written once.

:class:`zoo_core.store.sqlite.SQLiteStore` and :class:`zoo_core.store.postgresql.PostgreSQLStore`
subclass it and supply only what differs between the two databases, each named here:

- ``_open()``: a new connection of this process, its schema migrated;
- ``_transaction(conn)``: one short write transaction (SQLite ``BEGIN IMMEDIATE``,
  PostgreSQL a ``BEGIN``/``COMMIT`` block);
- ``_CLAIM_LOCK``: what the claim's select appends (PostgreSQL ``FOR UPDATE SKIP LOCKED``);
- ``_ROW_LOCK``: what a write's select of its run appends (PostgreSQL ``FOR UPDATE``);
- ``_IS``: the null-safe comparison (SQLite ``IS``, PostgreSQL ``IS NOT DISTINCT FROM``);
- ``_DIALECT``: the leaderboard query's spellings (:class:`zoo_core.store.ranking.Dialect`);
- ``_DB_ERROR`` and ``_store_error(exc)``: the driver's errors, and which of them are about
  the store itself (then a StoreError line naming the store and the fix);
- ``_metric(value)``: an epoch's metric as stored (SQLite turns a NaN into NULL, so it
  keeps one as the text ``'nan'``; :meth:`SQLStore.epochs` reads it back as a float).

SQL is written with ``?`` placeholders; ``_sql()`` turns them into the driver's. Runs keep
the order they were added in a ``rowid`` column (SQLite's own; a serial column on
PostgreSQL). A connection belongs to the process that opened it: after a fork the child
opens its own, and the parent's is kept referenced, never closed or used by the child.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from zoo_core import paths
from zoo_core.errors import StoreError, UnknownNameError, UsageError
from zoo_core.store.records import (
    COLUMNS,
    JSON_FIELDS,
    LATEST,
    SWEEP_COLUMNS,
    RunRecord,
    SweepRecord,
    check_epoch_metrics,
    check_expect,
    check_owner,
    check_run_id,
    check_fields,
    check_final_status,
    check_status,
    check_tags,
    utc_now,
)
from zoo_core.store import ranking
from zoo_core.train.metrics import EPOCH_METRICS

SELECT = f"SELECT {', '.join(COLUMNS)} FROM runs"
QUEUE_ORDER = "ORDER BY started_at, rowid"  # oldest first: also the order of runs()
_EPOCH_COLUMNS = ("run_id", "epoch", *EPOCH_METRICS)
_UPSERT_EPOCH = (
    f"INSERT INTO epochs ({', '.join(_EPOCH_COLUMNS)}) VALUES ({', '.join('?' * len(_EPOCH_COLUMNS))})"
    f" ON CONFLICT (run_id, epoch) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in EPOCH_METRICS)
)

# Connections inherited across a fork: a child must never use (nor close) them.
_INHERITED: list[Any] = []


def encode(name: str, value: Any, artifacts: Path | None = None) -> Any:
    """A run's field as stored: JSON for dicts and lists, a run folder relative to the
    artifacts folder (``paths.relative_run_dir``)."""
    if name == "run_dir":
        return paths.relative_run_dir(value, artifacts)
    return json.dumps(value, sort_keys=True) if name in JSON_FIELDS else value


def from_row(row: Mapping[str, Any], artifacts: Path | None = None) -> RunRecord:
    values = {name: row[name] for name in COLUMNS}
    for name in JSON_FIELDS:
        values[name] = json.loads(values[name])
    values["run_dir"] = paths.absolute_run_dir(values["run_dir"], artifacts)
    return RunRecord(**values)


def sweep_from_row(row: Mapping[str, Any]) -> SweepRecord:
    return SweepRecord(**{**{name: row[name] for name in SWEEP_COLUMNS},
                          "spec": json.loads(row["spec"])})


def _matches(value: str, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, pattern)


def translate_errors(method):
    """Turn the driver's errors about the store itself into a StoreError that says what to do."""

    @functools.wraps(method)
    def wrapper(self: SQLStore, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except self._DB_ERROR as exc:
            error = self._store_error(exc)
            if error is None:
                raise
            raise error from exc

    return wrapper


class SQLStore:
    """The Store methods over a DB-API connection; see the module for what a subclass adds."""

    _CLAIM_LOCK = ""
    _ROW_LOCK = ""
    _IS = "IS"
    _DIALECT = ranking.SQLITE
    _DB_ERROR: type[BaseException] = Exception
    _conn: Any = None
    _pid: int | None = None
    name = ""  # the store as messages name it: a file, or a URL without its password

    def __enter__(self):
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

    @translate_errors
    def check(self) -> None:
        """Open the store now, creating or upgrading its schema (see Store.check)."""
        self._connection()

    # -- writing -----------------------------------------------------------------------------

    @translate_errors
    def create_run(self, record: RunRecord) -> None:
        """Insert a new run with the record's status (see Store.create_run)."""
        check_status(record.status)
        check_run_id(record.run_id)
        with self._write() as conn:
            if self._run(conn, "SELECT 1 FROM runs WHERE run_id = ?", (record.run_id,)).fetchone():
                raise self._exists(record.run_id)
            self._run(
                conn,
                f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                [encode(name, getattr(record, name), self.artifacts()) for name in COLUMNS],
            )

    def queue_run(self, record: RunRecord) -> None:
        """Insert a new run with status "queued" (see Store.queue_run)."""
        self.create_run(dataclasses.replace(record, status="queued"))

    @translate_errors
    def claim_run(self, sweep_id: str | None = None, **owner: Any) -> RunRecord | None:
        """Make the oldest queued run (of sweep ``sweep_id``, when given) running, owned by
        ``owner``, and return it (see Store.claim_run): the select and the update are one
        transaction (SQLite holds the write lock from its start; PostgreSQL locks the row
        and other claimers skip it)."""
        check_owner(owner)
        where, args = ("AND sweep_id = ?", (sweep_id,)) if sweep_id is not None else ("", ())
        with self._write() as conn:
            row = self._run(
                conn, f"{SELECT} WHERE status = 'queued' {where} {QUEUE_ORDER} LIMIT 1 "
                      f"{self._CLAIM_LOCK}", args).fetchone()
            if row is None:
                return None
            fields = {"status": "running", **owner}
            self._run(conn, f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} "
                      "WHERE run_id = ?", (*fields.values(), row["run_id"]))
        return dataclasses.replace(from_row(row, self.artifacts()), **fields)

    @translate_errors
    def create_sweep(self, sweep: SweepRecord, trials: list[RunRecord]) -> None:
        """Record a sweep and queue its trials, all in one write (see Store.create_sweep)."""
        with self._write() as conn:
            if self._run(conn, "SELECT 1 FROM sweeps WHERE sweep_id = ?",
                         (sweep.sweep_id,)).fetchone():
                raise StoreError(f"sweep {sweep.sweep_id!r} is already in the results store "
                                 f"{self.name}")
            values = {**sweep.to_dict(), "spec": json.dumps(sweep.spec, sort_keys=True)}
            self._run(conn, f"INSERT INTO sweeps ({', '.join(values)}) "
                            f"VALUES ({', '.join('?' * len(values))})", list(values.values()))
            for trial in trials:
                self._insert_trial(conn, sweep.sweep_id, trial)

    @translate_errors
    def add_trial(self, sweep_id: str, trial: Mapping[str, Any], record: RunRecord, *,
                  number: int) -> bool:
        """Append ``trial`` to the sweep's spec as trial ``number`` and queue ``record``, in
        one write, if the sweep is active and has ``number`` trials (see Store.add_trial)."""
        with self._write() as conn:
            row = self._run(conn, f"SELECT spec, status FROM sweeps WHERE sweep_id = ? "
                                  f"{self._ROW_LOCK}", (sweep_id,)).fetchone()
            if row is None:
                raise UnknownNameError("sweep", sweep_id, [], hint="see `zoo sweep list`")
            spec = json.loads(row["spec"])
            trials = spec.get("trials", [])
            if row["status"] != "active" or len(trials) != number:
                return False
            spec["trials"] = [*trials, {**trial, "run_id": record.run_id}]
            self._run(conn, "UPDATE sweeps SET spec = ? WHERE sweep_id = ?",
                      (json.dumps(spec, sort_keys=True), sweep_id))
            self._insert_trial(conn, sweep_id, record)
        return True

    def _insert_trial(self, conn, sweep_id: str, trial: RunRecord) -> None:
        """Queue one trial of ``sweep_id`` inside the caller's write."""
        check_run_id(trial.run_id)
        record = dataclasses.replace(trial, status="queued", sweep_id=sweep_id)
        if self._run(conn, "SELECT 1 FROM runs WHERE run_id = ?", (record.run_id,)).fetchone():
            raise self._exists(record.run_id)
        self._run(conn, f"INSERT INTO runs ({', '.join(COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(COLUMNS))})",
                  [encode(name, getattr(record, name), self.artifacts()) for name in COLUMNS])

    @translate_errors
    def get_sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep with this id, or the only one whose id starts with it (see
        Store.get_sweep)."""
        conn = self._connection()
        rows = self._run(conn, "SELECT * FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchall()
        if not rows and sweep_id:
            rows = self._run(conn, "SELECT * FROM sweeps WHERE substr(sweep_id, 1, "
                                   "CAST(? AS INTEGER)) = ? ORDER BY created_at",
                             (len(sweep_id), sweep_id)).fetchall()
        if len(rows) != 1:
            known = [r["sweep_id"] for r in self._run(conn, "SELECT sweep_id FROM sweeps")]
            if not rows:
                raise UnknownNameError("sweep", sweep_id, known, hint="see `zoo sweep list`")
            raise UsageError(f"sweep id prefix {sweep_id!r} is ambiguous: it matches "
                             f"{', '.join(r['sweep_id'] for r in rows[:10])}; give more characters")
        return sweep_from_row(rows[0])

    @translate_errors
    def sweeps(self) -> list[SweepRecord]:
        """Every sweep, oldest first (see Store.sweeps)."""
        rows = self._run(self._connection(), "SELECT * FROM sweeps ORDER BY created_at, sweep_id")
        return [sweep_from_row(row) for row in rows.fetchall()]

    @translate_errors
    def cancel_sweep(self, sweep_id: str, error: str) -> list[str]:
        """Mark the sweep cancelled and its queued trials interrupted with ``error``, in one
        write; the ids of those trials (see Store.cancel_sweep)."""
        with self._write() as conn:
            self._run(conn, "UPDATE sweeps SET status = 'cancelled' WHERE sweep_id = ?",
                      (sweep_id,))
            ids = [row["run_id"] for row in self._run(
                conn, f"SELECT run_id FROM runs WHERE sweep_id = ? AND status = 'queued' "
                      f"{self._ROW_LOCK}", (sweep_id,)).fetchall()]
            self._run(conn, "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? "
                            "WHERE sweep_id = ? AND status = 'queued'",
                      (error, utc_now(), sweep_id))
        return ids

    @translate_errors
    def add_epoch(self, run_id: str, epoch: int, *, expect: Mapping[str, Any] | None = None,
                  publish: Callable[[], None] | None = None, **metrics: float | None) -> bool:
        """Record (or replace) one epoch's metrics, if the run still has the ``expect`` fields,
        then ``publish`` in the same transaction (see Store.add_epoch)."""
        check_epoch_metrics(metrics)
        with self._fenced(run_id, expect) as conn:
            if conn is None:
                return False
            self._run(conn, _UPSERT_EPOCH,
                      [run_id, epoch, *(self._metric(metrics.get(name)) for name in EPOCH_METRICS)])
            self._run(
                conn,
                "UPDATE runs SET epochs_run = (SELECT COUNT(*) FROM epochs WHERE run_id = ?)"
                " WHERE run_id = ?",
                (run_id, run_id),
            )
            if publish is not None:
                publish()
        return True

    @translate_errors
    def mark_running(self, run_id: str, *, expect: Mapping[str, Any] | None = None,
                     **owner: Any) -> bool:
        """Set the status to running, the owner, and clear the error, in one write, if the run
        still has the ``expect`` fields (see Store.mark_running)."""
        check_owner(owner)
        with self._fenced(run_id, expect) as conn:
            if conn is None:
                return False
            fields = {"status": "running", "error": None, **owner}
            self._run(conn, f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} "
                      "WHERE run_id = ?", (*fields.values(), run_id))
        return True

    def finish_run(self, run_id: str, *, status: str, expect: Mapping[str, Any] | None = None,
                   publish: Callable[[], None] | None = None, **fields: Any) -> bool:
        """Set a final status and the results, if the run still has the ``expect`` fields
        (see Store.finish_run)."""
        check_final_status(status)
        if fields:
            check_fields(fields)
        return self._set(run_id, {"status": status, **fields}, expect, publish)

    def update_run(self, run_id: str, *, expect: Mapping[str, Any] | None = None,
                   publish: Callable[[], None] | None = None, **fields: Any) -> bool:
        """Update fields other than the status and the identity, if the run still has the
        ``expect`` fields (see Store.update_run)."""
        check_fields(fields)
        return self._set(run_id, fields, expect, publish)

    @translate_errors
    def delete_run(self, run_id: str, *, expect: Mapping[str, Any] | None = None) -> bool:
        """Remove a run's row, its epochs and its tags, if it still has the ``expect``
        fields (see Store.delete_run)."""
        with self._fenced(run_id, expect) as conn:
            if conn is None:
                return False
            self._run(conn, "DELETE FROM epochs WHERE run_id = ?", (run_id,))
            self._run(conn, "DELETE FROM runs WHERE run_id = ?", (run_id,))
        return True

    @translate_errors
    def tag_run(self, run_id: str, add=(), remove=()) -> list[str]:
        """Add and remove tags in one write; the run's tags after it (see Store.tag_run)."""
        add, remove = check_tags(add), check_tags(remove)
        with self._write() as conn:
            self._require(conn, run_id)
            row = self._run(conn, "SELECT tags FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            tags = sorted((set(json.loads(row["tags"])) | set(add)) - set(remove))
            self._run(conn, "UPDATE runs SET tags = ? WHERE run_id = ?", (json.dumps(tags), run_id))
        return tags

    # -- reading -----------------------------------------------------------------------------

    @translate_errors
    def get(self, run_id: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with it (see Store.get)."""
        conn = self._connection()
        if run_id == LATEST:  # a reserved word (check_run_id), whatever a store holds
            rows = self._run(
                conn, f"{SELECT} ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchall()
        else:
            rows = self._run(conn, f"{SELECT} WHERE run_id = ?", (run_id,)).fetchall()
        if not rows and run_id and run_id != LATEST:
            rows = self._run(
                conn, f"{SELECT} WHERE substr(run_id, 1, CAST(? AS INTEGER)) = ? {QUEUE_ORDER}",
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
        return from_row(rows[0], self.artifacts())

    @translate_errors
    def runs(
        self, model: str | None = None, dataset: str | None = None, status: str | None = None,
        tag: str | None = None, sweep_id: str | None = None,
    ) -> list[RunRecord]:
        """The runs, oldest first, optionally filtered (see Store.runs)."""
        where, args = [], []
        if status is not None:
            check_status(status)
            where, args = ["status = ?"], [status]
        if sweep_id is not None:
            where, args = [*where, "sweep_id = ?"], [*args, sweep_id]
        query = f"{SELECT} WHERE {' AND '.join(where)}" if where else SELECT
        rows = self._run(self._connection(), f"{query} {QUEUE_ORDER}", args).fetchall()
        artifacts = self.artifacts()  # once, not per run: a leaderboard reads thousands
        records = [from_row(row, artifacts) for row in rows
                   if _matches(row["model"], model) and _matches(row["dataset"], dataset)]
        return records if tag is None else [r for r in records if tag in r.tags]

    @translate_errors
    def leaderboard(self, include_partial: bool = False, model: str | None = None,
                    dataset: str | None = None, tag: str | None = None
                    ) -> tuple[list[dict[str, Any]], int]:
        """The leaderboard's rows, ranked by the database (see Store.leaderboard)."""
        conn = self._connection()
        return ranking.rows(lambda query, args: self._run(conn, query, args).fetchall(),
                            self._DIALECT, include_partial, tag,
                            lambda m, d: _matches(m, model) and _matches(d, dataset))

    @translate_errors
    def best_run(self, model: str, dataset: str) -> RunRecord | None:
        """The run a model name means (see Store.best_run)."""
        rows = self._run(self._connection(), f"{SELECT} {ranking.best_statement(self._DIALECT)}",
                         (model, dataset)).fetchall()
        return from_row(rows[0], self.artifacts()) if rows else None

    @translate_errors
    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """The run's per-epoch metrics in epoch order (see Store.epochs)."""
        rows = self._run(self._connection(), f"SELECT epoch, {', '.join(EPOCH_METRICS)} FROM "
                         "epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        # a NaN kept as text where the database cannot store it (``_metric``)
        return [{k: float(v) if isinstance(v, str) else v for k, v in dict(row).items()}
                for row in rows]

    def artifacts(self) -> Path:
        """The folder the run folders this store names are relative to: ``ZOO_ARTIFACTS``,
        else ``$ZOO_HOME/runs`` (``paths.runs_dir``); a SQLite file's own folder's ``runs``
        (see SQLiteStore)."""
        return paths.runs_dir()

    # -- internals ---------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        """The statement with the driver's placeholders (SQLite takes ``?`` as written)."""
        return statement

    def _run(self, conn, statement: str, args=()):
        """Execute one statement on ``conn``; its cursor."""
        return conn.execute(self._sql(statement), args)

    def _metric(self, value: float | None):
        """An epoch metric as the database stores it (PostgreSQL keeps NaN as it is)."""
        return value

    def _exists(self, run_id: str) -> StoreError:
        return StoreError(f"run {run_id!r} is already in the results store {self.name}")

    @translate_errors
    def _set(self, run_id: str, fields: dict[str, Any], expect=None, publish=None) -> bool:
        """Write already-checked fields of one existing run, if it still has the ``expect``
        fields; then ``publish`` (a fenced write: :meth:`add_epoch`)."""
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [encode(name, value, self.artifacts()) for name, value in fields.items()]
        with self._fenced(run_id, expect) as conn:
            if conn is None:
                return False
            self._run(conn, f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values, run_id])
            if publish is not None:
                publish()
        return True

    @contextlib.contextmanager
    def _fenced(self, run_id: str, expect: Mapping[str, Any] | None) -> Iterator[Any]:
        """One write transaction on an existing run: its connection, or None when the run no
        longer has the ``expect`` fields (a fenced write then writes nothing)."""
        check_expect(expect)
        with self._write() as conn:
            self._require(conn, run_id)
            yield conn if self._has(conn, run_id, expect) else None

    def _has(self, conn, run_id: str, expect: Mapping[str, Any] | None) -> bool:
        """Whether the run has the ``expect`` fields (names already checked; None is NULL)."""
        if not expect:
            return True
        where = " AND ".join(f"{name} {self._IS} ?" for name in expect)
        return self._run(conn, f"SELECT 1 FROM runs WHERE run_id = ? AND {where}",
                         (run_id, *expect.values())).fetchone() is not None

    def _connection(self):
        """This process's connection, opened (and the schema migrated) on first use."""
        if self._conn is not None and self._pid != os.getpid():
            _INHERITED.append(self._conn)
            self._conn = None
        if self._conn is None:
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _write(self) -> contextlib.AbstractContextManager:
        return self._transaction(self._connection())

    def _require(self, conn, run_id: str) -> None:
        """Raise UnknownNameError unless the run exists; where the database locks rows
        (``_ROW_LOCK``), hold the run's row until the write ends, so that a check of its
        fields and the write after it see no other write in between."""
        if not self._run(conn, f"SELECT 1 FROM runs WHERE run_id = ? {self._ROW_LOCK}",
                         (run_id,)).fetchone():
            raise UnknownNameError("run", run_id, self._ids(conn))

    def _ids(self, conn) -> list[str]:
        return [row["run_id"] for row in self._run(conn, "SELECT run_id FROM runs").fetchall()]

    # -- what a backend supplies -------------------------------------------------------------

    def _open(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _transaction(self, conn) -> contextlib.AbstractContextManager:  # pragma: no cover
        raise NotImplementedError

    def _store_error(self, exc: BaseException) -> StoreError | None:  # pragma: no cover
        raise NotImplementedError
