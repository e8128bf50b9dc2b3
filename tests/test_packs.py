"""Packs (issue 14, part 4): `zoo pack` writes a completed run into one verified file and
`zoo unpack` imports it into any store, as a run `zoo leaderboard` marks imported and
`zoo evaluate` takes; damaged, tampered or hostile packs are refused naming the member,
and leave nothing behind."""

from __future__ import annotations

import json
import re
import stat
import zipfile
from pathlib import Path

import pytest

from zoo_core.errors import StoreError
from zoo_core.store.records import RunRecord
from zoo_core.store import open_store
from zoo_core.serving import packs


@pytest.fixture(scope="module")
def trained(zoo, tmp_path_factory):
    """One tiny real run (cnn, 1 epoch on 1000 examples) and its pack, weights only."""
    home = tmp_path_factory.mktemp("origin")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZOO_HOME", str(home))
    r = zoo("run", "cnn", "--epochs", "1", "--limit", "1000", "--json")
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)
    pack = home / "cnn-fashion.zoopack"
    out = zoo("pack", "latest", "-o", str(pack))
    mp.undo()
    assert out.exit_code == 0, out.output
    return home, run, pack, out.output


@pytest.fixture
def origin(trained, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(trained[0]))
    return trained


def test_pack_prints_its_sha256_and_the_declaration_to_paste(trained):
    _, run, pack, output = trained
    sha = packs.file_sha256(pack)
    assert f"sha256 {sha}" in output
    assert "[models.cnn.weights.fashion]\n" in output
    assert f'sha256 = "{sha}"' in output and f'config_id = "{run["config_id"]}"' in output
    assert f"test_accuracy = {round(run['test_accuracy'], 6)}" in output
    assert '"test_accuracy": ' in output and "register(\"cnn\", build, ..., weights=" in output
    with zipfile.ZipFile(pack) as zf:
        names = sorted(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.comment.decode() == ("zoopack 1 manifest-sha256="
                                       + packs.hashlib.sha256(zf.read("manifest.json")).hexdigest())
    assert names == sorted(["run.json", "epochs.json", "config.json", "metrics.json",
                            "checkpoint.json", "manifest.json", "ckpt/best-1.index",
                            "ckpt/best-1.data-00000-of-00001", "predictions.npz"])
    assert sorted(manifest["members"]) == sorted(set(names) - {"manifest.json"})
    with zipfile.ZipFile(pack) as zf:
        config = json.loads(zf.read("config.json"))
        record = json.loads(zf.read("run.json"))["record"]
    assert config["data"]["checksums"]["test_images"].startswith("5b4141f0")
    assert set(config["versions"]) == {"zoo-core", "zoo-cnn", "tensorflow", "python"}
    assert record["run_id"] == run["run_id"] and "run_dir" not in record


def test_the_weights_only_checkpoint_is_about_a_third_of_the_full_one(zoo, origin, tmp_path):
    _, run, pack, _ = origin
    full = tmp_path / "full.zoopack"
    assert zoo("pack", run["run_id"][:12], "-o", full, "--optimizer-state").exit_code == 0

    def checkpoint_bytes(path):
        with zipfile.ZipFile(path) as zf:
            return sum(i.file_size for i in zf.infolist() if i.filename.startswith("ckpt/"))

    assert checkpoint_bytes(pack) < 0.35 * checkpoint_bytes(full)
    assert pack.stat().st_size < 0.4 * full.stat().st_size


def test_an_imported_run_ranks_marked_and_evaluates_to_the_same_accuracy(zoo, trained, tmp_path,
                                                                        monkeypatch):
    _, run, pack, _ = trained
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "elsewhere"))
    r = zoo("unpack", pack)
    assert r.exit_code == 0, r.output
    assert r.output == (f"imported run {run['run_id']} (cnn on fashion, test accuracy "
                        f"{100 * run['test_accuracy']:.2f}%) from cnn-fashion.zoopack into "
                        f"{tmp_path / 'elsewhere' / 'zoo.db'}\n")
    table = zoo("leaderboard", "--include-partial").output
    assert f"{run['run_id']} (imported)" in table and "(imported): a run imported" in table
    rows = json.loads(zoo("leaderboard", "--include-partial", "--json").output)
    assert rows[0]["imported"] == [run["run_id"]]
    shown = json.loads(zoo("show", "latest", "--json").output)
    assert shown["tags"] == ["imported"] and shown["status"] == "completed"
    assert len(shown["epochs"]) == 1 and shown["config_id"] == run["config_id"]
    # the pack carries predictions.npz; the pictures are drawn on import (issue 31)
    assert {"curves.png", "confusion.png", "predictions.png", "predictions.npz"} <= set(
        shown["files"])
    assert all(Path(f).is_file() for f in shown["files"].values())
    provenance = json.loads(Path(shown["run_dir"], "imported.json").read_text())
    assert provenance["original_run_id"] == run["run_id"] and provenance["file"] == pack.name
    assert provenance["sha256"] == packs.file_sha256(pack)
    r = zoo("evaluate", run["run_id"], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["accuracy"] == run["test_accuracy"]  # exactly


def test_importing_the_same_pack_twice_changes_nothing(zoo, trained, tmp_path, monkeypatch):
    _, run, pack, _ = trained
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    assert zoo("import", pack).exit_code == 0  # the alias
    r = zoo("unpack", pack)
    assert r.exit_code == 0
    assert r.output.startswith(f"run {run['run_id']} is already in the results store")
    assert "(imported before); nothing to do" in r.output
    with open_store() as store:
        assert [x.run_id for x in store.runs()] == [run["run_id"]]
        assert len(store.epochs(run["run_id"])) == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run["run_id"]]


