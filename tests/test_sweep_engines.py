"""Sweeps on the real engines (issue 15, part 4): real `zoo sweep` / `zoo worker` processes
training tiny CNNs on real Fashion-MNIST, into SQLite and into a real PostgreSQL server
(tests/conftest.py starts it), and a real local Ray (tests/test_sweep_ray.py).

Each trial is 256 training examples, a 4-filter CNN, a few epochs of a fraction of a second:
what costs time is each worker process importing TensorFlow, so the tests start few.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo_core.store import open_store

pytestmark = pytest.mark.slow
FASHION = Path("/usr/share/datasets/fashion-mnist")
# tiny trials: 2 x 2 settings, or 2 seeds of one, each a few tenths of a second per epoch
TINY = ["cnn", "--limit", "256", "--batch-size", "64", "--set", "dense=16",
        "--set", "steps_per_call=1"]


@pytest.fixture(autouse=True)
def _fashion():
    if not FASHION.is_dir():
        pytest.skip(f"the real Fashion-MNIST is not at {FASHION}")


def environ(home: Path, store: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS", "ZOO_STORE",
                        "ZOO_ARTIFACTS")}
    env.update(ZOO_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1", **extra)
    if store:
        env["ZOO_STORE"] = store
    return env


def worker(home: Path, store: str, sweep_id: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "zoo_core", "worker", "--sweep", sweep_id, "--threads", "1"],
        env=environ(home, store, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def queued(zoo, store: str, *args: str) -> str:
    """Queue a sweep with --engine none; its id."""
    out = zoo("sweep", *TINY, *args, "--engine", "none", store=store, code=0).output
    return out.split()[1].rstrip(":")


def claims(output: str) -> list[str]:
    return re.findall(r"^claimed (\S+)", output, re.M)


def leaderboard(zoo, store: str | None = None) -> list[dict]:
    return json.loads(zoo("leaderboard", "--include-partial", "--json", store=store, code=0).output)


def test_a_sweep_on_local_2_with_sqlite_trains_every_trial_once(zoo, zoo_home):
    home = zoo_home  # `zoo sweep` runs here; its two workers are real processes
    lines = zoo("sweep", *TINY, "--epochs", "2", "--set", "filters=4,8", "--seeds", "2",
                "--engine", "local:2", code=0).output.splitlines()
    sweep_id = lines[0].split()[1].rstrip(":")
    assert lines[0].endswith("4 trial(s) queued (engine local:2)")
    assert [line[:5] for line in lines[1:5]] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert lines[-1] == f"sweep {sweep_id}: 4 completed"
    logs = [p.read_text() for p in sorted((home / "sweeps" / sweep_id).glob("worker-*.log"))]
    assert len(logs) == 2 and all(claims(log) for log in logs)  # both workers took trials
    taken = claims(logs[0]) + claims(logs[1])
    with open_store(home / "zoo.db") as store:
        trials = store.runs(sweep_id=sweep_id)
        assert sorted(taken) == sorted(t.run_id for t in trials)  # each once, none lost
        assert {(t.status, t.epochs_run) for t in trials} == {("completed", 2)}
        assert all(Path(t.run_dir, "metrics.json").exists() for t in trials)
    board = leaderboard(zoo)
    assert sorted(row["n"] for row in board) == [2, 2]  # two configs, two seeds each


def test_two_workers_drain_a_postgresql_queue_with_no_trial_twice(zoo, zoo_home, postgresql_url):
    home = zoo_home
    sweep_id = queued(zoo, postgresql_url, "--epochs", "1", "--set", "filters=4,8", "--seeds", "2")
    procs = [worker(home, postgresql_url, sweep_id) for _ in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    taken = [claims(out) for out, _ in outputs]
    with open_store(postgresql_url) as store:
        trials = store.runs(sweep_id=sweep_id)
    assert len(trials) == 4 and {t.status for t in trials} == {"completed"}
    assert sorted(taken[0] + taken[1]) == sorted(t.run_id for t in trials)
    assert not set(taken[0]) & set(taken[1])
    assert all(re.search(r"worker done: \d trial\(s\)", out) for out, _ in outputs)
    assert sum(row["n"] for row in leaderboard(zoo, postgresql_url)) == 4


def test_a_killed_worker_s_trial_is_finished_once_by_the_other_from_its_checkpoint(
        zoo, zoo_home, postgresql_url):
    home = zoo_home
    # two trials of 4 epochs; each worker takes one; one worker is killed after its epoch 1
    sweep_id = queued(zoo, postgresql_url, "--epochs", "4", "--seeds", "2", "--set", "filters=4")
    procs = [worker(home, postgresql_url, sweep_id) for _ in range(2)]
    with open_store(postgresql_url) as store:
        deadline = time.monotonic() + 180
        while not (victim := _running_after_one_epoch(store, sweep_id)):
            assert time.monotonic() < deadline, [p.communicate()[1][-2000:] for p in procs]
            time.sleep(0.1)
        killed = next(p for p in procs if p.pid == victim.pid)
        killed.send_signal(signal.SIGKILL)
        killed.communicate()  # reaped (`zoo sweep` reaps its workers as they end too)
        survivor = next(p for p in procs if p is not killed)
        out, err = survivor.communicate(timeout=240)
        assert survivor.returncode == 0, err[-2000:]
        assert killed.returncode == -signal.SIGKILL
        trials = {t.run_id: t for t in store.runs(sweep_id=sweep_id)}
        epochs = [e["epoch"] for e in store.epochs(victim.run_id)]
    assert f"claimed {victim.run_id} (sweep {sweep_id}, taken over: its worker died, from " \
           "epoch" in out
    started = int(re.search(rf"claimed {victim.run_id} .*from epoch (\d+)\)", out).group(1))
    assert started >= 2  # continued from a checkpoint, not from its seed
    assert {t.status for t in trials.values()} == {"completed"}
    assert trials[victim.run_id].pid == survivor.pid and epochs == [1, 2, 3, 4]
    assert sorted(row["n"] for row in leaderboard(zoo, postgresql_url)) == [2]  # once each


def _running_after_one_epoch(store, sweep_id):
    return next((t for t in store.runs(status="running", sweep_id=sweep_id)
                 if t.epochs_run >= 1 and t.pid), None)


def test_cancel_stops_a_running_trial_at_its_next_epoch_and_its_queued_ones_at_once(zoo, zoo_home):
    from zoo_core.catalogue import open_zoo
    from zoo_core.runs import sweep, worker

    sweep_id = queued(zoo, None, "--epochs", "3", "--seeds", "2", "--set", "filters=4")

    class CancelAfterEpoch1(worker.WorkerEvents):
        def epoch_end(self, record):
            if record["epoch"] == 1:
                with open_store() as other:  # as `zoo sweep cancel` would, from elsewhere
                    self.cancelled = sweep.cancel(other, sweep_id)

    events = CancelAfterEpoch1()
    with open_store() as store:
        done = worker.work(open_zoo(), store, sweep_id=sweep_id, events=events)
        first, second = store.runs(sweep_id=sweep_id)
    _, ended, running = events.cancelled
    assert (ended, running) == ([second.run_id], [first.run_id])
    assert done.cancelled == [first.run_id] and done.trials == 1  # the second never started
    assert first.status == "interrupted" and first.epochs_run == 1
    assert first.error == f"cancelled with sweep {sweep_id} after 1 epoch(s)"
    assert Path(first.run_dir, "checkpoint.json").exists()  # kept: `zoo run --resume` works
    assert second.status == "interrupted" and second.error.startswith("cancelled with sweep")
    status = json.loads(zoo("sweep", "status", sweep_id, "--json", code=0).output)
    assert status["counts"]["cancelled"] == 2 and status["sweep"]["status"] == "cancelled"


@pytest.mark.parametrize("queued_with, worker_with", [(False, True), (True, False)],
                         ids=["queued-without-bf16-run-with", "queued-with-bf16-run-without"])
def test_a_sweep_asking_for_auto_precision_completes_whichever_cpu_claims_it(
        zoo, zoo_home, monkeypatch, queued_with, worker_with):
    """The same request has the same config id on every machine: a trial queued where the CPU
    has no bfloat16 runs on a worker where it has, and the reverse; each records what ran."""
    from zoo_core import settings
    from zoo_core.catalogue import open_zoo
    from zoo_core.runs import worker

    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: queued_with)
    sweep_id = queued(zoo, None, "--epochs", "1", "--precision", "auto", "--set", "filters=4")
    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: worker_with)
    with open_store() as store:
        done = worker.work(open_zoo(), store, sweep_id=sweep_id)
        trial, = store.runs(sweep_id=sweep_id)
    assert (done.completed, done.failed) == ([trial.run_id], [])
    assert trial.config["bf16"] is True  # asked: bfloat16 where the CPU has it
    ran = "bfloat16" if worker_with else "float32"
    assert trial.precision == ran
    shown = json.loads(zoo("runs", "--json", code=0).output)[0]
    assert shown["precision"] == ran and shown["status"] == "completed"
