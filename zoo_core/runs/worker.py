"""The worker loop every engine runs: claim a trial, hold its lease, run it, release it.

:func:`work` takes trials from the store until there are none left: a queued trial
(``Store.claim_run``, atomic across machines), else a trial of an active sweep whose worker
died (its owner gone on this machine, or no heartbeat for the lease elsewhere:
:func:`zoo_core.store.liveness.stale_runs`) or that was interrupted, taken over with one
conditional write (:func:`zoo_core.store.liveness.take_over`) and continued from its last
checkpoint. The lease is the run's owner and heartbeat (:mod:`zoo_core.store.liveness`),
renewed as the run trains; it ends with the run's final record. A trial is an ordinary run:
:func:`zoo_core.runs.execute.execute_claimed` trains and records it as ``zoo run`` would. A
trial whose sweep is cancelled stops at its next epoch, recorded as interrupted ("cancelled
...").

A search's trials (:mod:`zoo_core.runs.search`) are proposed by the workers themselves: one
that finds nothing queued asks the search for its next trial and takes it; after each epoch
it asks the search's pruner whether the trial goes on, and one that does not ends as
"pruned" at that epoch boundary.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from zoo_core import data
from zoo_core.catalogue import Zoo
from zoo_core.errors import DataError, RunInterrupted, StoreError, TrialPruned, ZooError
from zoo_core.store import liveness
from zoo_core.runs import execute, search
from zoo_core.store.records import RunRecord
from zoo_core.store import Store
from zoo_core.runs.sweep import CANCELLED, trial_plan
from zoo_core.train import loop

# How often an idle worker looks again while other workers' trials run. A sweep on `local:N`
# ends when its last worker exits, so this is added to the end of every parallel sweep (half
# of it on average) and to no sequential one (issue 31: 2 s was a tenth of a short sweep;
# 0.5 s, an eighth of a second on average, still a few per cent of a sweep's fixed cost).
POLL_SECONDS = 0.25


class WorkerEvents(execute.Events):
    """What a worker reports, besides each run's progress (:class:`execute.Events`)."""

    def claimed(self, record: RunRecord, taken_over: str | None) -> None:
        """This worker took ``record``: queued, or ``taken_over`` from a worker that is
        gone (the reason, e.g. "its worker died")."""

    def trial_failed(self, record: RunRecord, error: BaseException) -> None:
        """A trial failed (recorded as failed); the worker goes on with the next one."""

    def trial_pruned(self, record: RunRecord) -> None:
        """A search's pruner stopped a trial (recorded as pruned, the reason its error)."""


