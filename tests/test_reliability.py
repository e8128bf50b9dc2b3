"""Process-level reliability: the real ``zoo`` command against hanging plugins, damaged
stores, typos and several processes at once. Each case runs the console script in a child
process, as a user's terminal does, and checks the exit code and the one line it prints."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ZOO = str(Path(sys.executable).with_name("zoo"))
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "registry.toml"


def zoo(home: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("ZOO_DATA_DIR", "ZOO_REGISTRY", "ZOO_LOAD_PLUGINS", "ZOO_PLUGIN_TIMEOUT")}
    environ.update({"ZOO_HOME": str(home), **env})
    return subprocess.run([ZOO, *args], env=environ, capture_output=True, text=True, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failing command prints, without a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


# -- plugins -------------------------------------------------------------------------------------


@pytest.fixture
def fake_site(tmp_path, dist_info):
    """``fake_site(dist, module, source)``: a plugin installed in tmp_path/site for the child
    processes' PYTHONPATH (not on this process's path); returns the folder."""

    def install(dist: str, module: str, source: str) -> Path:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        dist_info(site, dist, {module.removeprefix("zoo_"): module})
        return site

    return install


def test_a_plugin_that_hangs_at_import_does_not_hang_zoo_list(tmp_path, fake_site):
    site = fake_site("zoo-hangs", "zoo_hangs", "import time\ntime.sleep(60)\n")
    # the import sleeps 60 s: zoo list returns (within the 30 s the test waits) after the 1 s
    # timeout, and says so below
    result = zoo(tmp_path / "home", "list", timeout=30, PYTHONPATH=str(site), ZOO_PLUGIN_TIMEOUT="1")
    assert result.returncode == 0, result.stderr
    assert {"cnn", "lstm", "rnn"} <= {line.split()[0] for line in result.stdout.splitlines()[2:]}
    assert (
        "warning: plugin hangs (zoo_hangs in zoo-hangs) did not load: import did not finish within 1 s (zoo_hangs hangs "
        "at import time); fix the plugin, or raise ZOO_PLUGIN_TIMEOUT if it is only slow "
        "(see `zoo plugins`)") in result.stderr.splitlines()
    plugins = zoo(tmp_path / "home", "plugins", "--json", timeout=30, PYTHONPATH=str(site),
                  ZOO_PLUGIN_TIMEOUT="1")
    statuses = {p["distribution"]: p["status"] for p in json.loads(plugins.stdout)}
    assert statuses["zoo-hangs"] == "failed"
    assert statuses["zoo-cnn"] == statuses["zoo-lstm"] == statuses["zoo-rnn"] == "ok"


def test_a_plugin_that_raises_at_import_or_in_its_hook_leaves_the_rest_working(tmp_path,
                                                                               fake_site):
    site = fake_site("zoo-boom", "zoo_boom", "raise OSError('weights server unreachable')\n")
    fake_site("zoo-hook", "zoo_hook", """
        from zoo_core import hookimpl
        @hookimpl
        def zoo_register_models(register):
            raise KeyError("width")
    """)
    result = zoo(tmp_path / "home", "list", "--json", PYTHONPATH=str(site))
    assert result.returncode == 0
    listed = {(m["name"], m["status"]) for m in json.loads(result.stdout)}
    assert {("cnn", "installed"), ("lstm", "installed"), ("rnn", "installed")} <= listed
    assert "warning: plugin boom (zoo_boom in zoo-boom) did not load: import failed: OSError: weights server " \
           "unreachable (see `zoo plugins`)" in result.stderr.splitlines()
    assert "warning: plugin hook (zoo_hook in zoo-hook) did not load: KeyError: 'width' (see `zoo plugins`)" \
           in result.stderr.splitlines()


# -- exit codes: 2 for what the user typed, 1 for everything else --------------------------------


@pytest.mark.parametrize("args, code, message", [
    (["run", "cnnn"], 2, "unknown model 'cnnn'; did you mean 'cnn'"),
    (["run", "cnn", "--dataset", "fashon"], 2, "unknown dataset 'fashon'; did you mean 'fashion'?"),
    (["run", "cnn", "--set", "dropout=2"], 2, "dropout must be float, >= 0, <= 0.95, got 2.0"),
    (["run", "cnn", "--set", "filters=many"], 2, "filters must be int"),
    (["run", "cnn", "--set", "epochs=" + "9" * 5000], 2, "epochs must be int"),
    (["run", "cnn", "--data-dir", "/nonexistent/fashion"], 2,
     "/nonexistent/fashion: no such folder (given by --data-dir or ZOO_DATA_DIR); check the path"),
    (["--registry", "{bad_toml}", "list"], 1, "{bad_toml}: invalid TOML"),
    (["--registry", "{bad_type}", "run", "cnn"], 1,
     "{bad_type}: [models.cnn.hparams] epochs must be int, >= 1, <= 10000, got 'ten' (str)"),
    (["leaderboard", "--format", "excel"], 2, "unknown format 'excel'"),
])
def test_exit_codes_and_one_line_errors(tmp_path, args, code, message):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[models.cnn\n")
    bad_type = tmp_path / "type.toml"
    text, count = re.subn(r"(\[models\.cnn\.hparams\]\n(?:#.*\n)*)epochs = \d+",
                          r'\1epochs = "ten"', SHIPPED.read_text())
    assert count == 1
    bad_type.write_text(text)
    paths = {"bad_toml": str(bad_toml), "bad_type": str(bad_type)}
    args = [a.format(**paths) for a in args]
    result = zoo(tmp_path / "home", *args, ZOO_PLUGIN_TIMEOUT="30")
    assert result.returncode == code, result.stderr
    assert message.format(**paths) in one_error_line(result)
    assert not (tmp_path / "home" / "runs").exists()  # nothing started


# -- the results store ----------------------------------------------------------------------------


def _make_store(path: Path, runs: int) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import make_record
        from zoo_core.store import open_store
        with open_store({str(path)!r}) as db:
            for i in range({runs}):
                db.create_run(make_record(f"r{{i:03d}}", status="completed", test_accuracy=0.5,
                                          config={{"i": i, "pad": "x" * 200}}))
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_is_reported_by_the_cli_and_left_untouched(tmp_path, damage):
    home = tmp_path / "home"
    home.mkdir()
    path = home / "zoo.db"
    if damage == "garbage":
        path.write_bytes(os.urandom(8192))
        reason = "file is not a database"
    else:
        _make_store(path, 200)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        reason = "database disk image is malformed"
    before = path.read_bytes()
    for args in (["leaderboard"], ["leaderboard", "--format", "json"], ["show", "r001"]):
        result = zoo(home, *args)
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert one_error_line(result) == (
            f"Error: results store {path} is not a readable SQLite database ({reason}): "
            "move it aside and zoo will start a new one")
        assert len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert sorted(p.name for p in home.iterdir()) == ["zoo.db"]


WRITER = """
import sys, time
sys.path.insert(0, {tests!r})
from helpers import make_record
from zoo_core.store.records import utc_now
from zoo_core.store import open_store
worker = int(sys.argv[1])
with open_store({path!r}) as db:
    for i in range({runs}):
        run_id = f"w{{worker}}-r{{i:02d}}"
        db.create_run(make_record(run_id, seed=worker * 100 + i))
        for epoch in (1, 2, 3):
            db.add_epoch(run_id, epoch, train_loss=1 / epoch, val_accuracy=0.5 + epoch / 10)
        db.finish_run(run_id, status="completed", test_accuracy=0.8 + worker / 100,
                      val_accuracy=0.8, finished_at=utc_now())
        time.sleep(0.05)
