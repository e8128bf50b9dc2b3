"""Races that could lose a completed run's weights (issue 30): a stale worker that wakes up
after its trial was taken over, and two imports of one pack at once. Real processes, a real
pause (SIGSTOP) and a real second host (a UTS namespace whose host name differs)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo_core.store import open_store
from zoo_core.train import checkpoints

HERE = Path(__file__).resolve().parent
CHILD = str(HERE / "fault_child.py")
ZOO = str(Path(sys.executable).with_name("zoo"))
# the fault matrix's small run (tests/test_fault_matrix.py): 8 steps an epoch, 2 per call
TRIAL = ["cnn", "--epochs", "2", "--limit", "512", "--batch-size", "64", "--set", "filters=8",
         "--set", "dense=32", "--set", "steps_per_call=2", "--set", "dropout=0"]


def environ(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS", "ZOO_STORE")}
    return {**env, "ZOO_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended first: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def folder_digest(run_dir: Path) -> dict[str, str]:
    """Every file of the run's checkpoints and its index, by sha256."""
    files = [run_dir / "checkpoint.json", *sorted((run_dir / "ckpt").rglob("*"))]
    return {str(f.relative_to(run_dir)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in files if f.is_file()}


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a worker on a second host is a UTS namespace here: root only")
def test_a_stale_worker_never_touches_the_run_another_worker_completed(tmp_path):
    env = environ(tmp_path, ZOO_LEASE_SECONDS="3")
    queued = subprocess.run([ZOO, "sweep", *TRIAL, "--engine", "none"], env=env,
                            capture_output=True, text=True)
    assert queued.returncode == 0, queued.stderr
    mark = tmp_path / "paused"
    # the stale worker, on "another host": paused in epoch 2, after epoch 1 was recorded
    stale = subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", 'hostname stale-host && exec "$@"', "sh",
         sys.executable, CHILD, "worker"],
        env={**env, "ZOO_FAULT_AT": "mid-epoch", "ZOO_FAULT_MARK": str(mark)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(mark, stale)
        os.kill(stale.pid, signal.SIGSTOP)  # a machine that stops making progress
        # its lease runs out: this host's worker takes the trial over and completes it
        taker = subprocess.run([ZOO, "worker"], env=env, capture_output=True, text=True,
                               timeout=600)
        assert taker.returncode == 0, taker.stderr
        with open_store(tmp_path / "zoo.db") as store:
            (done,) = store.runs()
            epochs = store.epochs(done.run_id)
        assert done.status == "completed" and done.host != "stale-host", done
        run_dir = Path(done.run_dir)
        before = folder_digest(run_dir)
        metrics = (run_dir / "metrics.json").read_bytes()
    finally:
        os.kill(stale.pid, signal.SIGCONT)  # it wakes up, and finishes its epoch 2
    _, err = stale.communicate(timeout=300)
    assert f"run {done.run_id} was taken over" in err, err
    assert folder_digest(run_dir) == before  # the checkpoints, metrics, row and epochs are
    assert (run_dir / "metrics.json").read_bytes() == metrics  # as the new owner left them
    with open_store(tmp_path / "zoo.db") as store:
        assert store.get(done.run_id) == done and store.epochs(done.run_id) == epochs
    index = checkpoints.read_index(run_dir)
    assert index["epoch"] == done.best_epoch
    assert (run_dir / f"{index['prefix']}.index").is_file()
    assert not list((run_dir / "ckpt").glob(".pending-*"))  # the stale saves were removed


def test_a_store_copy_killed_mid_copy_is_finished_by_running_it_again(
        add_completed, tmp_path, postgresql_url):
    """`zoo store copy` into a real PostgreSQL, SIGKILLed three times while it copies (most
    kills land between a run's row and its last epoch), then run to its end: the target holds
    exactly the source's runs and epochs."""
    source = tmp_path / "old.db"
    with open_store(source) as store:
        for i in range(120):
            add_completed(store, f"cnn-{i:03d}", 0.9, seed=i)
    env = environ(tmp_path)
    copy = [ZOO, "store", "copy", str(source), postgresql_url]
    seen = 0
    for _ in range(3):
        proc = subprocess.Popen(copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        with open_store(postgresql_url) as target:
            while proc.poll() is None and len(target.runs()) < seen + 5:
                time.sleep(0.05)
            proc.kill()
            err = proc.communicate()[1]
            assert proc.returncode == -signal.SIGKILL, err  # killed while copying
            seen = len(target.runs())
            target.close()
    assert seen < 120
    done = subprocess.run(copy, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "checked: every run reads back the same" in done.stdout
    with open_store(source) as a, open_store(postgresql_url) as b:
        assert [(r, a.epochs(r.run_id)) for r in a.runs()] == \
            [(r, b.epochs(r.run_id)) for r in b.runs()]
