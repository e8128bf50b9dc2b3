"""Sweep engines side by side (issue 15, part 5): a sweep of 8 tiny trials run sequentially
(`--engine local:1`), on `local:2` and on Ray with 2 CPUs; each engine's overhead per trial;
how fast each store backend takes epochs from 4 writers at once.

    python benchmarks/sweep.py            # 8 trials of a few seconds; some minutes, on a quiet machine
    python benchmarks/sweep.py --quick    # a smoke test: 4 trials of one tiny epoch

What is measured, and how:

- wall time: `zoo sweep cnn ... --seeds 8 --engine E` from submission to the last trial
  recorded (SQLite store), in a fresh ZOO_HOME each; Ray's local instance (2 CPUs) is
  started before and its start-up reported apart. Targets: local:2 >= 1.7x sequential.
- overhead per trial: from the moment a worker holds a trial (claimed) to the trial's first
  training step (settings, data from the worker's cache, graph, session), in a `zoo worker`
  process (local) and in Ray tasks, where the time from submitting a task to its start is
  added; each worker's start (Python, TensorFlow, plugins) is shown apart, once per worker.
  Claim latency: one `Store.claim_run` on SQLite and PostgreSQL. Targets: < 1 s on local,
  < 3 s on Ray.
- store throughput: 4 processes each adding epochs to their own run, at once; epochs per
  second over all of them, SQLite and PostgreSQL (a throw-away server, as the tests start).

The machine should be quiet: every figure is a wall time on shared cores.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(ROOT))

from zoo_core.runs.worker import WorkerEvents  # noqa: E402

FULL = dict(trials=8, args=["--epochs", "3", "--limit", "4096"], claims=200, epochs=500)
QUICK = dict(trials=4, args=["--epochs", "1", "--limit", "256"], claims=20, epochs=50)
TRIAL = ["cnn", "--batch-size", "64", "--set", "filters=8", "--set", "dense=32"]
WRITERS = 4


class Timing(WorkerEvents):
    """Milliseconds from each claimed trial to its first training step."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.claimed_at: float | None = None

    def claimed(self, record, taken_over) -> None:
        self.claimed_at = time.perf_counter()

    def steps(self, count, loss, accuracy) -> None:
        if self.claimed_at is not None:
            self.ms.append(1000 * (time.perf_counter() - self.claimed_at))
            self.claimed_at = None

    def step(self, loss, accuracy) -> None:
        self.steps(1, loss, accuracy)


def timed_worker(location: str, sweep_id: str, threads: int, max_trials: int | None) -> dict:
    """The worker loop of `zoo worker`, timed: when it was ready (wall clock: TensorFlow
    imported, plugins loaded, as a worker is before its first claim), and each trial's claim
    to first step."""
    from zoo_core._tf import tf as import_tf
    from zoo_core.catalogue import open_zoo
    from zoo_core.runs import worker
    from zoo_core.store import open_store

    import_tf()
    zoo = open_zoo()
    ready = time.time()
    events = Timing()
    with open_store(location) as store:
        worker.work(zoo, store, sweep_id=sweep_id, max_trials=max_trials,
                    threads=threads, wait=False, events=events)
    return {"ready": ready, "ms": events.ms}


def zoo(*args: str) -> str:
    from click.testing import CliRunner

    from zoo_core.cli import cli

    result = CliRunner().invoke(cli, list(args), prog_name="zoo")
    if result.exit_code != 0:
        raise SystemExit(f"zoo {' '.join(args)} failed:\n{result.output}")
    return result.output


@contextlib.contextmanager
def fresh_home():
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as home:
        old = os.environ.get("ZOO_HOME")
        os.environ["ZOO_HOME"] = home
        try:
            yield Path(home)
        finally:
            os.environ.pop("ZOO_HOME") if old is None else os.environ.update(ZOO_HOME=old)


def sweep_wall(engine: str, size: dict) -> float:
    """Seconds `zoo sweep` takes on ``engine``, from submission to its summary."""
    with fresh_home():
        start = time.perf_counter()
        out = zoo("sweep", *TRIAL, *size["args"], "--seeds", str(size["trials"]), "--engine", engine)
        seconds = time.perf_counter() - start
    if f": {size['trials']} completed" not in out.splitlines()[-1]:
        raise SystemExit(f"the sweep on {engine} did not complete every trial:\n{out}")
    return seconds


def queue(size: dict) -> str:
    out = zoo("sweep", *TRIAL, *size["args"], "--seeds", str(size["trials"]), "--engine", "none")
    return out.split()[1].rstrip(":")


def local_overhead(size: dict) -> dict:
    """One `zoo worker`-like process (all cores) draining a sweep, timed."""
    with fresh_home() as home:
        sweep_id = queue(size)
        spawned = time.time()
        code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
                f"import sweep; print(json.dumps(sweep.timed_worker({str(home / 'zoo.db')!r}, "
                f"{sweep_id!r}, 0, None)))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                 [str(ROOT), os.environ.get("PYTHONPATH", "")])})
    timed = json.loads(out.stdout.strip().splitlines()[-1])
    return {"trial_ms": timed["ms"], "worker_start_ms": 1000 * (timed["ready"] - spawned)}


