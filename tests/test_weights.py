"""Published weights (issue 14, parts 5-6): declared in registry.toml or a plugin's
registration, checked when read and by `zoo check`, fetched by `zoo pull` (a shipped file
first, then each URL, resuming cut transfers) and imported only when their sha256 matches.
Downloads are served by a local HTTP server the tests start; never the internet."""

from __future__ import annotations

import http.server
import importlib
import json
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from zoo_core.catalogue import open_zoo, plugins
from zoo_core.catalogue.registry import default_registry_path, read_catalogue
from zoo_core.errors import RegistryError
from zoo_core.store.records import RunRecord
from zoo_core.store import open_store
from zoo_core.serving import imports, packs, weights

ROOT = Path(__file__).resolve().parents[1]
KIT = ["fresh_graph", "logits_shape", "batch_independence", "training_flag",
       "seed_determinism", "all_variables_train", "overfit_one_batch", "hparams_honoured"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> tuple[Path, str, str]:
    """A pack of a completed run of `tiny` on fashion (a run folder written by hand, packed
    with its checkpoint as it is: no TensorFlow); (file, sha256, config_id)."""
    home = tmp_path_factory.mktemp("origin")
    folder = home / "runs" / "tiny-fashion-s0-20261130-000000-abcd"
    (folder / "ckpt").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": {"epochs": 1}}))
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5}}))
    (folder / "checkpoint.json").write_text(json.dumps({"prefix": "ckpt/best-1", "epoch": 1}))
    (folder / "ckpt" / "best-1.index").write_bytes(b"index")
    (folder / "ckpt" / "best-1.data-00000-of-00001").write_bytes(bytes(range(256)) * 400)
    from zoo_core.results import predictions  # a pack carries its run's predictions.npz

    labels = np.arange(10) % 2
    predictions.save(folder, predictions.sample(np.zeros((10, 4, 4, 1), np.uint8), labels,
                                                labels, np.ones(10, np.float32), ("a", "b")),
                     labels, np.ones(10, np.float32))
    record = RunRecord(run_id=folder.name, status="completed", model="tiny", dataset="fashion",
                       plugin="zoo-tiny", plugin_version="0.1.0", zoo_version="0.1.0",
                       tf_version="2.21.0", config={"epochs": 1}, seed=0, data_checksums={},
                       split_sizes={"test": 10000}, test_accuracy=0.5, run_dir=str(folder))
    with open_store(str(home / "zoo.db")) as store:
        store.create_run(record)
        store.add_epoch(record.run_id, 1, val_accuracy=0.5)
        done = packs.pack(store, record.run_id, home / "tiny-fashion.zoopack", optimizer_state=True)
    return done.path, done.sha256, record.config_id


