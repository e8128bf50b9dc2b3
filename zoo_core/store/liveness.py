"""A running run's liveness: who owns it, whether that process still lives, the lease.

A running run records the process that started (or resumed) it: ``host``, ``pid`` and
``owner_started`` (when that process started, so that a pid the system gave to another
process since is not taken for the owner), and ``heartbeat_at``, which the owner renews at
least every :data:`HEARTBEAT_SECONDS` while it makes progress. A run stored as "running" is
dead (:func:`owner_died`) when its owner on this machine is gone, or, for an owner on
another machine, when its heartbeat is older than :data:`LEASE_SECONDS`. A dead run is shown
as interrupted (:func:`shown_status`) and can be resumed. Only a running run with no
heartbeat at all, owned by another host or by no recorded process (made by a zoo-core
before 0.2), is one zoo cannot judge (:func:`owner_unseen`).

This module is the one place that acts on those judgements, as Optuna's ``_heartbeat.py``
does for its trials: :func:`fail_stale` records a dead run as interrupted (``zoo run
--resume``), :func:`stale_runs` and :func:`live_runs` find the dead and the live among the
running (a worker's orphans; whether to wait for other workers), :func:`take_over` makes this
process the owner of a dead or interrupted run in one conditional write, and :func:`release`
ends a run this process owns, fenced on its owner. The writes of a run's owner (each epoch,
the heartbeat, the result) are fenced with :func:`mine`, so a process that was taken over
writes nothing more. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import datetime
import os
import socket

from typing import TYPE_CHECKING

from zoo_core.errors import ZooError
from zoo_core.store.records import RunRecord, precision_ran, utc_now

if TYPE_CHECKING:  # the protocol only names the type; the functions take any Store
    from zoo_core.store import Store

DIED = "interrupted (process died)"
PROCESS_DIED = "its process died"  # the error a dead run is recorded interrupted with
HEARTBEAT_SECONDS = 15  # how often a running run renews its heartbeat, at least
LEASE_SECONDS = 300  # a run on another host with no heartbeat for this long is dead
LEASE_ENV = "ZOO_LEASE_SECONDS"  # another lease (a test's few seconds; a slow file system's more)


def lease_seconds() -> float:
    """How long a run on another host may go without a heartbeat before it counts as dead:
    ``$ZOO_LEASE_SECONDS`` when set to a positive number, else :data:`LEASE_SECONDS`."""
    try:
        lease = float(os.environ.get(LEASE_ENV, ""))
    except ValueError:
        return LEASE_SECONDS
    return lease if lease > 0 else LEASE_SECONDS


def heartbeat_seconds() -> float:
    """How often a running run renews its heartbeat: :data:`HEARTBEAT_SECONDS`, or a quarter
    of a shorter lease, so that a live run never looks dead."""
    return min(HEARTBEAT_SECONDS, lease_seconds() / 4)


def process_started(pid: int) -> str:
    """When process ``pid`` started, as this machine's boot id and the start time in clock
    ticks (``/proc``); "" where that cannot be read (not Linux, or no such process)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()  # the name may hold spaces
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        return f"{boot}:{fields[19]}"  # field 22 of stat(5): starttime
    except (OSError, IndexError):
        return ""


def owner() -> dict[str, object]:
    """This process as a run's owner: the owner fields of a RunRecord, heartbeat now."""
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "owner_started": process_started(os.getpid()), "heartbeat_at": utc_now()}


def mine() -> dict[str, object]:
    """What a fenced write of this process expects of a run it owns (``Store.add_epoch``): the
    run still running, and this process its owner, as :func:`owner` recorded it when this
    process created, claimed or resumed the run (never read back from the store, so that a
    takeover between that write and a read is not taken for ownership)."""
    me = owner()
    return {"status": "running", "host": me["host"], "pid": me["pid"],
            "owner_started": me["owner_started"]}


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine, and is not a zombie (a process
    that ended, its parent not yet told: a killed worker of ``zoo sweep``, say)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def heartbeat_age(record: RunRecord, now: datetime.datetime | None = None) -> float | None:
    """Seconds since the run's last heartbeat, or None when it has none (or it cannot be read)."""
    if not record.heartbeat_at:
        return None
    try:
        beat = datetime.datetime.fromisoformat(record.heartbeat_at)
    except ValueError:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return (now - beat).total_seconds()


def _local_owner(record: RunRecord) -> bool:
    return record.pid is not None and record.host == socket.gethostname()


