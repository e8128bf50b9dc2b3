"""Sweeps without training (issue 15, parts 2 and 3): expanding and checking trials, queuing
them in one write, the store's sweep methods on both backends, claiming and taking over
trials, cancelling, re-submitting with --skip-done, engines' names, and run folders kept
relative to ZOO_ARTIFACTS. The engines' real runs are in tests/test_sweep_engines.py."""

from __future__ import annotations

import datetime
import json
import os
import socket
import sqlite3
import subprocess
import sys

import pytest

from zoo_core import paths
from zoo_core.catalogue import open_zoo
from zoo_core.errors import UnknownNameError
from zoo_core.store import liveness
from zoo_core.runs import engines, worker
from zoo_core.store.records import RunRecord
from zoo_core.store.sqlite import MIGRATIONS
from zoo_core.store import open_store

BACKENDS = ["sqlite", "postgresql"]
TINY = ["--epochs", "1", "--limit", "256", "--set", "filters=4,8", "--set", "dense=16,32"]


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgresql_url")
    return str(tmp_path / "home" / "zoo.db")


def trial(run_id: str, **fields) -> RunRecord:
    return RunRecord(**{**dict(
        run_id=run_id, model="cnn", dataset="fashion", plugin="zoo-cnn", plugin_version="0.1.0",
        zoo_version="0.1.0", tf_version="2.21.0", config={"epochs": 1, "limit": 256}, seed=0,
        data_checksums={}, split_sizes={}), **fields})


# -- the command line --------------------------------------------------------------------------


def test_a_sweep_queues_the_cross_product_of_settings_models_and_seeds(zoo, zoo_home):
    result = zoo("sweep", "cnn", *TINY, "--seeds", "2", "--engine", "none")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("sweep sweep-") and "8 trial(s) queued (engine none)" in first
    sweep_id = first.split()[1].rstrip(":")
    with open_store() as store:
        sweep = store.get_sweep(sweep_id)
        trials = store.runs(sweep_id=sweep_id)
    assert sweep.command == "zoo sweep cnn " + " ".join(TINY) + " --seeds 2 --engine none"
    assert [t.status for t in trials] == ["queued"] * 8
    assert {(t.config["filters"], t.config["dense"], t.seed) for t in trials} == {
        (f, d, s) for f in (4, 8) for d in (16, 32) for s in (0, 1)}
    assert len({t.config_id for t in trials}) == 4
    assert all(t.config["epochs"] == 1 and t.config["limit"] == 256 for t in trials)
    status = json.loads(zoo("sweep", "status", sweep_id[:16], "--json").output)
    assert status["counts"]["queued"] == 8 and status["total"] == 8
    assert status["trials"][0]["set"] == {"filters": "4", "dense": "16"}


@pytest.mark.parametrize("args, says", [
    (["--set", "filters=4,many"], "filters"),
    (["--set", "filters=4,,8"], "an empty value"),
    (["--set", "nosuch=1,2"], "nosuch"),
    (["--lr", "-1"], "--lr must be a positive"),
    (["--engine", "spark"], "--engine spark is not an engine"),
    (["--engine", "local:0"], "--engine local:0 is not an engine"),
    (["--all"], "give MODEL... or --all"),
])
def test_a_bad_value_or_engine_is_one_line_and_queues_nothing(zoo, zoo_home, args, says):
    result = zoo("sweep", "cnn", "--epochs", "1", *args, "--engine", "none") \
        if "--engine" not in args else zoo("sweep", "cnn", "--epochs", "1", *args)
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and says in error[0], result.output
    assert "Traceback" not in result.output
    if (zoo_home / "zoo.db").exists():
        with open_store() as store:
            assert store.runs() == [] and store.sweeps() == []


@pytest.mark.parametrize("command", ["status", "cancel"])
def test_an_unknown_sweep_id_is_an_error(zoo, zoo_home, command):
    zoo("sweep", "cnn", "--epochs", "1", "--engine", "none")
    result = zoo("sweep", command, "sweep-nosuch")
    assert result.exit_code == 2  # like an unknown run id: a usage error
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: unknown sweep 'sweep-nosuch'; known sweeps: sweep-"), last