def test_unpacking_into_the_store_it_came_from_finds_the_run_there(zoo, origin):
    _, run, pack, _ = origin
    r = zoo("unpack", pack)
    assert r.exit_code == 0 and "(the run this pack was made from); nothing to do" in r.output


def test_unpack_into_postgresql_then_again(zoo, trained, tmp_path, monkeypatch, postgresql_url):
    _, run, pack, _ = trained
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    assert zoo("--store", postgresql_url, "unpack", pack).exit_code == 0
    assert "already in the results store" in zoo("unpack", pack, "--store", postgresql_url).output
    with open_store(postgresql_url) as store:
        (record,) = store.runs()
        assert record.tags == ["imported"] and record.test_accuracy == run["test_accuracy"]
        assert len(store.epochs(record.run_id)) == 1


def test_only_completed_runs_are_packed(zoo, tmp_path):
    with open_store() as store:
        store.create_run(RunRecord(
            run_id="cnn-fashion-s0-x", status="interrupted", model="cnn", dataset="fashion",
            plugin="zoo-cnn", plugin_version="0.1.0", zoo_version="0.1.0", tf_version="2",
            config={}, seed=0, data_checksums={}, split_sizes={}))
    r = zoo("pack", "latest", "-o", tmp_path / "x.zoopack")
    assert r.exit_code == 1
    assert r.output == ("Error: run cnn-fashion-s0-x is interrupted: only completed runs can be "
                        "packed (see `zoo runs --status completed`)\n")
    assert not (tmp_path / "x.zoopack").exists()


def test_a_wrong_sha256_given_to_unpack_is_refused(zoo, trained):
    r = zoo("unpack", trained[2], "--sha256", "0" * 64)
    assert r.exit_code == 1 and "not " + "0" * 64 + ": refused" in r.output


# -- tampered and hostile packs -------------------------------------------------------------------


