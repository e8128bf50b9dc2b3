"""A sweep on a real local Ray (issue 15, part 4): Ray started by the test on 127.0.0.1 with
2 CPUs (no dashboard, usage stats off), a 4-trial tiny sweep into a real PostgreSQL through
`zoo sweep --engine ray`, every trial an ordinary run, each run once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from zoo_core.store import open_store

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="pip install 'zoo-core[ray]' (the test extra has it)")


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance of this test process: 2 CPUs, its node on 127.0.0.1, no dashboard, in a
    temporary folder; shut down (its processes stopped) at the end."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    folder = tempfile.mkdtemp(prefix="zoo-ray-")  # short: Ray's socket paths have a limit
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=folder, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_sweep_of_four_trials_on_ray_lands_in_postgresql_once_each(
        zoo, local_ray, zoo_home, postgresql_url, monkeypatch):
    monkeypatch.setenv("ZOO_ARTIFACTS", str(zoo_home / "shared"))
    result = zoo("sweep", "cnn", "--epochs", "1", "--limit", "256", "--set", "filters=4,8",
                 "--set", "dense=16", "--seeds", "2", "--engine", "ray", store=postgresql_url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    sweep_id = lines[0].split()[1].rstrip(":")
    assert lines[0].endswith("4 trial(s) queued (engine ray)")
    assert lines[-1] == f"sweep {sweep_id}: 4 completed"
    with open_store(postgresql_url) as store:
        trials = store.runs(sweep_id=sweep_id)
        pids = {t.pid for t in trials}
    assert {(t.status, t.epochs_run) for t in trials} == {("completed", 1)}
    assert os.getpid() not in pids  # trained in Ray's worker processes
    assert all(t.run_dir == str(zoo_home / "shared" / t.run_id) for t in trials)
    assert all((zoo_home / "shared" / t.run_id / "metrics.json").exists() for t in trials)
    board = zoo("leaderboard", "--include-partial", "--json", store=postgresql_url)
    assert sorted(row["n"] for row in json.loads(board.output)) == [2, 2]


def test_ray_stays_out_of_the_other_engines():
    code = ("import sys; from zoo_core.cli import cli; import zoo_core.runs.worker, "
            "zoo_core.runs.engines, zoo_core.cli.sweep; print('ray' in sys.modules)")
    out = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
