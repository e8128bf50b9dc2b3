"""Reliability, round 2 (issue 19, cases 7-15): damaged checkpoints, NaN curves, out-of-range
options, a full disk, a damaged store, hostile registries and data of the wrong shape.

Each case runs the real ``zoo`` command in a child process, as a user's terminal does, and
checks the exit code and the one line it prints."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ZOO = str(Path(sys.executable).with_name("zoo"))
ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
QUICK = ["--epochs", "1", "--limit", "200"]


def zoo(home: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS", "ZOO_STORE")}
    environ.update({"ZOO_HOME": str(home), **env})
    return subprocess.run([ZOO, *args], env=environ, capture_output=True, text=True,
                          timeout=timeout)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failing command prints (besides warnings), without a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(
        ("warning: ", "Usage: ", "Try "))]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A home with one real run of cnn (1 epoch on 200 examples): its id and folder."""
    home = tmp_path_factory.mktemp("trained")
    result = zoo(home, "run", "cnn", *QUICK, "--json")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    return home, run_id, home / "runs" / run_id


@pytest.fixture
def run_copy(trained, tmp_path):
    """The trained run, its folder restored after the test damages it."""
    home, run_id, folder = trained
    shutil.copytree(folder, tmp_path / "backup")
    with sqlite3.connect(home / "zoo.db") as conn:
        (config,) = conn.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    yield home, run_id, folder
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "backup", folder)
    with sqlite3.connect(home / "zoo.db") as conn:  # back to completed, as trained
        conn.execute("UPDATE runs SET status = 'completed', error = NULL, config = ? "
                     "WHERE run_id = ?", (config, run_id))


# -- 7. missing or damaged checkpoint files: one line naming the file ---------------------------


def _damage(folder: Path, prefix: str, how: str) -> Path:
    ckpt = folder / "ckpt"
    data = next(ckpt.glob(f"{prefix}.data-*"))
    index = ckpt / f"{prefix}.index"
    if how == "data truncated":
        with open(data, "r+b") as f:
            f.truncate(100)
        return data
    if how == "index garbage":
        index.write_bytes(os.urandom(3000))
        return index
    if how == "index missing":
        index.unlink()
        return index
    data.unlink()
    return data


@pytest.mark.parametrize("how", ["data truncated", "index missing"])
def test_zoo_evaluate_on_a_damaged_checkpoint_names_the_file(run_copy, how):
    home, run_id, folder = run_copy
    bad = _damage(folder, "best-1", how)
    result = zoo(home, "evaluate", run_id, "--data-dir", str(FASHION))
    assert result.returncode == 1
    line = error_line(result)
    word = "missing" if "missing" in how else "damaged"
    assert line.startswith(f"Error: {bad}: checkpoint file {word}"), line
    assert line.endswith("the run cannot be evaluated: train it again"), line


@pytest.mark.parametrize("how", ["index garbage", "data missing"])
def test_zoo_run_resume_on_a_damaged_checkpoint_names_the_file(run_copy, how):
    home, run_id, folder = run_copy
    with sqlite3.connect(home / "zoo.db") as conn:
        conn.execute("UPDATE runs SET status = 'failed' WHERE run_id = ?", (run_id,))
    bad = _damage(folder, "last-1", how)
    result = zoo(home, "run", "--resume", run_id, "--data-dir", str(FASHION))
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(f"Error: {bad}: checkpoint file "), line
    assert "built a graph that fails" not in line  # not the plugin's fault
    assert line.endswith("the run cannot be resumed from it: start it again as a new run")


def test_a_whole_checkpoint_of_another_graph_is_not_called_damaged(run_copy):
    home, run_id, folder = run_copy
    with sqlite3.connect(home / "zoo.db") as conn:  # as if the plugin now built another graph
        (config,) = conn.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        conn.execute("UPDATE runs SET config = ? WHERE run_id = ?",
                     (json.dumps({**json.loads(config), "convs": 2}), run_id))
    result = zoo(home, "evaluate", run_id, "--data-dir", str(FASHION))
    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith(f"Error: {folder / 'ckpt' / 'best-1.index'}: checkpoint file does not "
                           "fit the model as its plugin builds it now (Key "), line
    assert "damaged" not in line


# -- 12. the advice after a lost checkpoint index is true ------------------------------------------