def owner_died(record: RunRecord) -> bool:
    """A run stored as running whose owner is gone: on this machine, no process with its pid,
    or one that started at another time; elsewhere, no heartbeat for :data:`LEASE_SECONDS`."""
    if record.status != "running":
        return False
    if _local_owner(record):
        if not process_alive(record.pid):
            return True
        started = process_started(record.pid) if record.owner_started else ""
        return bool(started) and started != record.owner_started
    age = heartbeat_age(record)
    return age is not None and age > lease_seconds()


def shown_status(record: RunRecord) -> str:
    """The status to show a user: the stored one, or :data:`DIED` for a dead owner."""
    return DIED if owner_died(record) else record.status


def as_shown(record: RunRecord) -> dict[str, object]:
    """The record as ``--json`` outputs (and the web pages) give it: ``status`` is what a user
    is shown (:func:`shown_status`: a run whose process died is "interrupted (process
    died)"), ``stored_status`` the status as stored ("running" for that run); ``precision``
    the one it computed in, as a word."""
    return {**record.to_dict(), "status": shown_status(record), "stored_status": record.status,
            "precision": precision_ran(record)}


def owner_unseen(record: RunRecord) -> bool:
    """A run stored as running that zoo cannot judge from here: its owner is not on this
    machine (or not recorded) and it has no heartbeat (made by a zoo-core before 0.2)."""
    return (record.status == "running" and not _local_owner(record)
            and heartbeat_age(record) is None)


def owner_text(record: RunRecord) -> str:
    """The owner as messages show it: ``pid 4242 on gpu-box``, or ``no owner recorded``."""
    if record.pid is None:
        return "no owner recorded"
    age = None if _local_owner(record) else heartbeat_age(record)
    return f"pid {record.pid} on {record.host}" + (
        "" if age is None else f", last heartbeat {age:.0f}s ago")


def expected(record: RunRecord) -> dict[str, object]:
    """The fields a conditional write checks the run still has: its status and owner."""
    return {"status": record.status, "host": record.host, "pid": record.pid,
            "owner_started": record.owner_started}


def unseen_owner_hint(record: RunRecord) -> str:
    """Why a run recorded as running, whose process zoo cannot judge, is left alone, and the
    way out."""
    return (f"run {record.run_id} is recorded as running ({owner_text(record)}) by a zoo-core "
            "that kept no heartbeat, so zoo cannot tell whether that process still runs: if "
            f"it does not, `zoo runs rm --force {record.run_id}` removes the run")


# -- acting on it: the one place a dead run is recorded, taken over or released ---------------


def fail_stale(store: Store, record: RunRecord) -> RunRecord:
    """Record ``record`` as interrupted ("its process died") when its owner died
    (:func:`owner_died`), in one write that holds only while that dead owner is still the
    recorded one (a process that took the run over meanwhile keeps it); Optuna's
    ``fail_stale_trials`` for one run. Returns the run as stored now (``record`` itself when
    its owner lives or it is not running)."""
    if not owner_died(record):
        return record
    store.finish_run(record.run_id, status="interrupted", finished_at=utc_now(),
                     error=PROCESS_DIED, expect=expected(record))
    return store.get(record.run_id)


def stale_runs(store: Store, sweep_id: str | None = None) -> list[RunRecord]:
    """The runs (of sweep ``sweep_id``, when given) stored as running whose owner died."""
    return [r for r in store.runs(status="running", sweep_id=sweep_id) if owner_died(r)]


def live_runs(store: Store, sweep_id: str | None = None) -> list[RunRecord]:
    """The runs (of sweep ``sweep_id``, when given) stored as running whose owner is not
    known dead: alive, or one zoo cannot judge (:func:`owner_unseen`)."""
    return [r for r in store.runs(status="running", sweep_id=sweep_id) if not owner_died(r)]


def take_over(store: Store, record: RunRecord) -> RunRecord | None:
    """Make this process the owner of ``record`` (a dead or interrupted run, as read), running,
    in one conditional write: only if the run still has the status and owner it was read with
    (``Store.mark_running``), so that of two processes taking one run over, one wins. Returns
    the run as stored now, or None when another process changed it first."""
    if not store.mark_running(record.run_id, expect=expected(record), **owner()):
        return None
    return store.get(record.run_id)


def release(store: Store, record: RunRecord, status: str, error: str) -> bool:
    """End a run this process claimed or took over (``record``, as it was then) as ``status``
    with ``error``, when it stopped before its training recorded it: a fenced write, so that
    nothing is written when another process took it over meanwhile (or the store refuses).
    Returns whether it was written."""
    try:
        return store.finish_run(record.run_id, status=status, finished_at=utc_now(), error=error,
                                expect={**expected(record), "status": "running"})
    except ZooError:
        return False
