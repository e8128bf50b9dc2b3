"""``--engine ray``: a sweep's trials as Ray tasks, one trial per task with its CPUs declared.

The only module that imports Ray (the optional extra ``zoo-core[ray]``), and it is imported
only when a sweep runs on Ray. Each task runs the one worker loop (:func:`zoo_core.runs.
worker.work`) for one trial, against the store, so a trial is claimed, leased and recorded
as on every engine; Ray only places the tasks. Which cluster (:func:`connect`):

- ``ray``: the running cluster Ray finds (``RAY_ADDRESS``, or ``ray start`` on this machine);
  when there is none, a local one on this machine (127.0.0.1, no dashboard, usage stats off),
  stopped when the sweep ends;
- ``ray://HOST:PORT``: that cluster, through Ray Client.

The tasks run with ``ZOO_ARTIFACTS`` set to this machine's artifacts folder
(``paths.runs_dir()``), which every node must reach at the same path, and the store given
as an argument (a PostgreSQL URL for a cluster; a SQLite path only on one machine).
"""

from __future__ import annotations

import os
import warnings
from typing import Callable

from zoo_core import paths
from zoo_core.errors import ZooError, first_line
from zoo_core.runs import engines, search, worker
from zoo_core.store.records import RunRecord
from zoo_core.store import Store
from zoo_core.runs.sweep import SweepStatus

CPUS_PER_TRIAL = 1  # the CPUs each task declares, and the trainer's threads in it
RETRIES = 3  # a task whose worker process died is run again (it takes its trial over)
# The zoo's environment passed on to the tasks (besides ZOO_ARTIFACTS)
PASSED_ENV = ("ZOO_LOAD_PLUGINS", "ZOO_LEASE_SECONDS", "TF_CPP_MIN_LOG_LEVEL")

_zoo = None  # a task's worker process opens the zoo (loads the plugins) once


def connect(engine: engines.Engine):
    """Ray, connected to the engine's cluster (see the module); and whether this call
    connected (then :func:`run_on_ray` disconnects, stopping a local cluster it started)."""
    try:
        import ray
    except ImportError:
        raise ZooError("--engine ray needs Ray: pip install 'zoo-core[ray]'") from None
    if ray.is_initialized():
        return ray, False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = dict(log_to_driver=False, configure_logging=False)
    if engine.address:
        ray.init(address=engine.address, **quiet)
        return ray, True
    try:
        ray.init(address="auto", **quiet)
    except ConnectionError:  # no running cluster: one on this machine, for this sweep
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
    return ray, True


def trial_task(location: str, sweep_id: str, threads: int) -> dict:
    """One Ray task: the worker loop for one trial (None left to take: nothing done)."""
    global _zoo
    from zoo_core.catalogue import open_zoo
    from zoo_core.store import open_store

    if _zoo is None:
        _zoo = open_zoo()
    with open_store(location) as store:
        done = worker.work(_zoo, store, sweep_id=sweep_id, max_trials=1, threads=threads,
                           wait=False)
    return {"completed": done.completed, "failed": done.failed, "cancelled": done.cancelled}


def _to_propose(ray, store: Store, sweep_id: str) -> int:
    """For a search: the trials not yet proposed that tasks may start now (one per CPU of
    the cluster); each task proposes its trial from the results so far (runs/search.py)."""
    sweep = store.get_sweep(sweep_id)
    planned = search.of(sweep)
    if planned is None or sweep.status != "active":
        return 0
    left = planned.trials - len(sweep.spec.get("trials", []))
    return max(0, min(left, int(ray.cluster_resources().get("CPU", 1)) // CPUS_PER_TRIAL))


def run_on_ray(engine: engines.Engine, store: Store, location: str | None, sweep_id: str,
               on_finished: Callable[[RunRecord, SweepStatus], None]) -> SweepStatus:
    """Run the sweep's trials as Ray tasks until none is left to take; ``on_finished`` for
    each trial as it ends. A task is started for each trial to take (queued, or whose worker
    died or was interrupted; for a search, one to propose), again as long as there are some."""
    ray, connected = connect(engine)
    location = location or os.fspath(getattr(store, "path", ""))
    env = {"ZOO_ARTIFACTS": str(paths.runs_dir()),
           **{k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}}
    task = ray.remote(num_cpus=CPUS_PER_TRIAL, max_retries=RETRIES)(trial_task).options(
        runtime_env={"env_vars": env})
    pending: list = []

    def running() -> bool:
        nonlocal pending
        if pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            for ref in ready:
                try:
                    ray.get(ref)
                except Exception as e:  # noqa: BLE001 - failed beyond its retries: say so, go on
                    warnings.warn(f"a Ray task of sweep {sweep_id} failed: {first_line(e)}; "
                                  "its trial is taken by the next task", stacklevel=1)
        wanted = (len(store.runs(status="queued", sweep_id=sweep_id))
                  + len(worker.orphans(store, sweep_id)) + _to_propose(ray, store, sweep_id))
        pending += [task.remote(location, sweep_id, CPUS_PER_TRIAL)
                    for _ in range(wanted - len(pending))]
        return bool(pending)

    try:
        return engines.watch(store, sweep_id, running, on_finished)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)  # their trials are taken over by the next worker
        raise
    finally:
        if connected:
            ray.shutdown()