def ray_overhead(ray, size: dict) -> dict:
    """Ray tasks of one trial each (as `--engine ray` starts them), one at a time, timed from
    submission (so no task waits for a CPU another holds)."""
    from zoo_core import paths

    with fresh_home() as home:
        sweep_id = queue(size)
        task = ray.remote(num_cpus=1)(timed_worker).options(
            runtime_env={"env_vars": {"ZOO_ARTIFACTS": str(paths.runs_dir()),
                                      "TF_CPP_MIN_LOG_LEVEL": "3"}})
        trial_ms = []
        for _ in range(size["trials"]):
            submitted = time.time()
            timed = ray.get(task.remote(str(home / "zoo.db"), sweep_id, 1, 1))
            trial_ms += [1000 * (timed["ready"] - submitted) + ms for ms in timed["ms"]]
    return {"trial_ms": trial_ms}


def claim_ms(location: str, count: int) -> float:
    """Median milliseconds of one claim_run, with ``count`` runs queued."""
    from zoo_core.store.records import RunRecord
    from zoo_core.store import open_store

    with open_store(location) as store:
        for i in range(count):
            store.queue_run(_record(f"claim-{i}", RunRecord))
        times = []
        for _ in range(count):
            start = time.perf_counter()
            store.claim_run(host="bench", pid=1)
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def _record(run_id: str, record_type):
    return record_type(run_id=run_id, model="cnn", dataset="fashion", plugin="zoo-cnn",
                       plugin_version="0", zoo_version="0", tf_version="0", config={},
                       seed=0, data_checksums={}, split_sizes={})


def _writer(location: str, index: int, epochs: int, barrier) -> None:
    from zoo_core.store.records import RunRecord
    from zoo_core.store import open_store

    with open_store(location) as store:
        store.create_run(_record(f"writer-{index}", RunRecord))
        barrier.wait()
        for epoch in range(1, epochs + 1):
            store.add_epoch(f"writer-{index}", epoch, train_loss=1.0 / epoch, val_accuracy=0.5)


def epochs_per_second(location: str, epochs: int) -> float:
    """Epochs per second that WRITERS processes add at once, each to its own run."""
    from zoo_core.store import open_store

    with open_store(location) as store:
        store.check()  # the schema made before the writers race
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WRITERS + 1)
    procs = [ctx.Process(target=_writer, args=(location, i, epochs, barrier))
             for i in range(WRITERS)]
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    for proc in procs:
        proc.join()
    if any(proc.exitcode for proc in procs):
        raise SystemExit(f"a store writer failed on {location}")
    return WRITERS * epochs / (time.perf_counter() - start)


def postgresql():
    """A throw-away PostgreSQL server (tests/conftest.py's), or None where there is none."""
    spec = importlib.util.spec_from_file_location("zoo_conftest", ROOT / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    if conftest._pg_bindir() is None:
        return contextlib.nullcontext(None)
    return conftest.throwaway_postgresql()


def new_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def stores(size: dict) -> dict:
    """Claim latency and write throughput of SQLite and (when its server is here) PostgreSQL."""
    result = {}
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as folder, postgresql() as server:
        locations = {"sqlite": (str(Path(folder, "claims.db")), str(Path(folder, "writes.db")))}
        if server:
            locations["postgresql"] = (new_database(server, "claims"),
                                       new_database(server, "writes"))
        for name, (claims, writes) in locations.items():
            result[name] = {"claim_ms": claim_ms(claims, size["claims"]),
                            "epochs_per_s": epochs_per_second(writes, size["epochs"])}
    return result


def engines(size: dict, with_ray: bool) -> dict:
    result = {"sequential (local:1)": sweep_wall("local:1", size),
              "local:2": sweep_wall("local:2", size)}
    overhead = {"local": local_overhead(size)}
    if with_ray:
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
        try:
            overhead["ray start-up s"] = time.perf_counter() - start
            result["ray (2 CPUs)"] = sweep_wall("ray", size)
            overhead["ray"] = ray_overhead(ray, size)
        finally:
            ray.shutdown()
    return {"wall_s": result, "overhead": overhead}


def report(size: dict, figures: dict) -> None:
    wall = figures["wall_s"]
    base = wall["sequential (local:1)"]
    print(f"sweep of {size['trials']} trials: {' '.join(TRIAL + size['args'])}")
    for name, seconds in wall.items():
        print(f"  {name:<22} {seconds:7.1f} s   {base / seconds:4.2f}x sequential")
    print("  target: local:2 >= 1.70x sequential on 2 cores "
          f"({'met' if base / wall['local:2'] >= 1.7 else 'NOT met'})")
    print("overhead per trial, claimed -> first step (median ms; Ray: from the task's "
          "submission, one task at a time, the first one starting a worker):")
    for name, target in (("local", 1000), ("ray", 3000)):
        if name in figures["overhead"]:
            ms = statistics.median(figures["overhead"][name]["trial_ms"])
            print(f"  {name:<22} {ms:7.0f} ms  (target < {target} ms: "
                  f"{'met' if ms < target else 'NOT met'})")
    local = figures["overhead"]["local"]
    print(f"  a local worker's start (Python, TensorFlow, plugins; once per worker): "
          f"{local['worker_start_ms']:.0f} ms")
    if "ray start-up s" in figures["overhead"]:
        print(f"  Ray's local start-up (once): {figures['overhead']['ray start-up s']:.1f} s")
    print(f"stores: claim latency (median), epochs/s with {WRITERS} writers at once:")
    for name, store in figures["stores"].items():
        print(f"  {name:<22} claim {store['claim_ms']:6.1f} ms   "
              f"{store['epochs_per_s']:8.0f} epochs/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 trials of one tiny epoch")
    parser.add_argument("--no-ray", action="store_true", help="leave Ray out")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with_ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    figures = {**engines(size, with_ray), "stores": stores(size)}
    report(size, figures)
    if args.json:
        Path(args.json).write_text(json.dumps({"size": size, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
