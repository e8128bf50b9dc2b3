"""Sweep engines side by side (issue 15, part 5; issue 31, part 3): sweeps of 1-epoch trials
run sequentially (`--engine local:1`), on `local:2` and on Ray with 2 CPUs, in interleaved
rounds; where a trial's wall time goes; how fast each store takes claims and epochs.

    python benchmarks/sweep.py                     # 5 rounds of 8 one-epoch trials, then the rest
    python benchmarks/sweep.py --tiny --no-ray     # proves the script in a minute or two

Everything measured so far is written to the JSON file (``--json``, default
benchmarks/sweep-DATE.json) after each measurement, so a crash or a Ctrl-C keeps it.

What is measured, and how:

- rounds: each round runs the same sweep (`zoo sweep cnn ... --seeds TRIALS --engine E`,
  from submission to the last trial recorded, SQLite store, a fresh ZOO_HOME each) once on
  every engine, in an order that rotates from round to round (sequential, local:2, ray;
  then local:2, ray, sequential; ...), so that a change in the machine's load falls on
  every engine alike. The figure is the median over rounds of each round's ratio
  (sequential seconds / engine seconds) with its interquartile range. Ray's local instance
  (2 CPUs) is started once before the rounds; its start-up is reported apart.
  Target: local:2 >= 1.7x sequential on 2 cores.
- breakdown: one `zoo worker`-like process draining a sweep of 2 trials under cProfile:
  process start and imports, then per trial the cumulative time of data loading, the
  graph build, counting MACs, training, evaluation, predictions and plots.
- overhead per trial: from the moment a worker holds a trial (claimed) to the trial's first
  training step, in a `zoo worker` process (local) and in Ray tasks (from submission).
  Targets: < 1 s on local, < 3 s on Ray.
- threads (only when asked, ``--only threads``): at most 3 interleaved rounds of the
  sequential sweep with 2 threads per op (the default on 2 cores) and with 1, and of local:2
  with 1 thread per worker (the default) and with 2 each: what a worker's one thread costs.
- stores: claim latency (one `Store.claim_run`) and epochs per second from 4 writers at once,
  SQLite and PostgreSQL (a throw-away server: zoo_core/testing/postgresql.py).

No pytest and nothing of tests/ is needed. The machine should be quiet: every figure is a
wall time on shared cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
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

FULL = dict(rounds=5, trials=8, args=["--epochs", "1", "--limit", "4096"], claims=200,
            epochs=500)
TINY = dict(rounds=2, trials=4, args=["--epochs", "1", "--limit", "256"], claims=20, epochs=50)
ENGINES = {"sequential": "local:1", "local:2": "local:2", "ray": "ray"}
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
        timed = _in_a_process(f"timed_worker({str(home / 'zoo.db')!r}, {sweep_id!r}, 0, None)")
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
    """A throw-away PostgreSQL server, or None where its binaries or psycopg are absent."""
    from zoo_core.testing.postgresql import pg_bindir, throwaway_postgresql

    if pg_bindir() is None or importlib.util.find_spec("psycopg") is None:
        return contextlib.nullcontext(None)
    return throwaway_postgresql()


def stores(size: dict) -> dict:
    """Claim latency and write throughput of SQLite and (when its server is here) PostgreSQL."""
    from zoo_core.testing.postgresql import new_database

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


class Results:
    """The figures so far, written to ``path`` after each measurement."""

    def __init__(self, path: Path, size: dict) -> None:
        self.path = path
        self.data = {"command": " ".join(["python", "benchmarks/sweep.py", *sys.argv[1:]]),
                     "date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
                     "trial": " ".join(TRIAL + size["args"]), "size": size, "rounds": []}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.write()

    def write(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")


def order(round_index: int, names: list[str]) -> list[str]:
    """The engines of round ``round_index`` (0-based), rotated one place per round."""
    k = round_index % len(names)
    return names[k:] + names[:k]


def ratios(rounds: list[dict], engine: str, base: str = "sequential") -> dict | None:
    """Median and interquartile range of the per-round ratios ``base`` / ``engine``."""
    values = [r[base] / r[engine] for r in rounds if base in r and engine in r and r[engine] > 0]
    if not values:
        return None
    q1, _, q3 = (statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1
                 else (values[0],) * 3)
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "n": len(values)}


def run_rounds(size: dict, with_ray: bool, results: Results) -> None:
    names = [n for n in ENGINES if with_ray or n != "ray"]
    ray = None
    if with_ray:
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
        results.put("ray_start_s", time.perf_counter() - start)
    try:
        for index in range(size["rounds"]):
            wall: dict[str, float] = {}
            results.data["rounds"].append(wall)
            for name in order(index, names):
                wall[name] = sweep_wall(ENGINES[name], size)
                print(f"round {index + 1}/{size['rounds']}: {name:<10} {wall[name]:6.1f} s",
                      flush=True)
                results.put("ratios", {n: ratios(results.data["rounds"], n)
                                       for n in names if n != "sequential"})
        if ray is not None:
            results.put("overhead_ray", ray_overhead(ray, size))
    finally:
        if ray is not None:
            ray.shutdown()


# threads: what one thread per local:2 worker costs, and whether two each would do better.
# Each name: the engine, and the threads per op every one of its workers is given.
THREADS = {"sequential": ("local:1", 2), "sequential, 1 thread": ("local:1", 1),
           "local:2": ("local:2", 1), "local:2, 2 threads each": ("local:2", 2)}


def run_threads(size: dict, results: Results) -> None:
    """Interleaved rounds (at most 3) of the THREADS variants: each one's ratio to the
    sequential sweep's time (2 threads per op, the default on 2 cores)."""
    from zoo_core.runs import engines

    share, rounds = engines.thread_share, []
    try:
        for index in range(min(3, size["rounds"])):
            wall: dict[str, float] = {}
            rounds.append(wall)
            for name in order(index, list(THREADS)):
                engine, threads = THREADS[name]
                engines.thread_share = lambda workers, cpus=None, threads=threads: threads
                wall[name] = sweep_wall(engine, size)
                print(f"threads round {index + 1}: {name:<24} {wall[name]:6.1f} s", flush=True)
                results.put("threads", {"rounds": rounds, "ratios": {
                    n: ratios(rounds, n) for n in THREADS if n != "sequential"}})
    finally:
        engines.thread_share = share


