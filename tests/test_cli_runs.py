"""`zoo run`, `zoo show`, `zoo evaluate`, `zoo leaderboard` through click's CliRunner,
and process-level behaviour (Ctrl-C, several runs at once)."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import interruptible
from zoo_core.store import open_store

QUICK = ["--epochs", "1", "--limit", "1000"]
# the registry's rnn less its second layer and its second direction: a quarter of its cells,
# for the tests that need rnn runs, not its accuracy (not read=rows: a run's reproduce command
# leaves that out, see test_leaderboard_commands_reproduce_each_row_exactly)
SMALL_RNN = ["rnn", "--set", "layers=1", "--set", "bidirectional=false"]


@pytest.fixture(scope="module")
def filled_home(recorded_runs):
    """A store filled by real runs: a small rnn with two seeds, cnn with one."""
    return recorded_runs([*SMALL_RNN, "--seeds", "2", *QUICK], ["cnn", *QUICK])


@pytest.fixture
def home(filled_home, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(filled_home[0]))
    return filled_home


def test_run_json_reports_a_completed_run_with_everything_recorded(home):
    _, results = home
    r = results[0]
    assert r["status"] == "completed" and r["model"] == "rnn" and r["seed"] == 0
    assert r["split_sizes"] == {"train": 1000, "val": 5000, "test": 10000}
    assert r["config"]["limit"] == 1000 and r["config"]["epochs"] == 1
    assert r["data_checksums"]["test_images"].startswith("5b4141f0")
    assert r["tf_version"] and r["plugin"] == "zoo-rnn" and r["params"] > 0
    assert 0.1 < r["test_accuracy"] <= 1 and r["best_epoch"] == 1
    files = sorted(p.name for p in Path(r["run_dir"]).iterdir())
    assert {"config.json", "metrics.json", "curves.png", "confusion.png", "checkpoint.json"} <= set(files)
    assert Path(r["run_dir"], "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_leaderboard_aggregates_mean_std_and_n(zoo, home):
    _, results = home
    r = zoo("leaderboard", "--include-partial", "--format", "json")  # runs with --limit
    assert r.exit_code == 0
    rows = {row["model"]: row for row in json.loads(r.output)}
    accs = [x["test_accuracy"] for x in results if x["model"] == "rnn"]
    assert rows["rnn"]["n"] == 2 and rows["rnn"]["seeds"] == [0, 1]
    assert rows["rnn"]["test_acc_mean"] == pytest.approx(np.mean(accs))
    assert rows["rnn"]["test_acc_std"] == pytest.approx(np.std(accs, ddof=1))
    assert rows["cnn"]["n"] == 1


def test_leaderboard_formats_and_filters(zoo, home):
    table = zoo("leaderboard", "--include-partial").output
    assert "rnn" in table and "cnn" in table and "±" in table
    github = zoo("leaderboard", "--include-partial", "--format", "github",
                 "--model", "c*").output
    assert github.startswith("|") and "rnn" not in github
    rows = list(csv.DictReader(io.StringIO(
        zoo("leaderboard", "--runs", "--include-partial", "--format", "csv").output)))
    assert len(rows) == 3
    bad = zoo("leaderboard", "--format", "excel")
    assert bad.exit_code == 2 and "excel" in bad.output
    assert "no completed runs" in zoo("leaderboard", "--dataset", "mnist").output


def test_show_prints_the_summary_and_files(zoo, home):
    _, results = home
    r = zoo("show", results[-1]["run_id"][:12])
    assert r.exit_code == 0
    assert f"run {results[-1]['run_id']}" in r.output
    assert "test accuracy" in r.output and "curves.png" in r.output
    missing = zoo("show", "nope")
    assert missing.exit_code == 2 and "unknown run 'nope'" in missing.output


def test_evaluate_reproduces_the_recorded_test_accuracy(zoo, home):
    _, results = home
    r = zoo("evaluate", results[-1]["run_id"], "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)
    assert m["examples"] == 10000
    assert m["accuracy"] == pytest.approx(results[-1]["test_accuracy"])
    assert len(m["confusion"]) == 10


@pytest.mark.parametrize("args, code, message", [
    (["run", "cnnn"], 2, "unknown model 'cnnn'; did you mean 'cnn'"),
    (["run", "cnn", "--dataset", "fashon"], 2, "unknown dataset 'fashon'; did you mean 'fashion'"),
    (["run", "cnn", "--set", "dropout"], 2, "--set 'dropout': expected KEY=VALUE"),
    (["run", "cnn", "--set", "depth=3"], 2, "unknown hyperparameter 'depth' for cnn; valid:"),
    (["run", "cnn", "--set", "dropout=lots"], 2, "dropout must be float"),
    (["run", "cnn", "--epochs", "0"], 2, "0 is not in the range x>=1"),
    (["run", "cnn", "--batch-size", "-1"], 2, "-1 is not in the range x>=1"),
    (["run", "cnn", "--lr", "nan"], 2, "--lr must be a positive finite number"),
    (["run", "cnn", "--limit", "60000"], 2, "--limit 60000 is larger than the training split"),
    (["run"], 2, "give a MODEL or --all"),
])
def test_run_errors_are_one_line_without_traceback(zoo, args, code, message):
    r = zoo(*args)
    assert r.exit_code == code, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def _wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _zoo_process(home, *args):
    env = {**os.environ, "ZOO_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "zoo_core", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_is_recorded_and_keeps_its_checkpoint(tmp_path, sig):
    proc = _zoo_process(tmp_path, "run", *SMALL_RNN, "--epochs", "50", "--limit", "2000")
    store = open_store(tmp_path / "zoo.db")
    try:
        assert _wait_for(lambda: (tmp_path / "zoo.db").exists() and store.runs()
                         and store.runs()[0].epochs_run >= 1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    (record,) = store.runs()
    assert f"interrupted: run {record.run_id} is recorded as interrupted after" in err
    assert record.status == "interrupted" and record.best_epoch >= 1
    index = json.loads(Path(record.run_dir, "checkpoint.json").read_text())
    assert Path(record.run_dir, index["prefix"] + ".index").exists()
    assert zoo_leaderboard_is_empty(tmp_path)  # only completed runs rank


def zoo_leaderboard_is_empty(home) -> bool:
    out = subprocess.run([sys.executable, "-m", "zoo_core", "leaderboard", "--format", "json"],
                         env={**os.environ, "ZOO_HOME": str(home)}, capture_output=True, text=True)
    return json.loads(out.stdout) == []


def test_two_runs_at_once_both_land(tmp_path):
    procs = [_zoo_process(tmp_path, "run", *SMALL_RNN, "--seed", str(s), *QUICK) for s in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with open_store(tmp_path / "zoo.db") as store:
        runs = store.runs()
    assert sorted(r.seed for r in runs) == [0, 1]
    assert all(r.status == "completed" for r in runs)


def test_resume_after_ctrl_c_ends_where_an_uninterrupted_run_ends(tmp_path):
    # without dropout: its masks come from TensorFlow's stateful randomness, which a resume
    # does not replay (docs/reliability.md); batch normalization resumes exactly
    args = ["run", "cnn", "--epochs", "8", "--limit", "1500", "--seed", "5", "--set", "dropout=0",
            "--set", "augment_shift=2", "--set", "augment_flip=true", "--set", "lr_schedule=cosine"]
    straight = tmp_path / "straight"
    out = subprocess.run([sys.executable, "-m", "zoo_core", *args, "--json"], capture_output=True,
                         text=True, env={**os.environ, "ZOO_HOME": str(straight)})
    assert out.returncode == 0, out.stderr
    expected = json.loads(out.stdout)

    home = tmp_path / "resumed"
    proc = _zoo_process(home, *args)
    store = open_store(home / "zoo.db")
    try:
        assert _wait_for(lambda: (home / "zoo.db").exists() and store.runs()
                         and store.runs()[0].epochs_run >= 1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    (record,) = store.runs()
    assert record.status == "interrupted", err
    assert f"zoo run --resume {record.run_id}" in err
    resumed = subprocess.run([sys.executable, "-m", "zoo_core", "run", "--resume", record.run_id[:20],
                              "--json"], capture_output=True, text=True,
                             env={**os.environ, "ZOO_HOME": str(home)})
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads(resumed.stdout)
    assert got["run_id"] == record.run_id and got["status"] == "completed"
    assert got["epochs_run"] == 8
    assert got["test_accuracy"] == expected["test_accuracy"]
    assert got["test_loss"] == expected["test_loss"]
    assert [e["val_loss"] for e in store.epochs(record.run_id)] == \
        [e["val_loss"] for e in json.loads(Path(expected["run_dir"], "metrics.json").read_text())["epochs"]]


def test_resume_refuses_a_completed_run_and_extra_options(zoo, home):
    _, results = home
    r = zoo("run", "--resume", results[0]["run_id"])
    assert r.exit_code == 2 and "is completed; only interrupted or failed runs can be resumed" in r.output
    r = zoo("run", "--resume", results[0]["run_id"], "--epochs", "3")
    assert r.exit_code == 2 and "drop --epochs" in r.output


def test_leaderboard_commands_reproduce_each_row_exactly(zoo, home):
    """The printed command, run again, asks for the very settings and seeds of its row:
    with --skip-done every one of them is found already done."""
    rows = {row["model"]: row for row in json.loads(
        zoo("leaderboard", "--include-partial", "--commands", "--format", "json").output)}
    assert rows["rnn"]["command"] == (
        "zoo run rnn --dataset fashion --set bidirectional=false --epochs 1 --set layers=1 "
        "--limit 1000 --seeds 2")
    assert rows["cnn"]["command"] == "zoo run cnn --dataset fashion --epochs 1 --limit 1000"
    github = zoo("leaderboard", "--include-partial", "--commands", "--format",
                 "github").output
    assert "| `zoo run cnn --dataset fashion --epochs 1 --limit 1000` " in github
    with open_store() as store:
        before = len(store.runs())
    words = shlex.split(rows["rnn"]["command"])
    assert words[:2] == ["zoo", "run"]
    again = zoo(*words[1:], "--skip-done")
    assert again.exit_code == 0, again.output
    assert "skipping rnn seed 0: done as rnn-fashion-s0-" in again.output
    assert "skipping rnn seed 1: done as rnn-fashion-s1-" in again.output
    with open_store() as store:
        assert len(store.runs()) == before  # nothing trained


def test_skip_done_trains_only_the_missing_seeds(zoo, home):
    r = zoo("run", "cnn", *QUICK, "--seeds", "2", "--skip-done", "--json")
    assert r.exit_code == 0, r.output
    first, second = json.loads(r.stdout)
    assert first["run_id"] == home[1][-1]["run_id"]  # seed 0: the run already recorded
    assert second["seed"] == 1 and second["run_id"] != first["run_id"]
    assert "skipping cnn seed 0" in r.stderr


def test_all_goes_on_after_a_failed_model_and_exits_1(zoo, tmp_path, monkeypatch):
    from zoo_core.errors import TrainingError
    from zoo_core.runs import execute as executor

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    real = executor.execute
    trained = []

    def execute(zoo_, run, *args, **kwargs):
        if run.model.name == "cnn":
            raise TrainingError("loss became NaN (made up for this test)")
        if run.model.name == "lstm-stack":
            raise ValueError("a plugin's own bug")
        trained.append(run.model.name)
        return real(zoo_, run, *args, **kwargs)

    monkeypatch.setattr(executor, "execute", execute)
    r = zoo("run", "--all", "--epochs", "1", "--limit", "200")
    assert r.exit_code == 1
    assert "error: cnn seed 0 failed: loss became NaN" in r.output
    assert "error: lstm-stack seed 0 failed: ValueError: a plugin's own bug" in r.output
    assert trained == sorted(set(trained)) and "cnn-bn" in trained and "rnn" in trained
    assert f"2 of {len(trained) + 2} runs failed (cnn seed 0, lstm-stack seed 0)" in r.output


def test_every_run_writes_its_epochs_as_tensorboard_events(zoo, home):
    """`tensorboard --logdir $ZOO_HOME/runs` reads these: TensorFlow's own event files."""
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    _, results = home
    run = results[0]
    (events,) = Path(run["run_dir"]).glob("events.out.tfevents.*")
    scalars = {}
    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            scalars[(value.tag, event.step)] = value.simple_value
    with open_store() as store:
        (epoch,) = store.epochs(run["run_id"])
    assert scalars[("accuracy/validation", 1)] == pytest.approx(epoch["val_accuracy"])
    assert scalars[("loss/train", 1)] == pytest.approx(epoch["train_loss"])
    assert {tag for tag, _ in scalars} >= {"loss/validation", "accuracy/train", "learning_rate"}
    shown = zoo("show", run["run_id"]).output
    assert f"events.out.tfevents.* {events}" in " ".join(shown.split())


NAN_PLUGIN = """
from zoo_core import hookimpl


def build(images, *, num_classes, hparams, training):
    import tensorflow as tf

    logits = tf.compat.v1.layers.dense(tf.compat.v1.layers.flatten(images), num_classes)
    return logits * float("nan")


@hookimpl
def zoo_register_models(register):
    register("nanny", build, summary="logits that are NaN")
"""


def test_a_failed_run_is_recorded_in_the_words_the_user_saw(zoo, fake_dist):
    fake_dist("zoo-nanny", {"zoo_nanny": NAN_PLUGIN})
    r = zoo("run", "nanny", "--epochs", "1", "--limit", "300")
    assert r.exit_code == 1
    said = "try a lower learning rate (--lr 0.0001) or --set clip_norm=1.0"
    assert said in r.output
    shown = zoo("show", "latest")
    assert said in shown.output  # the stored error names the options, as the run said
    assert "⟦" not in shown.output