def test_zoo_evaluate_without_checkpoint_json_says_it_is_missing(run_copy):
    home, run_id, folder = run_copy
    (folder / "checkpoint.json").unlink()
    result = zoo(home, "evaluate", run_id, "--data-dir", str(FASHION))
    assert result.returncode == 1
    line = error_line(result)
    assert "before its first epoch" not in line
    assert line == (f"Error: {folder / 'checkpoint.json'}: missing or damaged, so the best "
                    "checkpoint is unknown although ckpt/ holds best-1, last-1: put it back "
                    "from a copy, or train the run again")


# -- 8. zoo show on a run with a NaN validation loss ---------------------------------------------


def test_zoo_show_prints_a_nan_validation_loss_as_nan(record, tmp_path):
    from zoo_core.store import open_store

    home = tmp_path / "home"
    with open_store(home / "zoo.db") as store:
        store.create_run(record("r-nan"))
        store.add_epoch("r-nan", 1, train_loss=1.5, train_accuracy=0.5, val_loss=float("nan"),
                        val_accuracy=0.1, seconds=2.0)
        store.add_epoch("r-nan", 2, train_loss=1.2, train_accuracy=0.6, val_loss=0.9,
                        val_accuracy=None, seconds=2.0)
        store.finish_run("r-nan", status="failed", error="the validation loss is nan")
    result = zoo(home, "show", "r-nan")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["1", "1.5000", "50.00%", "nan", "10.00%", "2.0s"] in rows
    assert ["2", "1.2000", "60.00%", "0.9000", "-", "2.0s"] in rows


# -- 9. integers beyond what a run can take are refused where they are given --------------------

BIG = str(10**23)