# Where a trial's time goes: (label, function name) of zoo_core, cumulative under cProfile.
PHASES = [("data load", "load"), ("graph build", "build_graph"), ("MACs count", "model_cost"),
          ("training", "_epoch"), ("evaluation", "evaluate"),
          ("predictions", "_save_predictions"), ("plots", "_draw_plots"),
          ("whole trial", "run_trial")]


def profiled_worker(location: str, sweep_id: str, spawned: float) -> dict:
    """In a fresh process: seconds from spawning to Python ready, to TensorFlow imported, to
    the plugins loaded; then cProfile's cumulative seconds of each phase of the trials."""
    import cProfile
    import pstats

    started = time.time()
    from zoo_core._tf import tf as import_tf
    from zoo_core.catalogue import open_zoo
    from zoo_core.runs import worker
    from zoo_core.store import open_store

    import_tf()
    imported = time.time()
    zoo = open_zoo()
    ready = time.time()
    profile = cProfile.Profile()
    with open_store(location) as store:
        done = profile.runcall(worker.work, zoo, store, sweep_id=sweep_id, wait=False)
    stats = pstats.Stats(profile).stats
    phases = {}
    for label, name in PHASES:
        found = [(calls, cumulative) for (file, _, func), (_, calls, _, cumulative, _)
                 in stats.items() if func == name and "zoo_core" in file]
        phases[label] = {"calls": sum(c for c, _ in found), "s": sum(t for _, t in found)}
    return {"process start s": started - spawned, "TensorFlow import s": imported - started,
            "plugins s": ready - imported, "trials": done.trials, "phases": phases}


def breakdown(size: dict) -> dict:
    """A 2-trial sweep drained by one profiled worker process (all cores)."""
    two = {**size, "trials": 2}
    with fresh_home() as home:
        sweep_id = queue(two)
        return _in_a_process(
            f"profiled_worker({str(home / 'zoo.db')!r}, {sweep_id!r}, {time.time()!r})")