@pytest.fixture
def tiny(tmp_path, monkeypatch, pack, dist_info):
    """Install a plugin `zoo-tiny` (model `tiny`) declaring ``weights``; returns
    ``install(weights, shipped=False)`` and cleans the module up after."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("zoo_tiny", None)

    def install(declared: dict, shipped: bool = False) -> Path:
        package = site / "zoo_tiny"
        (package / "weights").mkdir(parents=True)
        (package / "__init__.py").write_text(
            "from zoo_core import hookimpl\n\n"
            "def build(images, *, num_classes, hparams, training):\n"
            "    import tensorflow as tf\n"
            "    x = tf.compat.v1.layers.flatten(images)\n"
            "    return tf.compat.v1.layers.dense(x, num_classes, name='logits')\n\n"
            "@hookimpl\n"
            "def zoo_register_models(register):\n"
            f"    register('tiny', build, summary='a dense layer', weights={declared!r})\n")
        if shipped:
            shutil.copy(pack[0], package / "weights" / "tiny-fashion.zoopack")
        dist_info(site, "zoo-tiny", {"tiny": "zoo_tiny"})
        importlib.invalidate_caches()
        return package

    yield install
    sys.modules.pop("zoo_tiny", None)


def declaration(pack, **over) -> dict:
    return {"fashion": {"sha256": pack[1], "config_id": pack[2], "test_accuracy": 0.5, **over}}


# -- a local HTTP server ------------------------------------------------------------------------


@pytest.fixture
def server(pack):
    """Serves the pack at /ok, and misbehaves at the other paths; ``requests`` records
    (path, Range header) of every request."""
    body = pack[0].read_bytes()
    requests: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            path, ranged = self.path, self.headers.get("Range")
            requests.append((path, ranged))
            if path == "/500":
                return self.send_error(500)
            if path in ("/redirect", "/loop") or path.startswith("/chain/"):
                self.send_response(302)
                after = {"/redirect": "/ok", "/loop": "/loop"}.get(path) or \
                    f"/chain/{int(path.rsplit('/', 1)[1]) + 1}"  # a new place each time
                self.send_header("Location", after)
                self.send_header("Content-Length", "0")
                return self.end_headers()
            if path in ("/drip", "/endless"):
                return self.misbehave(path)
            data, start = (bytes(len(body)) if path == "/wrong" else body), 0
            if ranged and path != "/always-cut":
                start = int(ranged.removeprefix("bytes=").rstrip("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            cut = path == "/always-cut" or (path == "/cut-once" and not ranged)
            self.wfile.write(data[start:len(data) // 2] if cut else data[start:])
            self.close_connection = True

        def misbehave(self, path):
            """/drip: one byte every 0.2 s of the declared length; /endless: zeros without
            a length and without end (until the client goes)."""
            self.send_response(200)
            if path == "/drip":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(10**9):
                    self.wfile.write(body[i % len(body):][:1] if path == "/drip"
                                     else bytes(1 << 16))
                    self.wfile.flush()
                    if path == "/drip":
                        time.sleep(0.2)
            except OSError:  # the client went away
                pass
            self.close_connection = True

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def pull_from(zoo, tiny, pack, server):
    """Declare the weights at these server paths, then ``zoo pull tiny``."""

    def pull(*paths_: str):
        tiny(declaration(pack, urls=[server[0] + p for p in paths_]))
        return zoo("pull", "tiny", "--dataset", "fashion")

    return pull


def _nothing_imported(zoo_home: Path) -> None:
    with open_store() as store:
        assert store.runs() == []
    assert not list((zoo_home / "packs").glob("*.part"))


def test_pull_downloads_verifies_imports_and_then_says_it_is_there(
        zoo, pull_from, server, zoo_home):
    r = pull_from("/ok")
    assert r.exit_code == 0, r.output
    assert r.output == (f"pulled tiny weights for fashion from {server[0]}/ok: run "
                        "tiny-fashion-s0-20261130-000000-abcd (test accuracy 50.00%)\n")
    assert "tiny-fashion-s0-20261130-000000-abcd (imported)" in zoo("leaderboard").output
    again = zoo("pull", "tiny")
    assert again.exit_code == 0
    assert again.output == ("tiny weights for fashion are already pulled: run "
                            "tiny-fashion-s0-20261130-000000-abcd (test accuracy 50.00%)\n")
    assert len(server[1]) == 1


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(pull_from, server, pack, zoo_home):
    r = pull_from("/wrong")
    assert r.exit_code == 1
    assert f"{server[0]}/wrong: its sha256 is " in r.output
    assert f"not the declared {pack[1]} (a damaged or different file): refused" in r.output
    _nothing_imported(zoo_home)


def test_a_cut_transfer_is_resumed_with_a_range_request(pull_from, server, pack):
    r = pull_from("/cut-once")
    assert r.exit_code == 0, r.output
    half = pack[0].stat().st_size // 2
    assert server[1] == [("/cut-once", None), ("/cut-once", f"bytes={half}-")]


def test_a_server_that_always_cuts_is_a_clear_error(pull_from, server, zoo_home):
    r = pull_from("/always-cut")
    assert r.exit_code == 1
    assert "/always-cut: the transfer was cut short 4 times (connection closed after" in r.output
    assert "try again later" in r.output
    _nothing_imported(zoo_home)


def test_a_server_error_moves_on_to_the_next_url(pull_from, server):
    r = pull_from("/500", "/ok")
    assert r.exit_code == 0 and f"from {server[0]}/ok:" in r.output


def test_a_server_error_on_every_url_is_a_clear_error(pull_from, server, zoo_home):
    r = pull_from("/500")
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: could not get the tiny weights for fashion: "
                               f"{server[0]}/500: HTTP 500 Internal Server Error (declared in ")
    _nothing_imported(zoo_home)


def test_a_redirect_is_followed(pull_from, server):
    r = pull_from("/redirect")
    assert r.exit_code == 0, r.output
    assert [p for p, _ in server[1]] == ["/redirect", "/ok"]


def test_a_shipped_pack_is_used_first_offline(zoo, tiny, pack, server):
    tiny(declaration(pack, file="weights/tiny-fashion.zoopack", urls=[server[0] + "/ok"]),
         shipped=True)
    r = zoo("pull", "tiny")
    assert r.exit_code == 0, r.output
    assert "from zoo-tiny package: weights/tiny-fashion.zoopack: run" in r.output
    assert server[1] == []


def test_a_pack_of_another_config_than_declared_is_refused(zoo, tiny, pack, server, zoo_home):
    tiny(declaration(pack, config_id="0123456789", urls=[server[0] + "/ok"]))
    r = zoo("pull", "tiny")
    assert r.exit_code == 1
    assert (f"the pack holds a run of tiny on fashion with config {pack[2]}, but model 'tiny' "
            "weights['fashion'] (plugin tiny (zoo_tiny in zoo-tiny)) declares tiny on fashion "
            "with config 0123456789") in r.output
    with open_store() as store:
        assert store.runs() == []


def test_ensure_weights_pulls_once_and_is_none_without_a_declaration(tiny, pack, server):
    tiny(declaration(pack, urls=[server[0] + "/ok"]))
    zoo_ = open_zoo()
    with open_store() as store:
        first = weights.ensure_weights(zoo_, store, "tiny", "fashion")
        assert first == "tiny-fashion-s0-20261130-000000-abcd"
        assert weights.ensure_weights(zoo_, store, "tiny", "fashion") == first
        assert weights.ensure_weights(zoo_, store, "tiny", "mnist") is None
        assert weights.ensure_weights(zoo_, store, "cnn", "mnist") is None
    assert len(server[1]) == 1


def test_pull_without_a_declaration_says_what_to_do(zoo, tiny, pack, server):
    tiny(declaration(pack, urls=[server[0] + "/ok"]))
    r = zoo("pull", "tiny", "--dataset", "mnist")
    assert r.exit_code == 2
    assert ("model 'tiny' declares no published weights for 'mnist' (it declares weights for: "
            "fashion); train it with `zoo run tiny --dataset mnist`") in r.output


# -- declarations: registry.toml and plugins -----------------------------------------------------

GOOD = {"urls": ["https://example.org/cnn.zoopack"], "sha256": "a" * 64,
        "config_id": "69cc6b0035", "test_accuracy": 0.915}


def _registry(tmp_path, table: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(default_registry_path().read_text() + "\n" + table)
    return path


def test_registry_weights_are_read_and_win_over_the_plugins(tmp_path, tiny, pack):
    tiny(declaration(pack, urls=["https://plugin.example/x.zoopack"]))
    path = _registry(tmp_path, '[models.tiny]\nplugin = "zoo-tiny"\nsummary = "s"\n'
                     '[models.tiny.weights.fashion]\nurls = ["https://registry.example/x.zoopack"]\n'
                     f'sha256 = "{"A" * 64}"\nconfig_id = "c"\ntest_accuracy = 0.5\n')
    found = weights.declared(open_zoo(path), "tiny")["fashion"]
    assert found.urls == ("https://registry.example/x.zoopack",) and found.sha256 == "a" * 64


@pytest.mark.parametrize("change, message", [
    ({"sha256": "abc"}, "sha256 must be the pack file's sha256, 64 hex digits, got 'abc': "
                        "`zoo pack RUN -o FILE` prints the declaration to paste"),
    ({"config_id": None}, "is missing 'config_id': `zoo pack RUN -o FILE` prints the "
                          "declaration to paste"),
    ({"test_accuracy": 91.5}, "test_accuracy must be the run's test accuracy, a fraction from "
                              "0 to 1, got 91.5"),
    ({"urls": ["ftp://example.org/x"]}, "urls must be a list of http://, https:// or file:// "
                                        "URLs of the pack, got ['ftp://example.org/x']"),
    ({"urls": None}, "needs urls (where the pack is published) or file (a pack shipped in the "
                     "plugin's package), or both"),
    ({"file": "../x.zoopack"}, "file must be the pack's path inside the plugin's package, such "
                               "as \"weights/fashion.zoopack\", got '../x.zoopack'"),
    ({"licence": "MIT"}, "unknown key 'licence'; allowed keys: config_id, file, sha256, size, "
                         "test_accuracy, urls"),
])
def test_registry_weights_errors_name_the_file_entry_and_key(zoo, tmp_path, change, message):
    table = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    path = _registry(tmp_path, f"[models.cnn.weights.fashion]\n{lines}")
    with pytest.raises(RegistryError) as e:
        read_catalogue(path)
    assert str(e.value) == f"{path}: [models.cnn.weights.fashion] {message}"
    r = zoo("--registry", path, "list")
    assert r.exit_code == 1 and r.output == f"Error: {path}: [models.cnn.weights.fashion] {message}\n"


def test_a_plugin_with_bad_weights_fails_naming_the_model_key_and_plugin():
    from zoo_core import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def zoo_register_models(register):
            register("tiny", lambda images, **kw: images, summary="s",
                     weights={"fashion": {**GOOD, "sha256": "nope"}})

    (report,) = plugins.load([Plugin], entry_points=False).reports
    assert report.status == "failed"
    assert report.error.startswith("model 'tiny' weights['fashion'] (plugin ")
    assert "sha256 must be the pack file's sha256, 64 hex digits, got 'nope'" in report.error


# -- zoo check, and the wheel ---------------------------------------------------------------------


def test_zoo_check_passes_a_shipped_pack_that_matches(zoo, tiny, pack):
    tiny(declaration(pack, file="weights/tiny-fashion.zoopack"), shipped=True)
    r = zoo("check", "tiny", *[a for k in KIT for a in ("--skip", k)], "--json")
    assert r.exit_code == 0, r.output
    (result,) = [c for c in json.loads(r.stdout)["checks"] if c["check"] == "weights:fashion"]
    assert result["status"] == "passed"
    assert result["message"] == (f"weights/tiny-fashion.zoopack: sha256, config_id {pack[2]} "
                                 "and test accuracy 0.5000 match; 0 URL(s), not fetched")


@pytest.mark.parametrize("change, shipped, problem", [
    ({}, False, "no such file"),
    ({"sha256": "b" * 64}, True, "its sha256 is "),
    ({"config_id": "0123456789"}, True, "the pack's run has config_id "),
    ({"test_accuracy": 0.51}, True, "the pack's test accuracy is 0.5000, the declaration says "
                                    "0.5100"),
])
def test_zoo_check_fails_declared_weights_that_do_not_match(tiny, pack, change, shipped, problem):
    tiny(declaration(pack, file="weights/tiny-fashion.zoopack", **change), shipped=shipped)
    ((name, status, message),) = weights.check_declared(open_zoo(), "tiny")
    assert (name, status) == ("weights:fashion", "failed") and problem in message
    assert message.startswith("weights/tiny-fashion.zoopack (")


def test_zoo_check_exits_1_on_bad_weights(zoo, tiny, pack):
    from zoo_core.testing import CHECKS  # the kit's checks, then one per declared dataset

    tiny(declaration(pack, file="weights/tiny-fashion.zoopack", test_accuracy=0.51),
         shipped=True)
    r = zoo("check", "tiny", *[a for k in KIT for a in ("--skip", k)])
    assert r.exit_code == 1
    assert "weights:fashion" in r.output and r.output.rstrip().endswith(
        f"Error: 1 of {len(CHECKS) + 1} checks failed for tiny: weights:fashion")


def test_the_plugin_wheel_ships_its_packs(tmp_path):
    plugin = tmp_path / "zoo-cnn"
    shutil.copytree(ROOT / "plugins" / "zoo-cnn", plugin,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    shipped = (plugin / "zoo_cnn" / "weights" / "cnn-fashion.zoopack").read_bytes()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(plugin)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("zoo_cnn-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("zoo_cnn/weights/cnn-fashion.zoopack") == shipped


# -- issue 30: two imports of one pack at once; reserved run ids ------------------------------


class _Paused:
    """A store whose first ``create_run`` waits until told to go on: one import held between
    its folder and its row while another import of the same pack runs whole."""

    def __init__(self, store):
        self.store, self.inside, self.go = store, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.store, name)

    def create_run(self, record):
        self.inside.set()
        assert self.go.wait(30)
        return self.store.create_run(record)


@pytest.mark.parametrize("held", ["first", "second"])
def test_two_imports_of_one_pack_at_once_keep_the_run_and_its_files(pack, zoo_home, held):
    """``first``: the import that renamed the folder into place is held before its row;
    ``second``: the one that found the folder there is. Either way the other one runs whole
    meanwhile, and both end with the run imported, its folder whole."""
    results: dict[str, object] = {}
    paused = _Paused(open_store())

    def held_import():
        try:
            results["held"] = imports.unpack(paused, pack[0])
        except Exception as e:  # noqa: BLE001 - the test reports it
            results["held"] = e

    thread = threading.Thread(target=held_import)
    if held == "first":
        thread.start()
        assert paused.inside.wait(30)
        with open_store() as store:
            results["whole"] = imports.unpack(store, pack[0])
    else:  # the whole one goes as far as its folder, then the held one runs up to its row
        whole = _Paused(open_store())
        other = threading.Thread(target=lambda: results.setdefault(
            "whole", imports.unpack(whole, pack[0])))
        other.start()
        assert whole.inside.wait(30)
        thread.start()
        assert paused.inside.wait(30)
        whole.go.set()
        other.join(30)
    paused.go.set()
    thread.join(30)
    assert not isinstance(results["held"], Exception), results["held"]
    run_id = "tiny-fashion-s0-20261130-000000-abcd"
    assert results["held"].record.run_id == results["whole"].record.run_id == run_id
    with open_store() as store:
        folder = Path(store.get(run_id).run_dir)
        assert [e["epoch"] for e in store.epochs(run_id)] == [1]
    assert sorted(p.name for p in (folder / "ckpt").iterdir()) == [
        "best-1.data-00000-of-00001", "best-1.index"]
    assert (folder / "imported.json").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".import-")]
    with open_store() as store:  # and the pack can be made again from it
        assert packs.pack(store, run_id, zoo_home / "again.zoopack", optimizer_state=True)


def test_a_pack_whose_run_id_is_a_reserved_word_is_refused(zoo, pack, tmp_path, zoo_home):
    """`latest` means the most recent run: a pack holding a run of that id (made by a store
    that took it) is refused, and no store takes it as a run id."""
    origin = tmp_path / "origin.db"
    with zipfile.ZipFile(pack[0]) as zf:
        record = json.loads(zf.read("run.json"))["record"]
        folder = tmp_path / "runs" / "latest"
        zf.extractall(folder, [n for n in zf.namelist() if n not in ("run.json", "epochs.json")])
    with open_store(origin) as store:
        store.create_run(RunRecord(**{**record, "run_dir": str(folder)}))
    import sqlite3

    with sqlite3.connect(origin) as conn:  # as a zoo-core before issue 30 let it be
        conn.execute("UPDATE runs SET run_id = 'latest'")
    with open_store(origin) as store:
        made = packs.pack(store, "latest", tmp_path / "latest.zoopack", optimizer_state=True)
    r = zoo("unpack", made.path)
    assert r.exit_code == 1
    assert "member run.json holds a run whose id is 'latest', a word commands take" in r.output
    with open_store() as store:
        assert store.runs() == []
        with pytest.raises(ValueError, match="'latest' cannot be a run id"):
            store.create_run(RunRecord(**{**record, "run_id": "latest", "run_dir": ""}))


# -- issue 30: downloads are bounded in size and time ------------------------------------------


def _pull_in_time(zoo, tiny, pack, server, path, *args, **over):
    """`zoo pull tiny` of the weights at ``path``, run in a thread: it must end (by itself,
    within a minute, where the server would keep it forever) with its result."""
    tiny(declaration(pack, urls=[server[0] + path], **over))
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("r", zoo("pull", "tiny", *args)))
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "zoo pull is still downloading"
    return result["r"]


def test_a_server_that_sends_a_byte_at_a_time_is_stopped_at_the_deadline(
        zoo, tiny, pack, server, zoo_home):
    r = _pull_in_time(zoo, tiny, pack, server, "/drip", "--timeout", "2")
    assert r.exit_code == 1
    assert (f"{server[0]}/drip: the download did not finish in time (the deadline set by "
            "--timeout passed)") in r.output
    _nothing_imported(zoo_home)


@pytest.mark.parametrize("declared", [True, False])
def test_an_endless_body_stops_at_the_declared_size_or_the_deadline(
        zoo, tiny, pack, server, zoo_home, declared):
    size = pack[0].stat().st_size
    if declared:
        r = _pull_in_time(zoo, tiny, pack, server, "/endless", size=size)
        assert (f"/endless: the server sent more than the declared size ({size:,} bytes): "
                "stopped, and the partial file removed") in r.output
    else:  # nothing declared: a pack's most (2 GiB), or the deadline, whichever comes first
        # (over loopback, a quiet machine receives 2 GiB in less than the 2 s)
        r = _pull_in_time(zoo, tiny, pack, server, "/endless", "--timeout", "2")
        assert ("/endless: the download did not finish in time" in r.output
                or "/endless: the server sent more than the most" in r.output), r.output
        assert "partial file removed" in r.output or "did not finish in time" in r.output
    assert r.exit_code == 1
    _nothing_imported(zoo_home)


def test_a_declared_size_that_the_server_contradicts_is_refused(zoo, tiny, pack, server, zoo_home):
    r = _pull_in_time(zoo, tiny, pack, server, "/ok", size=100)
    assert r.exit_code == 1
    assert (f"/ok: the server declares {pack[0].stat().st_size:,} bytes, more than the "
            "declared size (100 bytes): refused") in r.output
    _nothing_imported(zoo_home)


@pytest.mark.parametrize("path", ["/loop", "/chain/0"])
def test_a_redirect_loop_or_chain_is_one_line(zoo, tiny, pack, server, zoo_home, path):
    r = _pull_in_time(zoo, tiny, pack, server, path)
    assert r.exit_code == 1
    (line,) = r.output.splitlines()
    assert f"{path}: redirected in a loop or more than 10 times (HTTP 302)" in line
    _nothing_imported(zoo_home)


def test_the_declared_file_holding_another_run_is_refused_and_deleted(zoo, tiny, pack, server,
                                                                      zoo_home):
    r = _pull_in_time(zoo, tiny, pack, server, "/ok", config_id="0123456789")
    assert r.exit_code == 1 and "declares tiny on fashion with config 0123456789" in r.output
    assert list((zoo_home / "packs").glob("*.zoopack")) == []


def test_two_pulls_at_once_import_the_run_once(tiny, pack, server, zoo_home):
    tiny(declaration(pack, urls=[server[0] + "/ok"]))
    zoo_ = open_zoo()
    results = []

    def pull():
        with open_store() as store:
            results.append(weights.pull(zoo_, store, "tiny", "fashion"))

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2 and {r.record.run_id for r in results} == {
        "tiny-fashion-s0-20261130-000000-abcd"}
    assert sorted(r.already for r in results) == [False, True]
    assert len(server[1]) == 1  # the second found the first's run