@pytest.mark.parametrize("args, message", [
    (["--seed", str(2**63)], "Invalid value for '--seed': 9223372036854775808 is not in the "
                             "range 0<=x<=2147483647."),
    (["--seed", str(2**31)], "Invalid value for '--seed': 2147483648 is not in the range "
                             "0<=x<=2147483647."),
    (["--seed", str(2**31 - 1), "--seeds", "2"],
     "seed 2147483648 is outside 0..2147483647 (2**31 - 1, the largest seed every results "
     "store takes): lower --seed or --seeds"),
    (["--seeds", BIG], f"Invalid value for '--seeds': {BIG} is not in the range 1<=x<=10000."),
    (["--set", f"patience={BIG}"], "patience must be int, >= 0 and within ±(2**63 - 1) (a 64-bit "
                                   f"integer), got {BIG}"),
    (["--set", f"dense={BIG}"], f"dense must be int, >= 0, <= 16384, got {BIG}"),
    (["--epochs", BIG], f"epochs must be int, >= 1, <= 10000, got {BIG}"),
])
def test_an_integer_too_large_for_a_run_is_a_usage_error_and_starts_nothing(tmp_path, args,
                                                                             message):
    home = tmp_path / "home"
    result = zoo(home, "run", "cnn", *args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert error_line(result) == f"Error: {message}"
    assert not (home / "runs").exists() and not (home / "zoo.db").exists()


# -- 10 and 12. a full disk: "No space left on device" and where; advice that holds -------------


@pytest.fixture
def small_disk(tmp_path):
    """Mount a real tmpfs of the given size in MiB; skipped where mounting is not allowed
    (it needs root, or CAP_SYS_ADMIN in a container)."""
    mounted = []

    def mount(mib: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs",
                               str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill ({done.stderr.strip() or 'not root'});"
                        " run as root (CI does) to test a full disk")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path) -> None:
    """Write until the disk holding ``folder`` has no byte left."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass


def test_on_a_full_disk_the_store_is_read_and_a_write_says_no_space_left(add_completed, small_disk):
    home = small_disk(2) / "home"
    from zoo_core.store import open_store

    with open_store(home / "zoo.db") as store:
        add_completed(store, "r-full", 0.9)
    _fill(home.parent)
    board = zoo(home, "leaderboard", "--runs", "--format", "json")  # reads the file as it is
    assert board.returncode == 0, board.stderr
    assert [row["run_id"] for row in json.loads(board.stdout)] == ["r-full"]
    expected = (f"Error: results store {home / 'zoo.db'} could not be opened or written: No "
                "space left on device (disk I/O error); earlier runs are intact: free some "
                "disk space, or set ZOO_HOME to a folder on a disk with room")
    for args in (["runs", "tag", "r-full", "best"],
                 ["run", "cnn", *QUICK, "--data-dir", str(FASHION)]):
        result = zoo(home, *args)
        assert result.returncode == 1, result.stderr
        assert error_line(result) == expected
    assert not (home / "runs").exists()  # zoo run stopped before making a run folder


def test_a_write_to_an_open_store_on_a_full_disk_says_no_space_left(add_completed, small_disk):
    home = small_disk(2) / "home"
    from zoo_core.errors import StoreError
    from zoo_core.store import open_store

    with open_store(home / "zoo.db") as store:
        add_completed(store, "r-full", 0.9)
        _fill(home.parent)
        with pytest.raises(StoreError) as caught:
            for i in range(200):  # until the write-ahead log cannot grow
                store.tag_run("r-full", add=[f"t{i}-" + "x" * 55])
        assert store.get("r-full").status == "completed"  # earlier runs intact
    assert str(caught.value).startswith(f"results store {home / 'zoo.db'} could not be opened "
                                        "or written: No space left on device (")


@pytest.mark.parametrize("mib, epochs, failing, advice", [
    (2, 1, 1, "it was the run's first, so there is no checkpoint to resume from: free some disk "
           "space, then run the same command again"),
    (14, 3, 2, "the previous checkpoint is intact: free some disk space, then continue with "
            "zoo run --resume {run_id}"),
])
def test_a_checkpoint_on_a_full_disk_says_no_space_left_and_gives_true_advice(
        small_disk, mib, epochs, failing, advice):
    home = small_disk(mib) / "home"
    result = zoo(home, "run", "cnn", "--epochs", str(epochs), "--limit", "200", "--data-dir",
                 str(FASHION))
    assert result.returncode == 1
    line = error_line(result)
    run_id = next((home / "runs").iterdir()).name
    assert line.startswith(f"Error: cannot save the checkpoint of epoch {failing} in "
                           f"{home / 'runs' / run_id} (No space left on device); "), line
    assert line.endswith(advice.format(run_id=run_id)), line
    if mib == 2:  # nothing to resume, as the advice says
        resumed = zoo(home, "run", "--resume", run_id, "--data-dir", str(FASHION))
        assert "no checkpoint to resume from" in error_line(resumed)


# -- 11. a damaged store is never written ----------------------------------------------------------


def test_a_store_with_a_damaged_page_is_not_written(make_record, tmp_path):
    from zoo_core.store import open_store

    home = tmp_path / "home"
    path = home / "zoo.db"
    with open_store(path) as store:
        for i in range(200):
            store.create_run(make_record(f"r{i:03d}", status="completed", test_accuracy=0.5,
                                         config={"i": i, "pad": "x" * 200}))
    with open(path, "r+b") as f:  # page 30 zeroed, as a failing disk leaves it
        f.seek(29 * 4096)
        f.write(bytes(4096))
    before = path.read_bytes()
    expected = (f"Error: results store {path} is damaged (database disk image is malformed), so "
                "zoo does not write to it: move it aside and zoo will start a new one")
    for args in (["runs", "tag", "r001", "new"], ["run", "cnn", *QUICK]):
        result = zoo(home, *args)
        assert result.returncode == 1, result.stderr
        assert error_line(result) == expected
    assert path.read_bytes() == before
    assert sorted(p.name for p in home.iterdir()) == ["zoo.db"]  # no run folder either


def test_the_integrity_check_runs_once_per_process_and_store(make_record, tmp_path):
    from zoo_core.store import sqlite
    from zoo_core.store.sqlite import SQLiteStore

    SQLiteStore(tmp_path / "zoo.db").check()  # the file, made up to date
    sqlite._INTACT.clear()  # as a new process finds it
    statements = []
    with SQLiteStore(tmp_path / "zoo.db") as store:
        store._connection().set_trace_callback(statements.append)
        store.check()
        store.create_run(make_record("a"))
        store.add_epoch("a", 1, val_accuracy=0.5)
    with SQLiteStore(tmp_path / "zoo.db") as again:  # the same file again in this process
        again._connection().set_trace_callback(statements.append)
        again.create_run(make_record("b"))
    assert sum("quick_check" in s for s in statements) == 1


# -- 13. zoo datasets says by its exit code whether the data are usable --------------------------


@pytest.mark.parametrize("env", [False, True])
def test_zoo_datasets_with_a_missing_data_dir_is_a_usage_error(tmp_path, env):
    missing = tmp_path / "nowhere"
    result = zoo(tmp_path / "home", "datasets", **({"ZOO_DATA_DIR": str(missing)} if env else {})) \
        if env else zoo(tmp_path / "home", "datasets", "--data-dir", str(missing))
    assert result.returncode == 2
    assert error_line(result) == (f"Error: {missing}: no such folder (given by --data-dir or "
                                  "ZOO_DATA_DIR); check the path")


def test_zoo_datasets_lists_everything_then_exits_1_when_a_file_fails(tmp_path):
    data = tmp_path / "data"  # data/fashion/: MNIST's files have the same names
    (data / "fashion").mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(FASHION / name, data / "fashion" / name)
    good = zoo(tmp_path / "home", "datasets", "--data-dir", str(data))
    assert good.returncode == 0, good.stderr
    bad = data / "fashion" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:5000])
    result = zoo(tmp_path / "home", "datasets", "--data-dir", str(data))
    assert result.returncode == 1
    names = [line.split()[0] for line in result.stdout.splitlines()[2:] if line[:1] != " "]
    assert {"cifar10", "fashion", "mnist"} <= set(names)  # every dataset still listed
    assert f"fashion: {bad}: corrupted or truncated gzip file" in result.stdout
    assert error_line(result) == ("Error: fashion: files found but not usable (listed above); "
                                  "replace or delete the files named, or point --data-dir at "
                                  "good copies")
    as_json = zoo(tmp_path / "home", "datasets", "--data-dir", str(data), "--json")
    assert as_json.returncode == 1
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["fashion"]["verified"] == "NO" and rows["fashion"]["problems"]


# -- 14. a registry that is a device, a named pipe or huge ---------------------------------------


def _at_most_2_gib():  # the old zoo read /dev/zero until the machine ran out of memory
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.parametrize("kind", ["device", "pipe", "huge"])
def test_a_registry_that_is_not_a_small_regular_file_is_refused_at_once(tmp_path, kind):
    if kind == "device":
        registry, what = Path("/dev/zero"), "is a character device, not a regular file: give a " \
                                            "registry.toml file"
    elif kind == "pipe":
        registry, what = tmp_path / "registry.toml", "is a named pipe, not a regular file: give " \
                                                     "a registry.toml file"
        os.mkfifo(registry)  # nothing ever writes to it
    else:
        registry, what = tmp_path / "registry.toml", "is larger than 4 MiB, the most a registry " \
                                                     "may be: is it the right file?"
        registry.write_text("# padding\n" * 500_000)
    environ = {k: v for k, v in os.environ.items() if k != "ZOO_REGISTRY"}
    for args, env in ((["--registry", str(registry), "list"], {}),
                      (["list"], {"ZOO_REGISTRY": str(registry)})):
        result = subprocess.run([ZOO, *args], env={**environ, **env,
                                                   "ZOO_HOME": str(tmp_path / "home")},
                                capture_output=True, text=True, timeout=30,
                                preexec_fn=_at_most_2_gib)
        assert result.returncode == 1, result.stderr
        assert error_line(result) == (f"Error: registry file {registry} {what} (check "
                                      "--registry / ZOO_REGISTRY)")


# -- 15. a declared image shape the files do not have --------------------------------------------


def test_an_image_shape_the_idx_files_do_not_have_stops_the_run_before_training(tmp_path):
    shipped = (ROOT / "registry.toml").read_text()
    marker = "[datasets.fashion]\n"
    start = shipped.index(marker)
    end = shipped.index("image_shape = [28, 28, 1]", start)
    registry = tmp_path / "registry.toml"
    registry.write_text(shipped[:end] + "image_shape = [28, 28, 3]"
                        + shipped[end + len("image_shape = [28, 28, 1]"):])
    home = tmp_path / "home"
    result = zoo(home, "--registry", str(registry), "run", "cnn", *QUICK, "--data-dir",
                 str(FASHION))
    assert result.returncode == 1, result.stderr
    assert error_line(result) == (
        f"Error: {FASHION / 'train-images-idx3-ubyte.gz'}: the images are [28, 28, 1] (one "
        "channel), but the registry's [datasets.fashion] declares image_shape = [28, 28, 3]: "
        "set it to [28, 28, 1] (check --registry / ZOO_REGISTRY)")
    assert not (home / "runs").exists()
    listed = zoo(home, "--registry", str(registry), "datasets", "--data-dir", str(FASHION))
    assert listed.returncode == 1
    assert "declares image_shape = [28, 28, 3]" in listed.stdout
