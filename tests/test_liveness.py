"""Whether a run recorded as running is alive (issue 19, case 3): its owner's pid and
process start on this machine, its heartbeat elsewhere. Runs are recorded by hand here; the
real kills are in tests/test_fault_matrix.py."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from zoo_core.cli import cli
from zoo_core.store import liveness
from zoo_core.store.records import RunRecord
from zoo_core.store import open_store


def zoo(*args):
    return CliRunner().invoke(cli, list(args), prog_name="zoo")


def ago(seconds: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return when.isoformat(timespec="seconds")


def record(run_id: str, **owner) -> RunRecord:
    return RunRecord(run_id=run_id, model="cnn", dataset="fashion", plugin="zoo-cnn",
                     plugin_version="0.1.0", zoo_version="0.1.0", tf_version="2.16.1",
                     config={"epochs": 2, "limit": None}, seed=0, data_checksums={},
                     split_sizes={"train": 10, "test": 10}, **owner)


def test_a_process_start_tells_a_reused_pid_apart():
    me = liveness.process_started(os.getpid())
    assert me and me == liveness.process_started(os.getpid())
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    assert liveness.process_started(int(child.stdout)) == ""  # gone
    assert liveness.owner()["owner_started"] == me


@pytest.mark.parametrize("owner, alive", [
    (dict(host=socket.gethostname(), pid=os.getpid(),
          owner_started=liveness.process_started(os.getpid())), True),
    # this pid, but a process that started at another time: the owner is gone, its pid reused
    (dict(host=socket.gethostname(), pid=os.getpid(), owner_started="another-boot:1"), False),
    (dict(host="gpu-box", pid=4242, heartbeat_at=5), True),  # seconds ago, at test time
    (dict(host="gpu-box", pid=4242, heartbeat_at=liveness.LEASE_SECONDS + 60), False),
])
def test_a_running_run_is_dead_when_its_owner_is_gone(zoo_home, owner, alive):
    if "heartbeat_at" in owner:
        owner = {**owner, "heartbeat_at": ago(owner["heartbeat_at"])}
    with open_store() as store:
        store.create_run(record("cnn-r", **owner))
    listed = zoo("runs")
    assert listed.exit_code == 0, listed.output
    shown = "running" if alive else liveness.DIED
    assert f"{shown}" in listed.output
    r = zoo("runs", "rm", "cnn-r", "--yes")
    if alive:  # refused without --force, and the message names the owner
        assert r.exit_code == 1
        assert f"run cnn-r is running (pid {owner['pid']} on {owner['host']}" in r.output
        assert "stop it first, then remove it" in r.output
    else:
        assert r.exit_code == 0 and "removed cnn-r" in r.output, r.output


def test_json_outputs_give_the_status_a_user_sees_and_keep_the_stored_one(zoo_home):
    """A script reading `zoo runs --json` or `zoo show --json` sees a dead run as dead."""
    with open_store() as store:
        store.create_run(record("cnn-r", host="gpu-box", pid=4242,
                                heartbeat_at=ago(liveness.LEASE_SECONDS + 60)))
    listed = json.loads(zoo("runs", "--json").stdout)
    shown = json.loads(zoo("show", "cnn-r", "--json").stdout)
    for got in (listed[0], shown):
        assert (got["status"], got["stored_status"]) == (liveness.DIED, "running")
    assert "shown_status" not in shown  # one name for what is shown


def test_a_dead_run_on_another_host_can_be_resumed(zoo_home):
    with open_store() as store:
        store.create_run(record("cnn-r", host="gpu-box", pid=4242,
                                heartbeat_at=ago(liveness.LEASE_SECONDS + 1)))
    r = zoo("run", "--resume", "cnn-r")
    # past the liveness check: it fails later, on the missing run (no data or checkpoints here)
    assert "only interrupted or failed runs can be resumed" not in r.output
    with open_store() as store:
        assert store.get("cnn-r").status == "interrupted"
        assert store.get("cnn-r").error == "its process died"


def test_resume_takes_a_run_over_with_a_new_owner_in_one_write(zoo_home):
    with open_store() as store:
        store.create_run(record("cnn-r", host="gpu-box", pid=4242, owner_started="b:1"))
        store.finish_run("cnn-r", status="interrupted")
        before = store.get("cnn-r")
        now = liveness.take_over(store, before)
        assert now == store.get("cnn-r") and now.status == "running"
        assert (now.host, now.pid, now.owner_started) == (
            socket.gethostname(), os.getpid(), liveness.process_started(os.getpid()))
        assert liveness.heartbeat_age(now) < 60
        assert liveness.take_over(store, before) is None  # a second taker read it as before
        with pytest.raises(ValueError, match="unknown owner field"):
            store.mark_running("cnn-r", status="completed")


def test_a_process_whose_run_was_taken_over_stops_at_its_next_epoch(zoo_home, tmp_path):
    from zoo_core.runs import execute
    from zoo_core.results.tensorboard import EventWriter

    published = []
    with open_store() as store:
        store.create_run(record("cnn-r", **liveness.owner()))
        recorder = execute._Recorder(store, store.get("cnn-r"), None, EventWriter(tmp_path))
        epoch = dict(epoch=1, train_loss=1.0, train_accuracy=0.5, val_loss=1.0,
                     val_accuracy=0.5, lr=0.001, seconds=1.0)
        recorder.epoch_saved(epoch, lambda: published.append(1))  # still ours
        store.finish_run("cnn-r", status="interrupted")  # looked dead; another host takes it
        store.mark_running("cnn-r", host="gpu-box", pid=4242, owner_started="b:1",
                           heartbeat_at=ago(0))
        with pytest.raises(execute.RunTakenOver, match=r"taken over \(pid 4242 on gpu-box"):
            recorder.epoch_saved({**epoch, "epoch": 2}, lambda: published.append(2))
        assert store.get("cnn-r").epochs_run == 1  # its epoch 2 is not written
        assert published == [1]  # nor its checkpoint published
        store.delete_run("cnn-r")
        with pytest.raises(execute.RunTakenOver, match="was removed"):
            recorder.epoch_saved({**epoch, "epoch": 2}, lambda: published.append(2))