@dataclass
class WorkResult:
    """What a worker did: the trials it completed, failed, stopped for a cancel, and
    pruned (a search's pruner stopped them)."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    @property
    def trials(self) -> int:
        return len(self.completed) + len(self.failed) + len(self.cancelled) + len(self.pruned)


def work(zoo: Zoo, store: Store, *, sweep_id: str | None = None, max_trials: int | None = None,
         threads: int = 0, wait: bool = True, data_dir=None,
         events: WorkerEvents | None = None) -> WorkResult:
    """Run trials (of sweep ``sweep_id``, else of every sweep) until none is left to take.

    Args:
        max_trials: stop after this many trials (None: no limit).
        threads: this worker's share of the cores (threads per op; 0: TensorFlow's default).
        wait: while other workers' trials run, wait (polling) to take over any whose worker
            dies, rather than stop; the queue's end is when no trial is queued or running.

    Raises:
        RunInterrupted: Ctrl-C or SIGTERM (the trial is recorded as interrupted, and the
            next worker continues it from its checkpoint).
        StoreError, DataError: the worker stops at once (every trial would fail so).
    """
    events = events or WorkerEvents()
    result, cache = WorkResult(), _DataCache(data_dir)
    while max_trials is None or result.trials < max_trials:
        record, taken_over = claim(store, sweep_id)
        if record is None and _propose(zoo, store, sweep_id):
            continue  # a search's next trial is queued: take it (or another worker does)
        if record is None:
            if wait and _running_elsewhere(store, sweep_id):
                time.sleep(POLL_SECONDS)
                continue
            break
        events.claimed(record, taken_over)
        run_trial(zoo, store, record, cache, threads, events, result)
    return result


def claim(store: Store, sweep_id: str | None) -> tuple[RunRecord | None, str | None]:
    """Take the next trial: the oldest queued one, else one whose worker died or was
    interrupted (of an active sweep). Returns it (running, owned by this process) and why it
    was taken over (None for a queued one); (None, None) when there is none."""
    record = store.claim_run(sweep_id, **liveness.owner())
    if record is not None:
        return record, None
    for candidate in orphans(store, sweep_id):
        why = "its worker died" if candidate.status == "running" else "it was interrupted"
        taken = liveness.take_over(store, candidate)
        if taken is not None:
            return taken, why
    return None, None


def orphans(store: Store, sweep_id: str | None) -> list[RunRecord]:
    """Trials of active sweeps that no live worker holds: dead owners and interruptions (not
    cancellations)."""
    interrupted = [r for r in store.runs(status="interrupted", sweep_id=sweep_id)
                   if not (r.error or "").startswith(CANCELLED)]
    found = [r for r in liveness.stale_runs(store, sweep_id) + interrupted
             if r.sweep_id is not None]
    active = {s.sweep_id for s in store.sweeps() if s.status == "active"}
    return [r for r in found if r.sweep_id in active]


def _propose(zoo: Zoo, store: Store, sweep_id: str | None) -> bool:
    """Queue the next trial of the search ``sweep_id`` (of any active search, when None);
    whether one was queued."""
    ids = [sweep_id] if sweep_id is not None else [
        s.sweep_id for s in store.sweeps() if s.status == "active" and "search" in s.spec]
    return any(search.propose(zoo, store, i) is not None for i in ids)


def _running_elsewhere(store: Store, sweep_id: str | None) -> bool:
    """Whether a live worker still runs a trial (of the sweep) that may yet need taking over."""
    return any(r.sweep_id is not None for r in liveness.live_runs(store, sweep_id))


def run_trial(zoo: Zoo, store: Store, record: RunRecord, cache: _DataCache, threads: int,
              events: WorkerEvents, result: WorkResult) -> None:
    """Run one claimed trial to its final record, adding its id to ``result``."""
    watch = _CancelWatch(store, record, events)
    try:
        if record.sweep_id is None:
            raise ZooError(f"run {record.run_id} was queued without a sweep: `zoo worker` runs "
                           "the trials of `zoo sweep`")
        run = trial_plan(zoo, store.get_sweep(record.sweep_id), record)
        loaded = cache.load(run)
        events.starting(run, loaded)
        done = execute.execute_claimed(zoo, run, store, record, loaded, watch, threads=threads)
    except RunInterrupted as e:
        if not watch.cancelled:
            raise
        store.update_run(record.run_id, error=f"{CANCELLED} with sweep {record.sweep_id} "
                                              f"after {e.epochs} epoch(s)")
        result.cancelled.append(record.run_id)
        return
    except TrialPruned:  # recorded as pruned, with its reason, where it stopped
        result.pruned.append(record.run_id)
        events.trial_pruned(store.get(record.run_id))
        return
    except (StoreError, DataError) as e:  # this worker's store or data: another may do better
        _end_if_still_ours(store, record, "interrupted",
                           f"on {socket.gethostname()}: {watch.describe(e)}")
        raise
    except (Exception, SystemExit) as e:  # recorded as failed (here, if not yet); go on
        _end_if_still_ours(store, record, "failed", watch.describe(e))
        if isinstance(e, SystemExit):
            raise
        result.failed.append(record.run_id)
        events.trial_failed(record, e)
        return
    result.completed.append(record.run_id)
    events.finished(done)


def _end_if_still_ours(store: Store, record: RunRecord, status: str, error: str) -> None:
    """Record a trial as ``status`` when it stopped before its training recorded it (its
    settings, its data, its folder): a run must not stay "running" in a live worker that left
    it. An interrupted one is taken over by the next worker (:func:`claim`)."""
    liveness.release(store, record, status, error)  # not when another worker took it over


class _DataCache:
    """The last dataset a worker loaded, kept for its next trial on the same data."""

    def __init__(self, data_dir) -> None:
        self.data_dir, self.key, self.loaded = data_dir, None, None

    def load(self, run) -> data.Data:
        key = (run.dataset.name, run.settings.limit)
        if key != self.key:
            self.loaded = None  # let the old arrays go before loading the new ones
            self.loaded = data.load(run.dataset, self.data_dir, run.settings.limit)
            self.key = key
        return self.loaded


class _CancelWatch(loop.Progress):
    """Passes a trial's progress on, and stops the trial (as Ctrl-C would, between epochs)
    when its sweep has been cancelled, or (TrialPruned) when its search's pruner says so."""

    def __init__(self, store: Store, record: RunRecord, events: WorkerEvents):
        self.store, self.sweep_id, self.events = store, record.sweep_id, events
        self.run_id, self.epochs = record.run_id, 0
        self.cancelled = False

    def describe(self, error: BaseException) -> str:
        return self.events.describe(error)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs
        self.events.epoch_start(epoch, epochs, steps)

    def step(self, loss: float, accuracy: float) -> None:
        self.events.step(loss, accuracy)

    def steps(self, count: int, loss: float, accuracy: float) -> None:
        loop.report_steps(self.events, count, loss, accuracy)

    def epoch_end(self, record: dict) -> None:
        self.events.epoch_end(record)
        if self.sweep_id is None:
            return
        sweep = self.store.get_sweep(self.sweep_id)
        if sweep.status != "active":
            self.cancelled = True
            raise KeyboardInterrupt(f"sweep {self.sweep_id} cancelled")
        reason = search.prune_reason(self.store, sweep, self.run_id, record["epoch"],
                                     self.epochs)
        if reason is not None:
            raise TrialPruned(reason)