def _in_a_process(call: str) -> dict:
    """``call`` (this module's function with its arguments, as Python source) run in a new
    Python process, as a worker process would run: the JSON its result prints."""
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            f"import sweep; print(json.dumps(sweep.{call}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [str(ROOT), os.environ.get("PYTHONPATH", "")])})
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(figures: dict) -> None:
    size = figures["size"]
    print(f"\n{figures['command']}  ({figures['date']}, {figures['cores']} cores)")
    print(f"sweeps of {size['trials']} trials: {figures['trial']}, {len(figures['rounds'])} "
          "interleaved rounds")
    for name in ENGINES:
        seconds = [r[name] for r in figures["rounds"] if name in r]
        if not seconds:
            continue
        line = f"  {name:<12} median {statistics.median(seconds):7.1f} s"
        found = (figures.get("ratios") or {}).get(name)
        if found:
            line += (f"   {found['median']:4.2f}x sequential (IQR {found['q1']:.2f}-"
                     f"{found['q3']:.2f}, {found['n']} rounds)")
        print(line)
    local = (figures.get("ratios") or {}).get("local:2")
    if local:
        print(f"  target: local:2 >= 1.70x sequential on 2 cores "
              f"({'met' if local['median'] >= 1.7 else 'NOT met'})")
    if "ray_start_s" in figures:
        print(f"  Ray's local start-up (once, before the rounds): {figures['ray_start_s']:.1f} s")
    if "breakdown" in figures:
        b = figures["breakdown"]
        print(f"where a worker's time goes (cProfile, {b['trials']} trials, seconds per trial):")
        for key in ("process start s", "TensorFlow import s", "plugins s"):
            print(f"  {key[:-2]:<22} {b[key]:6.2f} s  (once per worker)")
        for label, phase in b["phases"].items():
            print(f"  {label:<22} {phase['s'] / max(1, b['trials']):6.2f} s")
    for name, target in (("overhead_local", 1000), ("overhead_ray", 3000)):
        if name in figures:
            ms = statistics.median(figures[name]["trial_ms"])
            print(f"  {name[9:]} claimed -> first step: {ms:.0f} ms median "
                  f"(target < {target} ms: {'met' if ms < target else 'NOT met'})")
    for name, store in figures.get("stores", {}).items():
        print(f"  store {name:<12} claim {store['claim_ms']:6.1f} ms   "
              f"{store['epochs_per_s']:8.0f} epochs/s ({WRITERS} writers)")
    for name, found in (figures.get("threads") or {}).get("ratios", {}).items():
        if found:
            print(f"  threads: {name:<24} {found['median']:4.2f}x sequential (IQR "
                  f"{found['q1']:.2f}-{found['q3']:.2f}, {found['n']} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="2 rounds of 4 trials of one tiny epoch: proves the script")
    parser.add_argument("--rounds", type=int, help="rounds (default 5; --tiny 2)")
    parser.add_argument("--no-ray", action="store_true", help="leave Ray out")
    parser.add_argument("--only", default="rounds,breakdown,overhead,stores",
                        help="comma-separated parts to measure (default all but threads): "
                             "rounds, breakdown, overhead, stores, threads")
    parser.add_argument("--json", metavar="FILE", type=Path,
                        default=ROOT / "benchmarks" / f"sweep-{datetime.date.today()}.json",
                        help="where the figures go, rewritten after each measurement")
    args = parser.parse_args()
    size = dict(TINY if args.tiny else FULL)
    if args.rounds:
        size["rounds"] = args.rounds
    parts = set(args.only.split(","))
    with_ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    results = Results(args.json, size)
    results.write()
    print(f"figures go to {args.json}, rewritten after each measurement", flush=True)
    if "rounds" in parts:
        run_rounds(size, with_ray, results)
    if "breakdown" in parts:
        results.put("breakdown", breakdown(size))
    if "overhead" in parts:
        results.put("overhead_local", local_overhead(size))
    if "stores" in parts:
        results.put("stores", stores(size))
    if "threads" in parts:
        run_threads(size, results)
    report(results.data)


if __name__ == "__main__":
    main()
