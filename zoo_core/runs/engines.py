"""Engines: what starts the workers of a sweep. Each only starts workers; every worker runs
the same loop (:func:`zoo_core.runs.worker.work`) against the store, which is the queue.

- ``local:N`` (:func:`run_local`): N ``zoo worker`` processes on this machine, each with its
  share of the cores (:func:`thread_share`), their output in ``$ZOO_HOME/sweeps/ID/``;
- ``ray`` / ``ray://HOST:PORT``: one Ray task per trial (:mod:`zoo_core.runs.ray_engine`,
  imported only for this engine);
- ``none``: nothing is started; ``zoo worker`` processes started by hand take the trials.

:func:`watch` follows a sweep in the store while its workers run, for the progress shown.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from zoo_core import paths
from zoo_core.errors import UsageError, setting
from zoo_core.store.records import FINAL_STATUSES, RunRecord
from zoo_core.store import STORE_ENV, Store
from zoo_core.runs.sweep import SweepStatus, sweep_status

ENGINES = "local, local:N, ray, ray://HOST:PORT or none"
POLL_SECONDS = 0.5  # how often a sweep's progress is read: also when its end is seen


@dataclass(frozen=True)
class Engine:
    """A parsed ``--engine``: its kind ("local", "ray", "none"), the number of local workers,
    the Ray address (None: a running cluster, else a local one started for the sweep)."""

    kind: str
    workers: int = 1
    address: str | None = None

    def __str__(self) -> str:
        if self.kind == "local":
            return f"local:{self.workers}"
        return self.address if self.kind == "ray" and self.address else self.kind


def parse_engine(text: str) -> Engine:
    """``local``, ``local:N``, ``ray``, ``ray://HOST:PORT`` or ``none``.

    Raises:
        UsageError: anything else, naming what is accepted.
    """
    text = text.strip()
    if text in ("none", "ray"):
        return Engine(text)
    if text.startswith("ray://") and re.fullmatch(r"ray://[^\s:/]+(:\d+)?/?", text):
        return Engine("ray", address=text)
    found = re.fullmatch(r"local(?::(\d+))?", text)
    if found and (found.group(1) is None or 1 <= int(found.group(1)) <= 256):
        return Engine("local", int(found.group(1) or 1))
    raise UsageError(f"{setting('engine', text)} is not an engine: give {ENGINES} "
                     "(N: worker processes, 1 to 256)")


def thread_share(workers: int, cpus: int | None = None) -> int:
    """Threads per op for each of ``workers`` processes so that together they use the
    machine's cores (``os.sched_getaffinity``) without oversubscribing them: at least 1."""
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    return max(1, cpus // workers)


def worker_command(sweep_id: str, threads: int) -> list[str]:
    """The command line of one local worker (the store comes through the environment, so
    that no URL shows in ``ps``)."""
    return [sys.executable, "-m", "zoo_core", "worker", "--sweep", sweep_id,
            "--threads", str(threads)]


def logs_dir(sweep_id: str) -> Path:
    """Where the local workers of a sweep write their output."""
    return paths.zoo_home() / "sweeps" / sweep_id


def start_local(engine: Engine, sweep_id: str, store_location: str | None,
                env: dict[str, str] | None = None) -> list[subprocess.Popen]:
    """Start the ``local:N`` engine's worker processes; their output goes to
    ``logs_dir(sweep_id)/worker-K.log``."""
    folder = paths.ensure_dir(logs_dir(sweep_id), "the sweep's log folder")
    env = dict(os.environ if env is None else env)
    if store_location:
        env[STORE_ENV] = store_location
    command = worker_command(sweep_id, thread_share(engine.workers))
    procs = []
    for k in range(1, engine.workers + 1):
        with open(folder / f"worker-{k}.log", "w") as log:
            procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env))
    return procs


def any_alive(procs: list[subprocess.Popen]) -> bool:
    """Whether any worker still runs; every one that ended is reaped (a zombie would still
    look alive to the other workers, which wait to take over its trial)."""
    return [p.poll() for p in procs].count(None) > 0


def wait_any(procs: list[subprocess.Popen], seconds: float, step: float = 0.02) -> None:
    """Wait ``seconds``, or less: until one of the workers still running ends (so the end of
    a sweep is seen at once, not up to a poll later)."""
    alive = [p for p in procs if p.poll() is None]
    deadline = time.monotonic() + seconds
    while alive and time.monotonic() < deadline:
        time.sleep(min(step, max(0.0, deadline - time.monotonic())))
        if any(p.poll() is not None for p in alive):
            return


def stop_local(procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    """Stop the workers as Ctrl-C would (SIGTERM: each records its trial as interrupted),
    then wait for them; one that does not stop in ``timeout`` seconds is killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def watch(store: Store, sweep_id: str, running: Callable[[], bool],
          on_finished: Callable[[RunRecord, SweepStatus], None],
          poll: float = POLL_SECONDS,
          pause: Callable[[float], None] = time.sleep) -> SweepStatus:
    """Follow a sweep until ``running()`` says its workers are done: ``on_finished`` for each
    trial as it reaches a final status (also those final before). The sweep as it ends.
    Between looks it calls ``pause(poll)``, which may return early (:func:`wait_any`)."""
    seen: set[str] = set()
    while True:
        alive = running()
        status = sweep_status(store, sweep_id)
        for trial in status.trials:
            if trial.status in FINAL_STATUSES and trial.run_id not in seen:
                seen.add(trial.run_id)
                on_finished(trial, status)
        if not alive:
            return status
        pause(poll)