"""


def test_the_leaderboard_reads_while_four_writers_write(tmp_path):
    home = tmp_path / "home"
    workers, runs = 4, 30
    code = WRITER.format(tests=str(Path(__file__).parent), path=str(home / "zoo.db"), runs=runs)
    writers = [subprocess.Popen([sys.executable, "-c", code, str(w)], stderr=subprocess.PIPE,
                                text=True) for w in range(workers)]
    reads, seen = [], 0
    try:
        while any(w.poll() is None for w in writers) or len(reads) < 2:
            fmt = ["--runs"] if len(reads) % 2 == 0 else []
            result = zoo(home, "leaderboard", *fmt, "--format", "json")
            assert result.returncode == 0, result.stderr
            assert result.stderr == ""
            rows = json.loads(result.stdout)
            if fmt:
                ids = [row["run_id"] for row in rows]
                assert len(ids) == len(set(ids)), "a run listed twice"
                count = len(ids)
            else:
                count = sum(row["n"] for row in rows)
            assert count >= seen, "a completed run disappeared"
            seen = count
            reads.append(count)
    finally:
        for w in writers:
            w.wait(timeout=60)
    assert [w.returncode for w in writers] == [0] * workers, [w.stderr.read() for w in writers]
    assert len([r for r in reads if r < workers * runs]) >= 2, f"reads did not overlap the writes: {reads}"
    final = json.loads(zoo(home, "leaderboard", "--runs", "--format", "json").stdout)
    assert sorted(row["run_id"] for row in final) == sorted(
        f"w{w}-r{i:02d}" for w in range(workers) for i in range(runs))
    assert all(row["epochs_run"] == 3 for row in final)


# -- data ----------------------------------------------------------------------------------------


def test_a_bad_data_file_stops_zoo_run_before_training_with_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(f"/usr/share/datasets/fashion-mnist/{name}", data / name)
    bad = data / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:5000])
    result = zoo(tmp_path / "home", "run", "cnn", "--data-dir", str(data))
    assert result.returncode == 1
    assert one_error_line(result).startswith(f"Error: {bad}: corrupted or truncated gzip file")
    assert "delete it and run again" in result.stderr
    assert not (tmp_path / "home" / "runs").exists()


# -- docs/troubleshooting.md quotes the messages the code prints ----------------------------------


def _parts(node) -> list[str | None] | None:
    """A string expression as literal pieces and None for each computed piece; None when
    ``node`` is not a string expression (f-strings, constants, and ``+`` chains of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value if isinstance(v, ast.Constant) else None for v in node.values]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _parts(node.left), _parts(node.right)
        if left is None and right is None:
            return None
        return (left or [None]) + (right or [None])
    return None