def test_cancel_ends_queued_trials_and_workers_take_none(zoo, zoo_home):
    out = zoo("sweep", "cnn", *TINY, "--engine", "none").output
    sweep_id = out.split()[1].rstrip(":")
    result = zoo("sweep", "cancel", sweep_id)
    assert result.exit_code == 0, result.output
    assert result.output == (f"sweep {sweep_id} cancelled: 4 queued trial(s) cancelled, "
                             "0 running trial(s) stop at their next epoch\n")
    status = json.loads(zoo("sweep", "status", sweep_id, "--json").output)
    assert status["sweep"]["status"] == "cancelled" and status["counts"]["cancelled"] == 4
    assert {t["status"] for t in status["trials"]} == {"interrupted"}
    with open_store() as store:
        assert worker.work(open_zoo(), store, sweep_id=sweep_id).trials == 0


def test_skip_done_leaves_out_trials_completed_with_the_same_settings(zoo, zoo_home):
    zoo_ = open_zoo()
    done = zoo_.resolve("cnn", "fashion", {"epochs": 1}, {"filters": "8", "dense": "16"}, 256)
    with open_store() as store:
        store.create_run(trial("cnn-done", status="completed", config=done.settings.config,
                               test_accuracy=0.5))
    result = zoo("sweep", "cnn", *TINY, "--skip-done", "--engine", "none")
    assert "3 trial(s) queued (engine none); 1 skipped as done" in result.output, result.output
    with open_store() as store:
        queued = store.runs(status="queued")
    assert done.settings.config_id not in {t.config_id for t in queued}


# -- the store's sweeps, on both backends ------------------------------------------------------


def test_the_store_holds_sweeps_and_claims_their_trials_with_an_owner(sweep_record, location):
    owner = liveness.owner()
    with open_store(location) as store:
        assert store.version() == len(MIGRATIONS) >= 4  # 4: sweeps
        store.create_sweep(sweep_record("sweep-a", ["a1", "a2"]),
                           [trial("a1", started_at="2026-01-01T00:00:01+00:00"),
                            trial("a2", started_at="2026-01-01T00:00:02+00:00")])
        store.create_sweep(sweep_record("sweep-b", ["b1"]), [trial("b1", status="running")])
        assert [s.sweep_id for s in store.sweeps()] == ["sweep-a", "sweep-b"]
        assert store.get_sweep("sweep-a").trial("a2")["run_id"] == "a2"
        with pytest.raises(UnknownNameError):
            store.get_sweep("sweep-c")
        claimed = store.claim_run("sweep-b", **owner)
        assert claimed.run_id == "b1" and claimed.sweep_id == "sweep-b"
        assert liveness.expected(store.get("b1")) == liveness.expected(claimed)
        assert store.get("b1").pid == os.getpid() and store.get("b1").status == "running"
        assert store.claim_run("sweep-b", **owner) is None
        assert store.cancel_sweep("sweep-a", "cancelled by a test") == ["a1", "a2"]
        assert {r.status for r in store.runs(sweep_id="sweep-a")} == {"interrupted"}
        assert store.get_sweep("sweep-a").status == "cancelled"
        assert store.claim_run(**owner) is None
        with pytest.raises(Exception, match="already"):
            store.create_sweep(sweep_record("sweep-c", ["a1"]), [trial("a1")])
        assert store.sweeps()[-1].sweep_id == "sweep-b"  # the failed sweep left nothing


def test_a_worker_takes_over_dead_and_interrupted_trials_but_not_cancelled_ones(
        sweep_record, location):
    dead = dict(host=socket.gethostname(), pid=_dead_pid(), owner_started="x:1",
                heartbeat_at="2026-01-01T00:00:00+00:00")
    with open_store(location) as store:
        store.create_sweep(sweep_record("sweep-a", ["a1", "a2", "a3"]), [
            trial("a1"), trial("a2"), trial("a3")])
        for run_id in ("a1", "a2", "a3"):
            store.claim_run("sweep-a", **dead)
        store.finish_run("a2", status="interrupted", error="interrupted after 1 epoch(s)")
        store.finish_run("a3", status="interrupted", error="cancelled by the user")
        taken = [worker.claim(store, "sweep-a") for _ in range(3)]
        assert [(r.run_id if r else None, why) for r, why in taken] == [
            ("a1", "its worker died"), ("a2", "it was interrupted"), (None, None)]
        assert store.get("a1").pid == os.getpid()


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


