"""Everyday CLI use (issue 18): usage errors that name the failing command, `zoo runs` (list,
rm, tag), `latest`, a dead run shown as interrupted, `zoo compare`, shell completion, and the
packaging metadata. Runs are recorded by hand here (no training), except where said."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from zoo_core.store import open_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(add_completed, zoo_home):
    runs = zoo_home / "runs"
    with open_store() as store:
        for i, (run_id, acc) in enumerate([("cnn-a", 0.90), ("cnn-b", 0.91)]):
            (runs / run_id / "ckpt").mkdir(parents=True)
            (runs / run_id / "metrics.json").write_text("{}")
            add_completed(store, run_id, acc, seed=i, folder=runs / run_id,
                          started_at=f"2026-01-0{i + 1}T00:00:00+00:00")
    return zoo_home


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- 1. usage errors name the failing command ------------------------------------------------------


@pytest.mark.parametrize("args, usage", [
    (["leaderboard", "--format", "nope"], "Usage: zoo leaderboard [OPTIONS]"),
    (["run"], "Usage: zoo run [OPTIONS] [MODEL]"),
    (["show", "no-such-run"], "Usage: zoo show [OPTIONS] RUN_ID"),
    (["runs", "tag", "latest", "bad tag"], "Usage: zoo runs tag [OPTIONS] RUN_ID TAG..."),
])
def test_a_usage_error_shows_the_failing_commands_usage_and_help(zoo, args, usage):
    r = zoo(*args)
    assert r.exit_code == 2
    lines = r.output.splitlines()
    assert lines[0] == usage
    assert lines[1] == f"Try '{usage.split(' [')[0].removeprefix('Usage: ')} --help' for help."
    assert lines[3].startswith("Error: ") and "Usage: zoo [OPTIONS] COMMAND" not in r.output


def test_datasets_with_a_data_dir_that_does_not_exist_fails(zoo, tmp_path):
    r = zoo("datasets", "--data-dir", str(tmp_path / "nope"))
    assert r.exit_code == 2
    assert r.output.splitlines()[0] == "Usage: zoo datasets [OPTIONS]"
    assert f"Error: {tmp_path / 'nope'}: no such folder (given by --data-dir or ZOO_DATA_DIR)" \
        in r.output


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="needs Debian's dataset-fashion-mnist")
def test_ctrl_c_before_the_first_epoch_promises_no_resume(zoo, monkeypatch):
    from zoo_core.train import loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    r = zoo("run", "cnn", "--epochs", "1", "--limit", "500")
    assert r.exit_code == 130
    with open_store() as store:
        (run,) = store.runs()
    assert run.status == "interrupted" and run.epochs_run == 0
    assert (f"interrupted: run {run.run_id} is recorded as interrupted before its first epoch "
            f"ended; `zoo run --resume {run.run_id}` starts it again (`zoo runs rm {run.run_id}` "
            "drops it)") in r.stderr
    assert (run.host, run.pid) == (socket.gethostname(), os.getpid())  # the owner is recorded


# -- 2. zoo runs ------------------------------------------------------------------------------------


def test_zoo_runs_lists_newest_first_with_status_accuracy_and_age(zoo, home):
    r = zoo("runs")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["run", "status", "model", "dataset", "seed", "test", "acc",
                                "epochs", "age", "tags"]
    assert lines[2].split()[:7] == ["cnn-b", "completed", "cnn", "fashion", "1", "91.00", "%"]
    assert lines[3].split()[0] == "cnn-a" and lines[3].split()[-1].endswith("d")
    assert json.loads(zoo("runs", "--json").output)[0]["run_id"] == "cnn-b"
    assert zoo("runs", "--model", "rnn").output == "no runs match these filters\n"
    assert zoo("runs", "-n", "1").output.count("cnn-") == 1


def test_zoo_runs_on_an_empty_store_says_how_to_start(zoo):
    r = zoo("runs")
    assert (r.exit_code, r.output) == (0, "no runs recorded yet: try `zoo run cnn --dataset fashion`\n")


def test_a_run_whose_process_died_shows_as_interrupted(record, zoo, home):
    with open_store() as store:
        store.create_run(record("cnn-dead", host=socket.gethostname(), pid=dead_pid()))
        store.create_run(record("cnn-live", host=socket.gethostname(), pid=os.getpid()))
    out = zoo("runs").output
    assert "cnn-dead  interrupted (process died)" in out
    assert "cnn-live  running" in out
    assert "cnn-dead" in zoo("runs", "--status", "interrupted").output
    assert "cnn-dead" not in zoo("runs", "--status", "running").output
    assert "interrupted (process died)" in zoo("show", "cnn-dead").output
    r = zoo("runs", "rm", "cnn-live", "--yes")
    assert r.exit_code == 1 and f"Error: run cnn-live is running (pid {os.getpid()} on " in r.output
    assert zoo("runs", "rm", "cnn-dead", "--yes").exit_code == 0


def test_runs_rm_asks_then_removes_records_and_folders(zoo, home):
    folder = home / "runs" / "cnn-a"
    r = zoo("runs", "rm", "cnn-a", input="n\n")
    assert r.exit_code == 1 and "Remove them? [y/N]: n\nAborted!" in r.output
    assert folder.exists()
    r = zoo("runs", "rm", "cnn-a", input="y\n")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("1 run(s) to remove, with their folders:\n  cnn-a  completed, cnn on "
                               f"fashion  {folder}\n")
    assert r.output.endswith("removed cnn-a\n")
    assert not folder.exists()
    with open_store() as store:
        assert [run.run_id for run in store.runs()] == ["cnn-b"]
        assert store.epochs("cnn-a") == []


def test_runs_rm_checks_every_id_before_removing_any(zoo, home):
    r = zoo("runs", "rm", "cnn-b", "nope", "--yes")
    assert r.exit_code == 2 and "Error: unknown run 'nope'" in r.output
    assert (home / "runs" / "cnn-b").exists()


def test_runs_rm_removes_none_when_one_cannot_be_removed(record, zoo, home):
    with open_store() as store:
        store.create_run(record("cnn-dead", host=socket.gethostname(), pid=dead_pid()))
        store.create_run(record("cnn-live", host=socket.gethostname(), pid=os.getpid()))
    r = zoo("runs", "rm", "cnn-dead", "cnn-a", "cnn-live", input="y\n")
    assert r.exit_code == 1
    assert r.output == (f"Error: run cnn-live is running (pid {os.getpid()} on "
                        f"{socket.gethostname()}): stop it first, then remove it\n")
    with open_store() as store:
        assert {run.run_id for run in store.runs()} == {"cnn-a", "cnn-b", "cnn-dead", "cnn-live"}
    assert (home / "runs" / "cnn-a").exists()


def test_runs_rm_keeps_a_run_that_changed_while_the_user_confirmed(record, zoo, home, monkeypatch):
    with open_store() as store:
        store.create_run(record("cnn-dead", host=socket.gethostname(), pid=dead_pid()))
        store.queue_run(record("cnn-q", seed=1))

    def confirm_while_others_work(*args, **kwargs):
        with open_store() as store:  # meanwhile: a --resume takes the dead run over, a worker
            store.mark_running("cnn-dead", host=socket.gethostname(), pid=os.getpid())
            assert store.claim_run().run_id == "cnn-q"  # claims the queued one
        return True

    monkeypatch.setattr("zoo_core.cli.manage.click.confirm", confirm_while_others_work)
    r = zoo("runs", "rm", "cnn-dead", "cnn-q", "cnn-a")
    assert r.exit_code == 1
    assert "  cnn-dead  interrupted (process died), cnn on fashion  no files: no folder found\n" \
        in r.output
    assert ("Error: run cnn-dead changed since it was confirmed (now running, pid "
            f"{os.getpid()} on {socket.gethostname()}): kept\n") in r.output
    assert "Error: run cnn-q changed since it was confirmed (now running, no owner recorded): " \
        "kept\n" in r.output
    assert r.output.endswith("removed cnn-a\n")
    with open_store() as store:
        assert {run.run_id for run in store.runs()} == {"cnn-b", "cnn-dead", "cnn-q"}


def test_runs_rm_finds_the_folder_when_the_recorded_one_is_elsewhere(
        add_completed, zoo, home, tmp_path):
    (home / "runs" / "cnn-copied").mkdir()
    precious = tmp_path / "precious"
    precious.mkdir()
    with open_store() as store:
        add_completed(store, "cnn-copied", 0.9, folder="/old-machine/zoo/runs/cnn-copied")
        add_completed(store, "cnn-nofolder", 0.9, folder="/old-machine/zoo/runs/cnn-nofolder")
        add_completed(store, "cnn-odd", 0.9, folder=precious)
    r = zoo("runs", "rm", "cnn-copied", "cnn-nofolder", "cnn-odd", "--yes")
    assert r.exit_code == 0, r.output
    assert r.output == (
        "3 run(s) to remove, with their folders:\n"
        f"  cnn-copied  completed, cnn on fashion  {home / 'runs' / 'cnn-copied'} (not at the "
        "recorded /old-machine/zoo/runs/cnn-copied)\n"
        "  cnn-nofolder  completed, cnn on fashion  no files: no folder found\n"
        f"  cnn-odd  completed, cnn on fashion  no files: {precious} is not a folder named "
        "cnn-odd\n"
        "removed cnn-copied\n"
        "removed cnn-nofolder (its record only: no folder found)\n"
        f"removed cnn-odd (its record only: {precious} is not a folder named cnn-odd)\n")
    assert not (home / "runs" / "cnn-copied").exists() and precious.exists()


@pytest.mark.parametrize("owner, shown", [
    ({}, "no owner recorded"), ({"host": "gpu-box", "pid": 4242}, "pid 4242 on gpu-box")])
def test_a_running_run_zoo_cannot_see_is_removed_only_with_force(record, zoo, home, owner, shown):
    with open_store() as store:
        store.create_run(record("cnn-old", **owner))
    r = zoo("runs", "rm", "cnn-old", "--yes")
    assert (r.exit_code, r.output) == (1, (
        f"Error: run cnn-old is recorded as running ({shown}) by a zoo-core that kept no "
        "heartbeat, so zoo cannot tell whether that process still runs: if it does not, "
        "`zoo runs rm --force cnn-old` removes the run\n"))
    r = zoo("run", "--resume", "cnn-old")
    assert r.exit_code == 2 and "`zoo runs rm --force cnn-old` removes the run" in r.output
    r = zoo("runs", "rm", "cnn-old", "--force", input="y\n")
    assert r.exit_code == 0, r.output
    assert (f"--force: cnn-old is recorded as running ({shown}) and zoo cannot see that "
            "process; if it still runs, it will fail at its next epoch\nRemove them? [y/N]: y\n"
            "removed cnn-old (its record only: no folder found)\n") in r.output


def test_a_queued_run_can_be_removed(record, zoo, home):
    with open_store() as store:
        store.queue_run(record("cnn-q"))
    r = zoo("runs", "rm", "cnn-q", "--yes")
    assert (r.exit_code, r.output.splitlines()[-1]) == (0, "removed cnn-q (its record only: no "
                                                          "folder found)")


def test_resume_does_not_take_over_a_run_another_resume_took_meanwhile(
        add_completed, zoo, home, monkeypatch):
    from types import SimpleNamespace

    from zoo_core.runs import execute

    with open_store() as store:
        add_completed(store, "cnn-f", 0.5, folder=home / "runs" / "cnn-f")
        store.update_run("cnn-f", error="boom")

    def load_while_another_resumes(*args, **kwargs):
        with open_store() as store:  # another `zoo run --resume cnn-f` takes it over meanwhile
            store.mark_running("cnn-f")
            store.update_run("cnn-f", host=socket.gethostname(), pid=os.getpid())
        return SimpleNamespace(checksums={"test_images": "aa"})

    trained = []
    monkeypatch.setattr(execute.data, "load", load_while_another_resumes)
    monkeypatch.setattr(execute, "_train_and_record", lambda *a, **k: trained.append(a))
    with open_store() as store:
        store.finish_run("cnn-f", status="failed")
    r = zoo("run", "--resume", "cnn-f")
    assert r.exit_code == 1 and trained == []
    assert r.output.endswith(
        "Error: run cnn-f was taken by another process meanwhile (now running, pid "
        f"{os.getpid()} on {socket.gethostname()}): see `zoo runs`\n")


def test_runs_tag_and_filter_by_tag(zoo, home):
    r = zoo("runs", "tag", "cnn-a", "baseline", "v1")
    assert (r.exit_code, r.output) == (0, "cnn-a: tags baseline, v1\n")
    assert zoo("runs", "tag", "cnn-a", "v1", "--remove").output == "cnn-a: tags baseline\n"
    listed = zoo("runs", "--tag", "baseline").output
    assert "cnn-a" in listed and "cnn-b" not in listed and listed.rstrip().endswith("baseline")
    assert "tags                 baseline" in zoo("show", "cnn-a").output


def test_latest_works_wherever_a_run_id_does(zoo, home):
    assert zoo("show", "latest").output.startswith("run cnn-b\n")
    assert zoo("runs", "tag", "latest", "x").output == "cnn-b: tags x\n"
    assert "A  cnn-b\nB  cnn-a" in zoo("compare", "latest", "cnn-a").output
    r = zoo("run", "--resume", "latest")
    assert r.exit_code == 2 and "run cnn-b is completed; only interrupted or failed" in r.output


# -- 4. zoo compare -------------------------------------------------------------------------------


def test_compare_shows_differing_settings_metrics_and_one_png(add_completed, zoo, home, tmp_path):
    with open_store() as store:
        add_completed(store, "cnn-c", 0.93, seed=0,
                      config={"epochs": 2, "lr": 0.002, "limit": None, "dropout": 0.3})
    png = tmp_path / "both.png"
    r = zoo("compare", "cnn-a", "cnn-c", "--plot", str(png))
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[:2] == ["A  cnn-a", "B  cnn-c"]
    assert [line.split() for line in lines[3:7]] == [
        ["setting", "A", "B"], ["---------", "-----", "-----"], ["dropout", "-", "0.3"],
        ["lr", "0.001", "0.002"]]
    assert next(line for line in lines if line.startswith("test accuracy")).split() == [
        "test", "accuracy", "90.00", "%", "93.00", "%"]
    assert lines[-1] == f"curves: {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(zoo("compare", "cnn-a", "cnn-c", "--json").output)
    assert data["settings_that_differ"] == {"dropout": [None, 0.3], "lr": [0.001, 0.002]}
    assert data["metrics"]["test accuracy"] == [0.9, 0.93]
    assert Path(data["curves"]).parent == home / "compare"


# -- 3. the leaderboard, as the user sees it ------------------------------------------------------


def test_leaderboard_leaves_quick_tries_out_and_counts_a_seed_once(add_completed, zoo, home):
    with open_store() as store:
        add_completed(store, "cnn-a-again", 0.95, seed=0, started_at="2026-01-05T00:00:00+00:00")
        add_completed(store, "cnn-quick", 0.99, seed=0,
                      config={"epochs": 2, "lr": 0.001, "limit": 1000})
    r = zoo("leaderboard")
    assert r.exit_code == 0
    row = r.output.splitlines()[2].split()
    assert row[:5] == ["1", "cnn", "fashion", row[3], "float32"]
    assert row[5:9] == ["93.00", "±", "2.83", "%"]
    assert row[9:11] == ["2", "cnn-a-again"] and "cnn-quick" not in r.output
    r = zoo("leaderboard", "--include-partial")
    assert "limit=1000" in r.output and "cnn-quick" in r.output
    assert r.output.rstrip().endswith("not comparable with runs on the full training set")
    assert json.loads(zoo("leaderboard", "--json").output) == \
        json.loads(zoo("leaderboard", "--format", "json").output)
    r = zoo("leaderboard", "--json", "--format", "csv")
    assert r.exit_code == 2 and "--json and --format csv disagree" in r.output


def test_an_empty_leaderboard_points_at_the_quick_tries(add_completed, zoo, zoo_home):
    with open_store() as store:
        add_completed(store, "cnn-quick", 0.99, config={"epochs": 2, "limit": 1000})
    assert zoo("leaderboard").output == (
        "no completed runs on the full training set; 1 quick tries made with --limit are left "
        "out: `zoo leaderboard --include-partial` shows them\n")


# -- 5. completion ----------------------------------------------------------------------------------


def complete(words: str, zoo_home) -> list[str]:
    env = {**os.environ, "ZOO_HOME": str(zoo_home), "_ZOO_COMPLETE": "bash_complete",
           "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    code = ("import sys; from zoo_core.cli import main; sys.argv = ['zoo']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules, 'completion imported TensorFlow'")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split(",", 1)[1] for line in out.stdout.splitlines()]


def test_completion_of_commands_options_models_datasets_and_run_ids(home):
    assert complete("zoo ru", home) == ["run", "runs"]
    assert "--include-partial" in complete("zoo leaderboard --inc", home)
    assert complete("zoo run cn", home) == ["cnn", "cnn-bn"]
    assert complete("zoo run cnn --dataset fa", home) == ["fashion"]
    assert complete("zoo show ", home) == ["latest", "cnn-b", "cnn-a"]
    assert complete("zoo runs rm cnn-a", home) == ["cnn-a"]


def test_completion_never_imports_a_plugin_nor_writes_to_stderr(zoo, fake_dist, tmp_path):
    imported = tmp_path / "imported"
    fake_dist("zoo-noisy", {"zoo_noisy": f"""
        import pathlib, sys, time
        pathlib.Path({str(imported)!r}).write_text("imported")
        sys.stderr.write("I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow "
                         "binary is optimized...\\n")
        time.sleep(3)
    """})
    env = {"_ZOO_COMPLETE": "bash_complete", "COMP_WORDS": "zoo run ", "COMP_CWORD": "2"}
    r = zoo(env=env)
    assert r.exit_code == 0 and r.stderr == ""
    names = [line.split(",")[1] for line in r.stdout.splitlines()]
    assert names == ["cnn", "cnn-bn", "lstm", "lstm-stack", "noisy", "rnn"]
    env["COMP_WORDS"] = "zoo run cnn --dataset "
    env["COMP_CWORD"] = "4"
    r = zoo(env=env)
    assert [line.split(",")[1] for line in r.stdout.splitlines()] == ["cifar10", "fashion", "mnist"]
    assert not imported.exists() and "zoo_noisy" not in sys.modules


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F _zoo_completion zoo"),
                                           ("zsh", "#compdef zoo"), ("fish", "complete --no-files --command zoo")])
def test_zoo_completion_prints_the_script(zoo, shell, marker):
    r = zoo("completion", shell)
    assert r.exit_code == 0 and marker in r.output and "_ZOO_COMPLETE" in r.output


def test_the_readme_says_how_to_enable_completion():
    readme = (ROOT / "README.md").read_text()
    assert 'eval "$(zoo completion bash)"' in readme


# -- 8. packaging -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["pyproject.toml", "plugins/zoo-cnn/pyproject.toml",
                                  "plugins/zoo-lstm/pyproject.toml", "plugins/zoo-rnn/pyproject.toml",
                                  "zoo_core/templates/plugin/pyproject.toml.tmpl"])
def test_the_license_is_an_spdx_expression(path):
    text = (ROOT / path).read_text().replace("${dist}", "x").replace("${model}", "x") \
        .replace("${core_pin}", "")
    project = tomllib.loads(text)
    assert project["project"]["license"] == "Apache-2.0"  # not the deprecated table
    assert "setuptools>=77" in project["build-system"]["requires"]  # the first to read it


def test_the_makefile_shows_the_long_install_step():
    install = [line for line in (ROOT / "Makefile").read_text().splitlines()
               if "pip install" in line and '".[test]"' in line]
    assert install and "--quiet" not in install[0]


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="needs Debian's dataset-fashion-mnist")
def test_a_run_whose_process_died_can_be_resumed(record, zoo, zoo_home):
    folder = zoo_home / "runs" / "cnn-dead"
    folder.mkdir(parents=True)
    with open_store() as store:
        store.create_run(record("cnn-dead", host=socket.gethostname(), pid=dead_pid(),
                                run_dir=str(folder), config={"epochs": 1, "limit": 500},
                                data_checksums={}))
    r = zoo("run", "--resume", "cnn-dead")
    # taken as interrupted, so resuming gets as far as comparing the data (none on record here)
    assert r.exit_code == 1 and "differ from the ones run cnn-dead was trained on" in r.output
    with open_store() as store:
        run = store.get("cnn-dead")
    assert (run.status, run.error) == ("interrupted", "its process died")
    assert "cnn-dead  interrupted " in zoo("runs").output