def _message_patterns() -> list[re.Pattern]:
    """Every string the core can print, as a regex: literal text exact, each {field} any text.
    A message built up with ``msg += ...`` ends in any text."""
    patterns = []
    for source in (ROOT / "zoo_core").rglob("*.py"):
        tree = ast.parse(source.read_text())
        grown = {n.target.id for n in ast.walk(tree)
                 if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)}
        for node in ast.walk(tree):
            parts = _parts(node)
            if not parts:
                continue
            if parts[0] is not None:
                parts[0] = parts[0].lstrip()
            if parts[-1] is not None:
                parts[-1] = parts[-1].rstrip()
            if sum(len(p) for p in parts if p) >= 10:
                patterns.append(re.compile("".join(".*" if p is None else re.escape(p)
                                                   for p in parts), re.S))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id in grown):
                parts = _parts(node.value)
                if parts and sum(len(p) for p in parts if p) > 6:
                    patterns.append(re.compile("".join(".*" if p is None else re.escape(p)
                                                       for p in parts) + ".*", re.S))
    return patterns


def test_the_troubleshooting_guide_quotes_real_messages():
    doc = (ROOT / "docs" / "troubleshooting.md").read_text()
    blocks = re.findall(r"^```\n(.*?)^```", doc, flags=re.M | re.S)
    quoted = [line for block in blocks for line in block.splitlines()
              if line.startswith(("Error: ", "warning: ", "interrupted"))]
    assert len(quoted) > 60
    patterns = _message_patterns()
    unknown = [line for line in quoted
               if not any(p.fullmatch(line.removeprefix("Error: ")) for p in patterns)]
    assert not unknown, "docs/troubleshooting.md quotes messages the code does not print:\n" + \
        "\n".join(unknown)


def test_the_readme_links_the_troubleshooting_guide():
    assert "(docs/troubleshooting.md)" in (ROOT / "README.md").read_text()


# -- issue 30: a small gzip file that would fill the memory -------------------------------------


def _gzip_idx(path: Path, count: int, trailing: int) -> Path:
    """A gzip-compressed IDX file declaring ``count`` 28x28 images, followed by ``trailing``
    zero bytes more than it declares (a few hundred KiB compressed)."""
    import zlib

    pack = zlib.compressobj(9, zlib.DEFLATED, 31)  # a gzip stream
    out = [pack.compress(b"\x00\x00\x08\x03" + count.to_bytes(4, "big") + (28).to_bytes(4, "big")
                         + (28).to_bytes(4, "big") + bytes(count * 784))]
    out += [pack.compress(bytes(1 << 20)) for _ in range(trailing >> 20)]
    path.write_bytes(b"".join(out) + pack.flush())
    return path


def test_a_gzip_idx_file_is_read_as_a_stream_up_to_its_declared_size(tmp_path):
    import tracemalloc

    from zoo_core.serving.images import ImageFileError, read_images

    good = read_images(_gzip_idx(tmp_path / "ok-idx3-ubyte.gz", 5, 0), (28, 28, 1))
    assert good.array.shape == (5, 28, 28, 1)
    bomb = _gzip_idx(tmp_path / "bomb-idx3-ubyte.gz", 5, 300 << 20)
    assert bomb.stat().st_size < 1 << 20  # 300 MiB of zeros behind a header of 5 images
    tracemalloc.start()
    try:
        with pytest.raises(ImageFileError, match=r"bomb-idx3-ubyte.gz: has trailing bytes: more "
                                                 r"than the 3,936 its IDX header promises"):
            read_images(bomb, (28, 28, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak:,} bytes at the most while reading"  # not decompressed whole


# -- the end of a command ------------------------------------------------------------------------

EXIT_CHILD = """
import atexit, sys, threading, time, types
sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))  # as after a training
atexit.register(lambda: open(sys.argv[1], "w").write("atexit ran"))
if sys.argv[2] == "thread":  # a non-daemon thread still writing: the normal exit waits for it
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread done"))).start()
print("the result line", end="")
from zoo_core.cli import exit_now
exit_now(int(sys.argv[3]))
print(" (normal exit)", end="")
sys.exit(int(sys.argv[3]))
"""


@pytest.mark.parametrize("threads, code", [("none", 0), ("none", 3), ("thread", 1)])
def test_a_command_that_loaded_tensorflow_ends_without_losing_anything(tmp_path, threads, code):
    """`zoo` skips the interpreter's teardown once TensorFlow is loaded (a second saved on
    every such command, issue 31), but its output, its exit code and its atexit handlers
    (TensorFlow's temporary files) are kept, and a non-daemon thread still working is waited
    for (the normal exit then)."""
    marker = tmp_path / "atexit.txt"
    result = subprocess.run([sys.executable, "-c", EXIT_CHILD, str(marker), threads, str(code)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == code, result.stderr
    assert marker.read_text() == "atexit ran"
    if threads == "thread":
        assert result.stdout == "the result line (normal exit)thread done\n"
    else:
        assert result.stdout == "the result line"
