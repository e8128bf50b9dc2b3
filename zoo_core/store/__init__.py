"""The results store: every run and sweep recorded, the work queue of sweeps.

This module is the store as the rest of the zoo sees it: the :class:`Store` protocol and
:func:`open_store`. Code that records or reads runs (running a batch, the leaderboard, ``zoo
show``) talks to a ``Store`` and never to a database library, so every backend can stand in
for another. This module imports no backend: each is a sibling module, registered in
:data:`BACKENDS` and imported when a store of its kind is opened.

- ``records.py``: ``RunRecord`` and ``SweepRecord`` (a run as stored and as hooks receive it),
  the statuses, the rules every backend applies, ``run_files()`` (what a run's folder holds).
- ``sql.py``: ``SQLStore``, the store's methods written once for both SQL backends;
  ``sqlite.py`` (the embedded default, one file) and ``postgresql.py`` (a team's server,
  ``ZOO_STORE=postgresql://...``, psycopg 3) are its two dialects; ``schema.py`` the
  migrations both apply.
- ``liveness.py``: who owns a running run, its heartbeat and lease, a dead owner shown as
  interrupted; and the one place that acts on it (``fail_stale``, ``take_over``,
  ``release``).
- ``manage.py``: removing runs (record, then folder) and copying runs between stores.

The store is also the work queue of a sweep: :meth:`Store.queue_run` adds runs with status
"queued", and any number of workers, on any machine that reaches the store, take them one at a
time with :meth:`Store.claim_run`. Nothing here imports TensorFlow or click.
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

from zoo_core import paths
from zoo_core.errors import StoreError, without_password
from zoo_core.store.records import RunRecord, SweepRecord

STORE_ENV = "ZOO_STORE"  # the store to use when none is given: a SQLite path or a URL


@runtime_checkable
class Store(Protocol):
    """What every results store backend provides.

    Every method may raise :class:`~zoo_core.errors.StoreError` when the store itself cannot be
    opened, read or written (unreachable, damaged, full, read-only, from a newer zoo-core): one
    line naming the store and what to do; a write that fails keeps nothing of itself. Arguments
    that break a rule below raise ValueError and change nothing. The rules on statuses and
    fields are those of :mod:`zoo_core.store.records` (``STATUSES``, ``FINAL_STATUSES``,
    ``UPDATABLE_FIELDS``, ``EXPECTABLE_FIELDS``, ``check_*``), so that all backends accept and
    refuse the same writes.
    Run ids are exact in every write; only :meth:`get` takes a prefix.
    """

    name: str
    """The store as messages name it: the SQLite file's path, or the URL, password masked."""

    def check(self) -> None:
        """Open the store now (creating its schema, or upgrading an older one), so that a store
        that cannot hold results is reported before any work whose results it would hold."""
        ...

    def version(self) -> int:
        """The store's schema version (the number of migrations applied), after opening, and
        so upgrading, it: ``zoo store migrate``."""
        ...

    def close(self) -> None:
        """Let go of the connection; a later call opens it again."""
        ...

    def __enter__(self) -> Store:
        """The store itself; leaving the ``with`` block closes it."""
        ...

    def __exit__(self, *exc_info: Any) -> None: ...

    # -- writing -----------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> None:
        """Insert a new run as it is (its status is usually "running", one of STATUSES).

        Raises:
            StoreError: a run with this id already exists.
        """
        ...

    def queue_run(self, record: RunRecord) -> None:
        """Insert a new run with status "queued", whatever ``record.status`` says, for a worker
        to take with :meth:`claim_run`. Its ``started_at`` is when it was queued, and the queue
        is served in that order.

        Raises:
            StoreError: a run with this id already exists.
        """
        ...

    def claim_run(self, sweep_id: str | None = None, **owner: Any) -> RunRecord | None:
        """Take the oldest queued run (of the sweep ``sweep_id``, when given): atomically set
        its status to "running" and its owner (``owner``: any of OWNER_FIELDS, as
        :meth:`mark_running` takes them) and return it so; None when nothing is queued.

        Atomic across threads, processes and machines: two claims never return the same run.
        SQLite does it in one immediate transaction (the write lock held from the start);
        PostgreSQL selects with ``FOR UPDATE SKIP LOCKED``, so that claimers skip each
        other's row instead of waiting for it.
        """
        ...

    def create_sweep(self, sweep: SweepRecord, trials: list[RunRecord]) -> None:
        """Record ``sweep`` and queue its ``trials`` (status "queued", their ``sweep_id`` the
        sweep's), all in one write: a sweep is queued whole or not at all.

        Raises:
            StoreError: the sweep, or one of the trials' run ids, already exists.
        """
        ...

    def add_trial(self, sweep_id: str, trial: Mapping[str, Any], record: RunRecord, *,
                  number: int) -> bool:
        """Add trial ``number`` (0-based) to an active sweep (a search proposes its trials
        one at a time, each from the results of those before it): append ``trial`` (its
        spec, as ``SweepRecord.spec["trials"]`` holds them; its ``run_id`` is ``record``'s)
        to the sweep's spec and queue ``record``, in one write, only if the sweep still has
        exactly ``number`` trials and is active. Of two processes that propose trial
        ``number`` at once, one adds it; the other gets False and proposes again.

        Returns:
            True; False when nothing was added (another trial took the number, or the sweep
            was cancelled).

        Raises:
            UnknownNameError: no sweep has this exact id. StoreError: the run id exists.
        """
        ...

    def cancel_sweep(self, sweep_id: str, error: str) -> list[str]:
        """Mark the sweep cancelled and end its queued trials as "interrupted" with ``error``,
        in one write (a trial claimed meanwhile is left running: its worker stops it at its
        next epoch). Returns the ids of the trials it ended."""
        ...

    def add_epoch(self, run_id: str, epoch: int, *, expect: Mapping[str, Any] | None = None,
                  publish: Callable[[], None] | None = None, **metrics: float | None) -> bool:
        """Record one epoch's metrics, replacing that epoch's earlier row, and set the run's
        ``epochs_run`` to the number of epochs recorded.

        A fenced write (docs/reliability.md): with ``expect``, only if the run still has those
        fields (its status and owner: ``liveness.mine()``), checked in the same transaction; and
        ``publish``, when given, is called inside that transaction after the write, while the
        run's row is locked (SQLite's write lock; PostgreSQL's row lock, which a takeover's
        ``mark_running`` waits for), so that what it does (renaming a checkpoint into place)
        happens only while the run is the caller's. If ``publish`` raises, nothing is written.

        Args:
            run_id: the exact id of an existing run.
            epoch: the epoch number (1-based).
            expect: the fields the run must still have, any of EXPECTABLE_FIELDS.
            publish: what to do inside the write's transaction, after it.
            **metrics: any of EPOCH_METRICS (``zoo_core.train.metrics``); the others stay None.

        Returns:
            True; False when the run no longer has the ``expect`` fields (nothing is written,
            ``publish`` is not called).

        Raises:
            ValueError: an unknown metric name.
            UnknownNameError: no run has this id.
        """
        ...

    def mark_running(self, run_id: str, *, expect: Mapping[str, Any] | None = None,
                     **owner: Any) -> bool:
        """Resume a run: set its status to "running", its owner (``owner``: any of
        OWNER_FIELDS, ``host``, ``pid``, ``owner_started``, ``heartbeat_at``; kept as it is
        when none is given), and clear its error, in one write, so that no other process sees
        it running with its old owner (and takes it over) in between.

        Args:
            expect: the fields the run must still have, any of EXPECTABLE_FIELDS (``status``,
                ``host``, ``pid``, ``owner_started``; None matches a missing value), checked in the same
                transaction as the write: two processes that read the same interrupted run
                and both try to resume it cannot both succeed.

        Returns:
            True; False when the run no longer has the ``expect`` fields (nothing is written).

        Raises:
            ValueError: a field in ``expect`` that is not in EXPECTABLE_FIELDS, or in
                ``owner`` that is not in OWNER_FIELDS.
            UnknownNameError: no run has this id.
        """
        ...

    def finish_run(self, run_id: str, *, status: str, expect: Mapping[str, Any] | None = None,
                   publish: Callable[[], None] | None = None, **fields: Any) -> bool:
        """End a run: set a final status (completed, interrupted or failed) and, in the same
        write, any of its result fields (``test_accuracy=0.91, finished_at=utc_now()``).
        ``expect`` and ``publish`` make it a fenced write, as in :meth:`add_epoch` (returns
        False, writing nothing, when the run no longer has the ``expect`` fields).

        Raises:
            ValueError: a status that is not final, or a field that is not in UPDATABLE_FIELDS.
            UnknownNameError: no run has this id.
        """
        ...

    def update_run(self, run_id: str, *, expect: Mapping[str, Any] | None = None,
                   publish: Callable[[], None] | None = None, **fields: Any) -> bool:
        """Update result fields of a run without changing its status; ``expect`` and
        ``publish`` make it a fenced write, as in :meth:`add_epoch`.

        Raises:
            ValueError: no fields, or a field that is not in UPDATABLE_FIELDS (the status and
                the fields that identify a run are not).
            UnknownNameError: no run has this id.
        """
        ...

    def delete_run(self, run_id: str, *, expect: Mapping[str, Any] | None = None) -> bool:
        """Remove a run from the store: its row, its epochs and its tags, in one write. Its
        folder is the caller's to remove (:func:`zoo_core.store.manage.remove_run`).

        Args:
            expect: the fields the run must still have to be deleted, any of
                EXPECTABLE_FIELDS (``{"status": "completed"}``, or a running run's
                ``status``, ``host`` and ``pid``), checked in the same transaction as the
                delete: a run confirmed for removal that a worker claimed or a process
                resumed meanwhile is kept.

        Returns:
            True; False when the run no longer has the ``expect`` fields (nothing is deleted).

        Raises:
            ValueError: a field in ``expect`` that is not in EXPECTABLE_FIELDS.
            UnknownNameError: no run has this id.
        """
        ...

    def tag_run(self, run_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()
                ) -> list[str]:
        """Add the tags ``add`` and remove the tags ``remove`` (absent ones are ignored), in
        one write, whatever else writes to the run meanwhile.

        Returns:
            the run's tags afterwards, sorted, each once.

        Raises:
            ValueError: a tag that breaks ``records.TAG_PATTERN``; nothing is changed.
            UnknownNameError: no run has this id.
        """
        ...

    # -- reading -----------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        """The run with this exact id; else, for ``"latest"`` (``records.LATEST``), the most
        recently started run (the last added, on a tie); else the only run whose id starts
        with ``run_id``.

        Raises:
            UnknownNameError: no run matches (it suggests close ids).
            UsageError: the prefix matches several runs (it names them).
        """
        ...

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep with this exact id, else the only sweep whose id starts with it.

        Raises:
            UnknownNameError: no sweep matches; UsageError: the prefix matches several.
        """
        ...

    def sweeps(self) -> list[SweepRecord]:
        """Every sweep, oldest first."""
        ...

    def runs(
        self, model: str | None = None, dataset: str | None = None, status: str | None = None,
        tag: str | None = None, sweep_id: str | None = None,
    ) -> list[RunRecord]:
        """The runs, oldest ``started_at`` first (ties in the order they were added); a
        sweep's trials are in the order they were queued.

        Args:
            model: a model name or shell wildcard (``"*rnn"``), case-sensitive.
            dataset: a dataset name or shell wildcard.
            status: one of STATUSES (ValueError otherwise), as stored (a run whose process
                died is still "running" here: see :mod:`zoo_core.store.liveness`).
            tag: only runs carrying this tag (exact).
            sweep_id: only the trials of this sweep (exact id).
        """
        ...

    def leaderboard(self, include_partial: bool = False, model: str | None = None,
                    dataset: str | None = None, tag: str | None = None
                    ) -> tuple[list[dict[str, Any]], int]:
        """The leaderboard of the completed runs, ranked by the database in one query (a
        page of a 10,000-run store must not decode every run): the rows
        :func:`zoo_core.results.leaderboard.aggregate` makes of ``runs(model, dataset,
        "completed", tag)`` (each seed's latest run per configuration; quick tries made with
        ``--limit`` only with ``include_partial``), best first, and how many quick tries were
        left out (0 with ``include_partial``). :mod:`zoo_core.store.ranking` writes the query."""
        ...

    def best_run(self, model: str, dataset: str) -> RunRecord | None:
        """The run a model's name means on ``dataset`` (``zoo predict MODEL``, ``zoo serve``'s
        ``/v1/models/MODEL``), read in one query: the completed run with a folder, full runs
        before quick tries made with ``--limit``, then the highest validation accuracy (the
        test split chooses nothing), the latest on a tie; None when there is none. The
        same run :func:`zoo_core.results.leaderboard.best_run` picks from ``runs()``."""
        ...

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """The run's epochs in order, each a dict of ``epoch`` and every one of EPOCH_METRICS
        (None where not recorded); empty for an unknown run."""
        ...