def _members(pack: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(pack) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _rewrite(pack: Path, target: Path, members: dict[str, bytes], comment: bytes | None = None,
             infos: list[zipfile.ZipInfo] | None = None) -> Path:
    with zipfile.ZipFile(pack) as zf:
        comment = zf.comment if comment is None else comment
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info, data in infos or []:
            zf.writestr(info, data)
        zf.comment = comment
    return target


def _refused(zoo, target: Path, home: Path) -> str:
    r = zoo("unpack", target)
    assert r.exit_code == 1, r.output
    with open_store() as store:
        assert store.runs() == []  # nothing imported
    assert not any((home / "runs").glob("*")) if (home / "runs").exists() else True
    return r.output


MEMBERS = ["run.json", "epochs.json", "config.json", "metrics.json", "checkpoint.json",
           "ckpt/best-1.index", "ckpt/best-1.data-00000-of-00001", "predictions.npz",
           "manifest.json"]


@pytest.mark.parametrize("member", MEMBERS)
def test_one_changed_byte_in_any_member_is_refused_naming_it(
        zoo, trained, tmp_path, zoo_home, member):
    members = _members(trained[2])
    data = bytearray(members[member])
    data[len(data) // 2] ^= 0x01
    members[member] = bytes(data)
    output = _refused(zoo, _rewrite(trained[2], tmp_path / "t.zoopack", members), zoo_home)
    assert output.startswith(f"Error: {tmp_path / 't.zoopack'}: member {member} was changed: ")


def test_a_damaged_byte_in_the_file_is_refused_naming_the_member(zoo, trained, tmp_path, zoo_home):
    data = bytearray(trained[2].read_bytes())
    with zipfile.ZipFile(trained[2]) as zf:
        info = zf.getinfo("ckpt/best-1.data-00000-of-00001")
    data[info.header_offset + 200] ^= 0xFF  # inside its compressed bytes
    (tmp_path / "d.zoopack").write_bytes(bytes(data))
    output = _refused(zoo, tmp_path / "d.zoopack", zoo_home)
    assert "member ckpt/best-1.data-00000-of-00001 " in output


def test_a_changed_comment_is_refused(zoo, trained, tmp_path, zoo_home):
    target = _rewrite(trained[2], tmp_path / "c.zoopack", _members(trained[2]),
                      comment=b"zoopack 1 manifest-sha256=" + b"0" * 64)
    assert "member manifest.json was changed" in _refused(zoo, target, zoo_home)


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize("name, mode, why", [
    ("/etc/evil", stat.S_IFREG | 0o644, "an absolute path"),
    ("../evil", stat.S_IFREG | 0o644, "its path leads out of the run folder ('..')"),
    ("ckpt/../../evil", stat.S_IFREG | 0o644, "its path leads out of the run folder ('..')"),
    ("ckpt/best-1.index.link", stat.S_IFLNK | 0o777, "it is a symbolic link"),
    ("ckpt/best-2.index", stat.S_IFLNK | 0o777, "it is a symbolic link"),
    ("ckpt/best-3.index", stat.S_IFCHR | 0o644, "it is a device, pipe or socket, not a file"),
    ("ckpt/best-4.index", stat.S_IFIFO | 0o644, "it is a device, pipe or socket, not a file"),
    ("evil.sh", stat.S_IFREG | 0o755, "not a file a pack holds"),
    ("ckpt/", stat.S_IFDIR | 0o755, "it is a folder"),
])
def test_members_that_would_leave_the_run_folder_are_refused(zoo, trained, tmp_path, zoo_home,
                                                             name, mode, why):
    target = _rewrite(trained[2], tmp_path / "h.zoopack", _members(trained[2]),
                      infos=[(_info(name, mode), b"/etc/passwd")])
    output = _refused(zoo, target, zoo_home)
    assert output == f"Error: {target}: member {name!r} refused: {why}\n"


def test_a_member_twice_is_refused(zoo, trained, tmp_path, zoo_home):
    with pytest.warns(UserWarning, match="Duplicate name"):
        target = _rewrite(trained[2], tmp_path / "2.zoopack", _members(trained[2]),
                          infos=[(_info("config.json", stat.S_IFREG | 0o644), b"{}")])
    assert "member 'config.json' refused: it appears twice" in _refused(zoo, target, zoo_home)


def test_a_zip_bomb_is_refused_before_it_is_written(zoo, trained, tmp_path, zoo_home):
    members = _members(trained[2])
    members["ckpt/best-1.data-00000-of-00001"] = bytes(16 << 20)  # 16 MiB of zeros, ~16 KiB
    target = _rewrite(trained[2], tmp_path / "b.zoopack", members)
    assert target.stat().st_size < 1 << 20
    output = _refused(zoo, target, zoo_home)
    assert re.search(r"member 'ckpt/best-1.data-00000-of-00001' refused: 16,777,216 bytes "
                     r"uncompressed from [0-9,]+, beyond what a pack holds", output)


def test_a_member_missing_from_the_manifest_or_the_archive_is_refused(
        zoo, trained, tmp_path, zoo_home):
    members = _members(trained[2])
    del members["metrics.json"]
    target = _rewrite(trained[2], tmp_path / "m.zoopack", members)
    assert "member metrics.json is in the manifest but missing" in _refused(zoo, target, zoo_home)


def test_a_store_that_refuses_the_row_leaves_no_folder(
        zoo, trained, tmp_path, zoo_home, monkeypatch):
    from zoo_core.store.sqlite import SQLiteStore

    def refuse(self, record):
        raise StoreError("results store: disk full")

    monkeypatch.setattr(SQLiteStore, "create_run", refuse)
    r = zoo("unpack", trained[2])
    assert r.exit_code == 1 and "disk full" in r.output
    assert list((zoo_home / "runs").iterdir()) == []