# -- artifacts: run folders relative to ZOO_ARTIFACTS -----------------------------------------


def test_run_folders_are_stored_relative_to_the_artifacts_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_ARTIFACTS", str(tmp_path / "shared"))
    assert paths.runs_dir() == tmp_path / "shared"
    with open_store(tmp_path / "zoo.db") as store:
        store.create_run(trial("r1", run_dir=str(tmp_path / "shared" / "r1")))
        store.create_run(trial("r0", run_dir="/elsewhere/r0"))  # as zoo-core 0.1 wrote them
    raw = dict(sqlite3.connect(tmp_path / "zoo.db").execute("SELECT run_id, run_dir FROM runs"))
    assert raw == {"r1": "r1", "r0": "/elsewhere/r0"}
    monkeypatch.setenv("ZOO_ARTIFACTS", str(tmp_path / "mounted-elsewhere"))
    with open_store(tmp_path / "zoo.db") as store:
        assert store.get("r1").run_dir == str(tmp_path / "mounted-elsewhere" / "r1")
        assert store.get("r0").run_dir == "/elsewhere/r0"
    monkeypatch.delenv("ZOO_ARTIFACTS")
    assert paths.runs_dir() == paths.zoo_home() / "runs"


# -- engines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, engine", [
    ("local", engines.Engine("local", 1)), ("local:3", engines.Engine("local", 3)),
    ("none", engines.Engine("none")), ("ray", engines.Engine("ray")),
    ("ray://head:10001", engines.Engine("ray", address="ray://head:10001")),
])
def test_engines_are_parsed_and_named_back(text, engine):
    assert engines.parse_engine(text) == engine
    assert str(engine) == ("local:1" if text == "local" else text)


def test_local_workers_share_the_cores_without_oversubscribing():
    assert [engines.thread_share(n, cpus=8) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    command = engines.worker_command("sweep-x", 1)
    assert command[-4:] == ["--sweep", "sweep-x", "--threads", "1"]


def test_status_shows_each_failure_with_its_first_error_line(sweep_record, zoo, zoo_home):
    with open_store() as store:
        store.create_sweep(sweep_record("sweep-f", ["f1", "f2"]), [trial("f1"), trial("f2")])
        store.claim_run("sweep-f", **liveness.owner())
        store.finish_run("f1", status="failed", error="the builder raised ValueError: no\n"
                                                      "  File plugin.py, line 3")
    result = zoo("sweep", "status", "sweep-f")
    assert result.exit_code == 0, result.output
    assert "1/2 trials finished: 1 queued, 1 failed" in result.output
    assert result.output.endswith("failures:\n  f1: the builder raised ValueError: no\n")
    listed = zoo("sweep", "list").output.splitlines()
    assert listed[2].split()[:2] == ["sweep-f", "active"] and listed[2].split()[-2:] == ["1/2", "1"]


def test_a_trial_on_another_host_is_taken_over_when_its_lease_expires(
        sweep_record, zoo_home, monkeypatch):
    monkeypatch.setenv("ZOO_LEASE_SECONDS", "30")
    beat = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=20)
    elsewhere = dict(host="gpu-box", pid=4242, owner_started="b:1",
                     heartbeat_at=beat.isoformat(timespec="seconds"))
    with open_store() as store:
        store.create_sweep(sweep_record("sweep-l", ["l1"]), [trial("l1")])
        store.claim_run("sweep-l", **elsewhere)
        assert worker.claim(store, "sweep-l") == (None, None)  # 20 s < the 30 s lease
        monkeypatch.setenv("ZOO_LEASE_SECONDS", "10")
        assert liveness.heartbeat_seconds() == 2.5  # a live owner beats 4 times per lease
        taken, why = worker.claim(store, "sweep-l")
    assert (taken.run_id, why, taken.host) == ("l1", "its worker died", socket.gethostname())


def test_a_cancelled_trial_that_never_started_is_not_resumed(zoo, zoo_home):
    out = zoo("sweep", "cnn", "--epochs", "1", "--engine", "none").output
    sweep_id = out.split()[1].rstrip(":")
    zoo("sweep", "cancel", sweep_id)
    with open_store() as store:
        (run,) = store.runs()
    result = zoo("run", "--resume", run.run_id)
    assert result.exit_code == 2
    assert "never started training (cancelled with sweep" in result.output