# The backends, one registration each: a URL scheme and the module and class that open it
# (imported only when such a store is opened, so that psycopg stays out of light commands and
# this protocol imports no backend). A new backend is a sibling module plus one line here.
BACKENDS: dict[str, str] = {
    "": "zoo_core.store.sqlite:SQLiteStore",  # a path: the embedded default
    "postgresql": "zoo_core.store.postgresql:PostgreSQLStore",
    "postgres": "zoo_core.store.postgresql:PostgreSQLStore",
}


def open_store(location: str | os.PathLike | None = None) -> Store:
    """The results store at ``location``, not yet opened (the first use, or ``check()``, does).

    Args:
        location: a ``postgresql://`` (or ``postgres://``) URL for a PostgreSQL store
            (:class:`zoo_core.store.postgresql.PostgreSQLStore`, needs ``zoo-core[postgresql]``),
            or the path of a SQLite file. None for the environment's ``ZOO_STORE`` (either
            kind), else the default, the SQLite file ``paths.store_path()``
            (``$ZOO_HOME/zoo.db``).

    Raises:
        StoreError: a URL of a store this zoo-core cannot open, or a PostgreSQL URL without
            psycopg installed.
    """
    if location is None:
        location = os.environ.get(STORE_ENV) or None
    location = paths.store_path() if location is None else os.fspath(location)
    scheme = urllib.parse.urlsplit(location).scheme if "://" in str(location) else ""
    if scheme not in BACKENDS:
        raise StoreError(
            f"results store {without_password(location)}: unknown kind of store {scheme!r}; "
            "give the path of a SQLite file or a postgresql:// URL"
        )
    module, _, name = BACKENDS[scheme].partition(":")
    return getattr(importlib.import_module(module), name)(location)
