"""A run's evidence (issue 13): recorded by a real run, shown by `zoo show` and
`zoo leaderboard --details`, drawn by `zoo leaderboard --plot`; old runs without it still show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoo_core.results import costplot, evidence, leaderboard
from zoo_core.store.records import RunRecord
from zoo_core.store import open_store
from zoo_core import settings

PNG = b"\x89PNG\r\n\x1a\n"


# -- what a run records --------------------------------------------------------------------------


@pytest.mark.parametrize("has_bf16", [True, False], ids=["cpu-with-bf16", "cpu-without"])
def test_a_run_records_every_piece_of_evidence(zoo, monkeypatch, has_bf16):
    # one tiny real run of the cnn, started as `zoo run cnn --epochs 1 --limit 500`, on a CPU
    # with bfloat16 and on one without (forced through cpu_has_bf16, on any CPU)
    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: has_bf16)
    argv = ["run", "cnn", "--epochs", "1", "--limit", "500"]
    monkeypatch.setattr(sys, "argv", ["/venv/bin/zoo", *argv])
    ran = zoo(*argv, "--json")
    assert ran.exit_code == 0, ran.output
    record = json.loads(ran.stdout)
    folder = Path(record["run_dir"])
    env = json.loads((folder / "config.json").read_text())["environment"]
    assert env["command"] == "zoo run cnn --epochs 1 --limit 500"
    assert env["cores"] >= 1 and (env["cpu"] is None or env["cpu"].strip())
    # this checkout is a git work tree: its HEAD, maybe -dirty
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(evidence.__file__).parents[2]).stdout.strip()
    assert env["git"] in (head, head + "-dirty")
    model = json.loads((folder / "metrics.json").read_text())["model"]
    assert model == {"params": 421_866, "macs": 4_241_152}  # tests/test_cost.py counts them

    shown = zoo("show", record["run_id"])
    assert shown.exit_code == 0, shown.output
    card = shown.output[shown.output.index("model card"):]
    for line in ("parameters        421,866", "MACs per example  4,241,152",
                 # the cnn's default precision is auto: bfloat16 where the CPU has it
                 f"precision         {'bfloat16' if has_bf16 else 'float32'}",
                 f"git revision      {env['git']}",
                 "command           zoo run cnn --epochs 1 --limit 500",
                 f"cores             {env['cores']}"):
        assert line in card
    assert "examples/s" in card and "TensorFlow        2." in card
    data = json.loads(zoo("show", record["run_id"], "--json").stdout)["evidence"]
    assert set(data) == set(evidence.KEYS) and data["macs"] == 4_241_152
    assert data["train_seconds"] > 0 and data["examples_per_sec"] > 0


def test_the_command_names_the_zoo_however_it_was_started():
    assert evidence.command(["/x/.venv/bin/zoo", "run", "cnn", "--set", "a=b c"]) == \
        "zoo run cnn --set 'a=b c'"
    assert evidence.command(["/x/zoo_core/__main__.py", "run", "cnn"]) == "zoo run cnn"
    assert evidence.command(["/x/train.py", "--fast"]) == "train.py --fast"


def test_the_git_revision_is_only_a_checkouts_own(tmp_path, monkeypatch):
    assert evidence.git_revision(tmp_path) is None  # not a git work tree
    repo = tmp_path / "repo"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("1")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "m"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert evidence.git_revision(repo) == head
    (repo / "f").write_text("2")
    assert evidence.git_revision(repo) == head + "-dirty"
    (repo / "inner").mkdir()  # an installed copy inside someone's repository: not the zoo's
    assert evidence.git_revision(repo / "inner") is None
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))  # git missing: no revision
    assert evidence.git_revision(repo) is None


# -- old runs, the leaderboard's details ---------------------------------------------------------


def record(run_id, seed, accuracy, folder: Path | None, model="cnn", **fields) -> RunRecord:
    return RunRecord(
        run_id=run_id, status="completed", model=model, dataset="fashion",
        plugin=f"zoo-{model}", plugin_version="0.1.0", zoo_version="0.1.0", tf_version="2.21.0",
        config={"epochs": 5, "bf16": False}, seed=seed, data_checksums={"test": "aa"},
        split_sizes={"train": 55000, "val": 5000, "test": 10000}, test_accuracy=accuracy,
        params=fields.pop("params", 421_642), train_seconds=fields.pop("train_seconds", 60.0 + seed),
        examples_per_sec=4500.0, started_at=f"2026-11-22T00:00:0{seed}+00:00",
        run_dir=str(folder) if folder else "", **fields)


def with_files(folder: Path, macs=4_241_152, cpu="Intel(R) Xeon(R) Platinum 8488C CPU @ 2.40GHz",
               git="0123456789abcdef0123456789abcdef01234567-dirty") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"environment": {
        "cpu": cpu, "cores": 2, "command": "zoo run cnn --dataset fashion", "git": git}}))
    (folder / "metrics.json").write_text(json.dumps({"model": {"params": 421_642, "macs": macs}}))
    return folder


@pytest.fixture
def store_runs(zoo_home):
    runs = [record("cnn-0", 0, 0.915, with_files(zoo_home / "runs" / "cnn-0")),
            record("cnn-1", 1, 0.913, with_files(zoo_home / "runs" / "cnn-1")),
            record("rnn-0", 0, 0.894, zoo_home / "runs" / "rnn-0", model="rnn",  # an old run:
                   params=108_554, train_seconds=235.0)]                        # no files
    with open_store() as store:
        for run in runs:
            store.create_run(run)
            store.finish_run(run.run_id, status="completed", test_accuracy=run.test_accuracy,
                             params=run.params, train_seconds=run.train_seconds,
                             examples_per_sec=run.examples_per_sec)
    return runs


def test_a_run_recorded_before_the_evidence_still_shows(zoo, store_runs):
    shown = zoo("show", "rnn-0")
    assert shown.exit_code == 0, shown.output
    card = shown.output[shown.output.index("model card"):]
    assert "parameters        108,554" in card and "MACs per example  —" in card
    assert "git revision      —" in card and "CPU               —" in card
    assert json.loads(zoo("show", "rnn-0", "--json").stdout)["evidence"]["macs"] is None


def test_leaderboard_details_add_the_evidence_columns(zoo, store_runs):
    plain = zoo("leaderboard").output
    assert "MACs" not in plain and "git" not in plain  # the default table is unchanged
    details = zoo("leaderboard", "--details")
    assert details.exit_code == 0, details.output
    header, _, cnn, rnn = details.output.splitlines()[:4]
    assert header.split()[-5:] == ["MACs", "CPU", "cores", "TF", "git"]
    assert cnn.split()[-8:] == ["4.2M", "Intel", "Xeon", "Platinum", "8488C", "2", "2.21.0",
                                "0123456789-dirty"]
    assert rnn.split()[-5:] == ["—", "—", "—", "2.21.0", "—"]  # an old run: not recorded
    github = zoo("leaderboard", "--details", "--format", "github", "--commands").output
    assert " MACs |" in github and "`zoo run cnn" in github
    rows = json.loads(zoo("leaderboard", "--details", "--json").stdout)
    assert rows[0]["macs"] == 4_241_152 and rows[0]["cores"] == 2 and rows[1]["git"] is None
    per_run = zoo("leaderboard", "--runs", "--details", "--format", "csv").output
    assert per_run.splitlines()[0].endswith(",macs,cpu,cores,tensorflow,git")


def test_runs_on_different_machines_show_both():
    runs = [record("a", 0, 0.9, None), record("b", 1, 0.9, None)]
    found = [{"macs": 10, "cpu": "A", "cores": 2, "tensorflow": "2.21.0", "git": None},
             {"macs": 10, "cpu": "B", "cores": 2, "tensorflow": "2.21.0", "git": None}]
    original = evidence.of_run
    try:
        evidence.of_run = lambda run: found[runs.index(run)]
        assert evidence.summarize(runs) == {"macs": 10, "cpu": "A / B", "cores": 2,
                                            "tensorflow": "2.21.0", "git": None}
    finally:
        evidence.of_run = original


# -- the cost/accuracy plot ----------------------------------------------------------------------


def test_the_plot_has_one_point_per_row_and_marks_the_pareto_front(zoo, store_runs, tmp_path):
    rows = leaderboard.aggregate(store_runs)
    path = tmp_path / "cost.png"
    shown = costplot.draw(rows, path)
    assert path.read_bytes()[:8] == PNG
    assert [p["label"] for p in shown] == ["cnn", "rnn"] == [r["model"] for r in rows]
    cnn, rnn = shown
    assert cnn["accuracy"] == pytest.approx(91.4) and cnn["std"] == pytest.approx(0.1414, abs=1e-4)
    # the cnn is both faster and more accurate: the rnn is beaten on time, not on parameters
    assert (cnn["front_train_seconds"], rnn["front_train_seconds"]) == (True, False)
    assert (cnn["front_params"], rnn["front_params"]) == (True, True)

    r = zoo("leaderboard", "--plot", str(tmp_path / "cli.png"))
    assert r.exit_code == 0 and (tmp_path / "cli.png").read_bytes()[:8] == PNG
    assert "(2 point(s))" in r.stderr
    missing = zoo("leaderboard", "--plot", str(tmp_path / "nowhere" / "x.png"))
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_the_pareto_front():
    costs = [(10, 90.0), (20, 92.0), (15, 89.0), (30, 92.0), (None, 99.0), (5, 80.0)]
    assert costplot.pareto_front(costs) == [True, True, False, False, False, True]


def test_a_damaged_evidence_file_shows_as_not_recorded(zoo_home):
    folder = zoo_home / "runs" / "odd"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"environment": {"cores": "two", "cpu": 7, "git": null}}')
    (folder / "metrics.json").write_text('{"model": {"macs": "many"}}')
    found = evidence.of_run(record("odd", 0, 0.9, folder))
    assert (found["macs"], found["cores"], found["cpu"], found["git"]) == (None, None, None, None)
    (folder / "metrics.json").write_text("{not json")
    assert evidence.of_run(record("odd", 0, 0.9, folder))["macs"] is None
