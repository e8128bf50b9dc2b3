"""Managing recorded runs: who owns a running run, whether it is still alive, removing runs.

A run records the process that started (or resumed) it: ``host`` and ``pid``. A run stored as
"running" whose owner was on this machine and is gone died without recording its end (a
``kill -9``, a power cut): :func:`shown_status` reports it as interrupted. The full liveness
mechanism (heartbeats, runs owned by other machines, taking over a dead run's lease) is
issue 19's; until then a running run owned by another host is shown as running. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from zoo_core import paths
from zoo_core.errors import StoreError, ZooError
from zoo_core.runs.records import RunRecord
from zoo_core.runs.store import Store

DIED = "interrupted (process died)"


def owner() -> dict[str, object]:
    """This process as a run's owner: the fields ``host`` and ``pid`` of a RunRecord."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


def owner_died(record: RunRecord) -> bool:
    """A run stored as running whose owning process, on this machine, no longer exists."""
    return (record.status == "running" and record.pid is not None
            and record.host == socket.gethostname() and not process_alive(record.pid))


def shown_status(record: RunRecord) -> str:
    """The status to show a user: the stored one, or :data:`DIED` for a dead owner."""
    return DIED if owner_died(record) else record.status


def remove_run(store: Store, record: RunRecord) -> None:
    """Delete a run's folder, then its record.

    The folder is deleted only when it is the run's own (named after its id); a run still
    running in a live process is refused, so no process writes into a removed run.

    Raises:
        ZooError: the run is running in a live process.
        StoreError: the folder cannot be deleted (the record is kept, to try again).
    """
    if record.status in ("running", "queued") and not owner_died(record):
        where = f" (pid {record.pid} on {record.host})" if record.pid is not None else ""
        raise ZooError(f"run {record.run_id} is {record.status}{where}: stop it first, "
                       "then remove it")
    folder = Path(record.run_dir) if record.run_dir else None
    if folder is not None and folder.name == record.run_id and folder.exists():
        try:
            shutil.rmtree(folder)
        except OSError as e:
            raise StoreError(f"cannot delete the run folder {folder} "
                             f"({paths.why_not(e, folder)}): {paths.remedy(e)}") from None
    store.delete_run(record.run_id)
