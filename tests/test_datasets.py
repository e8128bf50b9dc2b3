"""Data: the search order, verification against corrupted copies of the real files,
downloads (from file:// mirrors), and the splits."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from zoo_core import data as zoo_data
from zoo_core.catalogue.registry import read_catalogue
from zoo_core.catalogue.specs import FILE_ROLES
from zoo_core.data import downloads
from zoo_core.errors import DataError, UsageError, setting

REAL = Path("/usr/share/datasets/fashion-mnist")
NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(scope="module")
def fashion():
    return read_catalogue().datasets["fashion"]


@pytest.fixture
def copy_dir(tmp_path):
    """A folder holding copies of the real Fashion-MNIST files."""
    d = tmp_path / "copy"
    d.mkdir()
    for name in NAMES:
        shutil.copy(REAL / name, d / name)
    return d


def test_the_real_files_load_verified_and_split(fashion):
    data = zoo_data.load(fashion)
    # uint8 as in the files (a quarter of float32's memory); the model sees them scaled
    assert data.x_train.shape == (55_000, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.x_val.shape == (5_000, 28, 28, 1) and data.x_val.dtype == np.uint8
    assert data.x_test.shape == (10_000, 28, 28, 1) and data.x_test.dtype == np.uint8
    x = zoo_data.to_float(data.x_train[:100])
    assert x.dtype == np.float32 and x.max() == 1.0 and x.min() == 0.0
    assert np.allclose(x, data.x_train[:100] / 255.0, rtol=0, atol=1e-7)
    assert set(np.unique(data.y_test)) == set(range(10))
    assert data.split_sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert data.checksums["train_images"] == fashion.files["train_images"]["sha256"]
    assert "/usr/share/datasets/fashion-mnist" in data.source


def test_the_validation_split_is_fixed_and_the_test_split_untouched(fashion, copy_dir):
    a = zoo_data.load(fashion)
    b = zoo_data.load(fashion, data_dir=copy_dir, limit=100)
    assert np.array_equal(a.y_val, b.y_val)
    assert np.array_equal(a.y_train[:100], b.y_train)
    raw_test = zoo_data.parse_idx(gzip.decompress((REAL / NAMES[3]).read_bytes()))
    assert np.array_equal(a.y_test, raw_test)  # same order, nothing carved
    # no validation image is also a training image
    train_rows = {row.tobytes() for row in a.x_train[:5000]}
    assert not any(row.tobytes() in train_rows for row in a.x_val[:500])


def test_limit_larger_than_the_data_is_a_usage_error(fashion):
    with pytest.raises(UsageError, match="limit=60000 is larger than the training split of fashion "
                                         r"\(55000 examples") as err:
        zoo_data.load(fashion, limit=60_000)
    assert err.value.template.startswith(f"{setting('limit', 60000)} is larger")  # --limit 60000


def test_search_order_prefers_data_dir_then_env_then_cache(
        fashion, copy_dir, tmp_path, monkeypatch):
    assert zoo_data.locate(fashion, copy_dir)[0] == setting("data_dir")  # the CLI: --data-dir
    monkeypatch.setenv("ZOO_DATA_DIR", str(copy_dir))
    assert zoo_data.locate(fashion)[0] == "ZOO_DATA_DIR"
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert zoo_data.locate(fashion)[0] == "system"
    # a data dir holding one subfolder per dataset works too
    nested = tmp_path / "all"
    shutil.copytree(copy_dir, nested / "fashion")
    why, paths = zoo_data.locate(fashion, nested)
    assert why == setting("data_dir") and paths["train_images"].parent == nested / "fashion"


def test_decompressed_copies_verify_by_the_same_checksum(fashion, copy_dir):
    for name in NAMES:
        (copy_dir / name[:-3]).write_bytes(gzip.decompress((copy_dir / name).read_bytes()))
        (copy_dir / name).unlink()
    data = zoo_data.load(fashion, data_dir=copy_dir)
    assert data.checksums["test_labels"] == fashion.files["test_labels"]["sha256"]


def test_a_truncated_gzip_is_named_with_the_fix(fashion, copy_dir):
    path = copy_dir / NAMES[0]
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(DataError) as err:
        zoo_data.load(fashion, data_dir=copy_dir)
    assert str(path) in str(err.value)
    assert "corrupted or truncated gzip" in str(err.value) and "delete it" in str(err.value)


def test_a_corrupted_byte_fails_the_checksum(fashion, copy_dir):
    path = copy_dir / NAMES[2]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[5000] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=rf"{path}: checksum mismatch for fashion test_images"):
        zoo_data.load(fashion, data_dir=copy_dir)


def test_a_truncated_idx_file_says_truncated(fashion, copy_dir):
    path = copy_dir / NAMES[1]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match=r"checksum mismatch .*\[truncated: 59998 bytes, the header promises 60008\]"):
        zoo_data.load(fashion, data_dir=copy_dir)


def test_a_file_of_the_wrong_kind_is_refused(fashion, copy_dir):
    shutil.copy(copy_dir / NAMES[1], copy_dir / NAMES[0])  # labels where images belong
    unchecked = replace(fashion, files={**fashion.files, "train_images": {"file": NAMES[0]}})
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: images of shape \(\), expected \(28, 28\)"):
        zoo_data.load(unchecked, data_dir=copy_dir)
    (copy_dir / NAMES[0]).write_text("<html>Not Found</html>")
    with pytest.raises(DataError, match="not an IDX file"):
        zoo_data.parse_idx((copy_dir / NAMES[0]).read_bytes(), copy_dir / NAMES[0])


def test_labels_out_of_range_are_refused(fashion, copy_dir):
    unchecked = replace(fashion, classes=fashion.classes[:5],
                        files={k: {"file": v["file"]} for k, v in fashion.files.items()})
    with pytest.raises(DataError, match="label 9 is out of range for 5 classes"):
        zoo_data.load(unchecked, data_dir=copy_dir)


def test_a_data_dir_missing_some_files_is_an_error_not_a_fall_through(fashion, copy_dir):
    (copy_dir / NAMES[3]).unlink()
    with pytest.raises(DataError, match=rf"{copy_dir}: fashion files missing: {NAMES[3]}"):
        zoo_data.load(fashion, data_dir=copy_dir)


def test_download_verifies_then_caches(fashion, copy_dir, zoo_home):
    mirror = replace(fashion, system_dirs=(), urls=(copy_dir.as_uri() + "/",))
    data = zoo_data.load(mirror)
    cached = zoo_home / "datasets" / "fashion"
    assert data.source == f"{cached} (downloaded)"
    assert sorted(p.name for p in cached.iterdir()) == sorted(NAMES)
    assert zoo_data.locate(mirror)[0] == "zoo cache"


class _Recorder:
    """A DownloadProgress that writes down what it is told."""

    def __init__(self):
        self.events = []

    def start(self, label, total):
        self.events.append(("start", label, total))

    def advance(self, n):
        self.events.append(("advance", n))

    def finish(self):
        self.events.append(("finish",))


def test_a_download_reports_its_progress_to_the_caller(fashion, copy_dir, zoo_home):
    mirror = replace(fashion, system_dirs=(), urls=(copy_dir.as_uri() + "/",))
    progress = _Recorder()
    zoo_data.load(mirror, progress=progress)
    starts = [e for e in progress.events if e[0] == "start"]
    assert starts == [("start", f"downloading {name}", (copy_dir / name).stat().st_size)
                      for name in NAMES]
    assert progress.events.count(("finish",)) == 4 and progress.events[-1] == ("finish",)
    first = progress.events[:progress.events.index(("finish",))]
    assert sum(e[1] for e in first if e[0] == "advance") == starts[0][2]


def test_the_cli_progress_bar_takes_a_size_the_server_did_not_say():
    from zoo_core.cli.common import DownloadProgressBar

    bar = DownloadProgressBar()
    bar.start("downloading x", None)
    bar.advance(10)
    assert bar._bar.pos == 10  # counted, with no total to count against
    bar.finish()
    assert bar._bar is None  # the bar is closed
    bar.finish()  # a second finish is harmless
    assert bar._bar is None


def test_the_cli_names_the_data_dir_as_its_option(zoo, fashion, copy_dir):
    result = zoo("datasets", "--json", "--data-dir", str(copy_dir))
    rows = {d["name"]: d for d in json.loads(result.stdout)}
    assert rows["fashion"]["location"] == f"{copy_dir} (--data-dir)"
    assert rows["fashion"]["verified"] == "yes"
    # mnist's files have the same names: found there, they fail its checksums
    assert rows["mnist"]["problems"][0].endswith("or point --data-dir at a good copy")


def test_a_failed_download_caches_nothing(fashion, copy_dir, zoo_home):
    (copy_dir / NAMES[0]).write_bytes((copy_dir / NAMES[0]).read_bytes()[:50_000])
    mirror = replace(fashion, system_dirs=(), urls=("file:///nonexistent/", copy_dir.as_uri()))
    with pytest.raises(DataError) as err:
        zoo_data.load(mirror)
    assert "could not download fashion train-images-idx3-ubyte.gz" in str(err.value)
    assert setting("data_dir") in err.value.template  # the CLI: --data-dir
    cached = zoo_home / "datasets" / "fashion"
    assert not (cached / NAMES[0]).exists()
    assert not list(cached.glob("*.part"))


def test_not_found_without_download_lists_where_it_looked(fashion, tmp_path):
    nowhere = replace(fashion, system_dirs=(str(tmp_path / "none"),))
    with pytest.raises(DataError, match="dataset 'fashion' not found; looked in: .*none"):
        zoo_data.load(nowhere, download_ok=False)


# ----------------------------------------------------------------- unreadable files and folders
# Tests run as root, which ignores permission bits: unreadability is simulated by making the
# system calls fail the way they do for an ordinary user.

def _deny(monkeypatch, target: Path, func: str = "stat"):
    """Make ``os.stat`` (or ``Path.read_bytes``) fail with EACCES for ``target`` and below."""
    import errno
    import os

    def denied(path):
        return Path(path) == target or target in Path(path).parents

    if func == "stat":
        real = os.stat

        def stat(path, *args, **kwargs):
            if denied(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        monkeypatch.setattr(os, "stat", stat)
    else:
        real_read = Path.read_bytes

        def read_bytes(self):
            if denied(self):
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_read(self)
        monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_an_unreadable_file_is_named_with_the_fix(fashion, copy_dir, monkeypatch):
    path = copy_dir / NAMES[2]
    _deny(monkeypatch, path, "read_bytes")
    with pytest.raises(DataError) as err:
        zoo_data.load(fashion, data_dir=copy_dir)
    assert err.value.template == (f"{path}: cannot be read (Permission denied); make it readable "
                                  f"(chmod a+r) or point {setting('data_dir')} at a readable copy")


def test_a_folder_where_a_file_belongs_is_named(fashion, copy_dir):
    path = copy_dir / NAMES[1]
    path.unlink()
    path.mkdir()  # e.g. an archive tool that unpacked into a folder of the same name
    with pytest.raises(DataError, match=rf"^{path}: is a folder, not a file; put the file itself there"):
        zoo_data.load(fashion, data_dir=copy_dir)


@pytest.mark.parametrize("where", ["data dir", "system dir"])
def test_an_unreadable_folder_is_a_data_error_not_a_traceback(
        fashion, copy_dir, monkeypatch, where):
    spec = replace(fashion, system_dirs=(str(copy_dir),))
    _deny(monkeypatch, copy_dir / NAMES[0])  # the folder lacks search permission
    with pytest.raises(DataError) as err:
        zoo_data.load(spec, data_dir=copy_dir if where == "data dir" else None)
    assert str(err.value).startswith(f"{copy_dir}: cannot look inside (Permission denied); "
                                     "make it readable")
    # and `zoo datasets` reports it instead of failing
    status = zoo_data.inspect(spec)
    assert status[0] == "cannot be searched" and "cannot look inside" in status[1][0].message


def test_a_data_dir_that_does_not_exist_is_a_usage_error(fashion, tmp_path, monkeypatch):
    with pytest.raises(UsageError, match=rf"^{tmp_path / 'typo'}: no such folder \(given by data_dir") as err:
        zoo_data.load(fashion, data_dir=tmp_path / "typo")
    assert f"(given by {setting('data_dir')} or ZOO_DATA_DIR)" in err.value.template
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(UsageError, match=r"no such folder \(given by ZOO_DATA_DIR\)"):
        zoo_data.load(fashion)
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a folder"):
        zoo_data.load(fashion, data_dir=tmp_path / "file")


def test_the_cli_exits_2_for_a_missing_data_dir_and_1_for_a_bad_file(zoo, copy_dir, tmp_path):
    typo = zoo("run", "cnn", "--data-dir", str(tmp_path / "typo"))
    assert typo.exit_code == 2 and "no such folder" in typo.output
    assert "(given by --data-dir or ZOO_DATA_DIR)" in typo.output
    (copy_dir / NAMES[3]).write_bytes(b"<html>Not Found</html>")
    bad = zoo("run", "cnn", "--data-dir", str(copy_dir))
    assert bad.exit_code == 1, bad.output
    (line,) = bad.output.strip().splitlines()
    assert line.startswith(f"Error: {copy_dir / NAMES[3]}: checksum mismatch for fashion test_labels")
    assert "[not an IDX file (bad magic number) (it looks like a web page)]" in line


# ----------------------------------------------------------------- downloads that fail halfway

class _Response:
    """A urlopen() response serving ``data`` and failing as told after ``cut`` bytes."""

    def __init__(self, data: bytes, cut: int | None = None, error: BaseException | None = None,
                 length: int | None = None):
        self.data, self.cut, self.error, self.pos = data, cut, error, 0
        self.headers = {"Content-Length": str(len(data) if length is None else length)}
        self.status = 200  # the whole file: a Range request is not honoured

    def read(self, n):
        if self.cut is not None and self.pos >= self.cut:
            if self.error is not None:
                raise self.error
            return b""
        end = self.pos + n if self.cut is None else min(self.pos + n, self.cut)
        chunk, self.pos = self.data[self.pos:end], end
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _serve(monkeypatch, copy_dir, fail: dict, every_time: bool = False):
    """Serve copy_dir's files from http://mirror/; ``fail`` maps a file name to a failure,
    served once (a download resumes after it) or ``every_time``."""
    calls = []

    def urlopen(url, timeout=None):
        url = getattr(url, "full_url", url)  # a urllib.request.Request, or a URL
        name = url.rsplit("/", 1)[1]
        calls.append(name)
        data = (copy_dir / name).read_bytes()
        if name in fail:
            return (fail[name] if every_time else fail.pop(name))(data)
        return _Response(data)
    monkeypatch.setattr(downloads.urllib.request, "urlopen", urlopen)
    return calls


@pytest.mark.parametrize("failure, reason", [
    (lambda d: _Response(d, cut=len(d) // 2, error=ConnectionResetError(104, "Connection reset by peer")),
     "Connection reset by peer"),
    (lambda d: _Response(d, cut=len(d) // 2, error=__import__("http.client").client.IncompleteRead(b"")),
     "IncompleteRead"),
    (lambda d: _Response(d, cut=len(d) // 2), "connection closed after"),
    (lambda d: _Response(d[: len(d) // 2], length=len(d) // 2), "corrupted or truncated gzip"),
])
def test_a_download_that_fails_halfway_leaves_nothing_behind(fashion, copy_dir, zoo_home,
                                                              monkeypatch, failure, reason):
    mirror = replace(fashion, system_dirs=(), urls=("http://mirror/",))
    cached = zoo_home / "datasets" / "fashion"
    _serve(monkeypatch, copy_dir, {NAMES[2]: failure}, every_time=True)  # a cut once is resumed
    with pytest.raises(DataError) as err:
        zoo_data.load(mirror)
    message = str(err.value)
    assert message.startswith(f"could not download fashion {NAMES[2]}: http://mirror/{NAMES[2]}: ")
    assert reason in message and ".part" not in message and "\n" not in message
    assert err.value.template.endswith("-- check your connection, or put the files in a folder "
                                       f"and pass {setting('data_dir')}")  # the CLI: --data-dir
    assert not (cached / NAMES[2]).exists()
    assert not list(cached.glob("*.part"))
    # the next attempt fetches only what is missing, and everything verifies
    calls = _serve(monkeypatch, copy_dir, {})
    data = zoo_data.load(mirror)
    assert calls == [NAMES[2], NAMES[3]]
    assert data.checksums == {role: fashion.files[role]["sha256"] for role in FILE_ROLES}


def test_an_interrupted_download_removes_its_partial_file(fashion, copy_dir, zoo_home, monkeypatch):
    mirror = replace(fashion, system_dirs=(), urls=("http://mirror/",))
    _serve(monkeypatch, copy_dir, {NAMES[0]: lambda d: _Response(d, cut=70_000, error=KeyboardInterrupt())})
    with pytest.raises(KeyboardInterrupt):
        zoo_data.load(mirror)
    assert list((zoo_home / "datasets" / "fashion").iterdir()) == []


def test_a_stale_partial_file_is_never_used(fashion, copy_dir, zoo_home, monkeypatch):
    cached = zoo_home / "datasets" / "fashion"
    cached.mkdir(parents=True)
    for name in NAMES:  # what a killed download leaves: .part files, never the final names
        (cached / f"{name}.x1y2.part").write_bytes((copy_dir / name).read_bytes()[:1000])
    assert zoo_data.locate(replace(fashion, system_dirs=())) is None
    calls = _serve(monkeypatch, copy_dir, {})
    zoo_data.load(replace(fashion, system_dirs=(), urls=("http://mirror/",)))
    assert calls == NAMES


def test_a_damaged_cached_copy_is_fetched_anew(fashion, copy_dir, zoo_home, monkeypatch):
    mirror = replace(fashion, system_dirs=(), urls=("http://mirror/",))
    _serve(monkeypatch, copy_dir, {})
    zoo_data.load(mirror)
    cached = zoo_home / "datasets" / "fashion" / NAMES[3]
    cached.write_bytes(cached.read_bytes()[:-20])  # bit rot, a disk that filled up
    calls = _serve(monkeypatch, copy_dir, {})
    data = zoo_data.load(mirror)
    assert calls == [NAMES[3]] and data.source.endswith("(downloaded)")
    assert cached.read_bytes() == (copy_dir / NAMES[3]).read_bytes()
    # without a way to download, the damage is reported, naming the file
    with pytest.raises(DataError, match=rf"^{cached}: corrupted or truncated gzip"):
        cached.write_bytes(cached.read_bytes()[:-20])
        zoo_data.load(mirror, download_ok=False)


def test_a_cache_that_cannot_be_created_suggests_zoo_home(fashion, copy_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where ZOO_HOME's folder should be")
    monkeypatch.setenv("ZOO_HOME", str(blocker / "home"))
    with pytest.raises(DataError) as err:
        zoo_data.load(replace(fashion, system_dirs=(), urls=("http://mirror/",)))
    assert str(err.value) == (f"cannot create the dataset cache {blocker}/home/datasets/fashion "
                              f"({blocker} is a file, not a folder): move that file aside, "
                              "or set ZOO_HOME to another folder")


def test_a_malformed_download_url_is_reported_not_raised(fashion, zoo_home):
    with pytest.raises(DataError, match=r"could not download fashion .*: htp:/nowhere/.*unknown url type"):
        zoo_data.load(replace(fashion, system_dirs=(), urls=("htp:/nowhere/",)))


@pytest.mark.parametrize("labels, message", [
    (np.array(["a", "b"] * 5), "train labels are <U1, expected integers"),
    (np.arange(10) % 2 + 5, r"train labels outside 0..1"),
    (np.zeros(3, np.int64), "3 train labels for 10 images"),
])
def test_a_plugin_loader_returning_junk_is_named(labels, message):
    from zoo_core.catalogue.specs import DatasetSpec

    def loader(data_dir):
        x = np.zeros((10, 4, 4), np.uint8)
        return x, labels, x, np.zeros(10, np.int64)
    spec = DatasetSpec("blobs", "blobs", ("a", "b"), (4, 4, 1), validation=2, load=loader,
                       plugin="zoo-blobs")
    with pytest.raises(DataError, match=rf"dataset 'blobs' \(plugin zoo-blobs\): {message}; "
                                        "the plugin's loader is wrong"):
        zoo_data.load(spec)


def test_a_download_that_no_checksum_covers_is_not_cached(fashion, copy_dir, zoo_home, monkeypatch):
    # MNIST has only md5_gz on record: an uncompressed file from a mirror cannot be verified
    md5_only = replace(fashion, system_dirs=(), urls=("http://mirror/",),
                       files={r: {k: v for k, v in f.items() if k != "sha256"}
                              for r, f in fashion.files.items()})
    for name in NAMES:
        (copy_dir / name).write_bytes(gzip.decompress((copy_dir / name).read_bytes()))
    _serve(monkeypatch, copy_dir, {})
    with pytest.raises(DataError, match=rf"the downloaded {NAMES[0]}: is not gzip-compressed, so its "
                                        "md5_gz cannot be checked"):
        zoo_data.load(md5_only)
    assert list((zoo_home / "datasets" / "fashion").iterdir()) == []


# -- zoo datasets --samples (issue 31): real test images to try zoo predict on ---------------------

@pytest.mark.skipif(not REAL.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_zoo_datasets_samples_writes_real_test_images(zoo, tmp_path):
    from PIL import Image

    raw = gzip.open(REAL / "t10k-images-idx3-ubyte.gz").read()
    test = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    result = zoo("datasets", "--samples", str(tmp_path / "s"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "s"
    assert result.output.splitlines() == [
        f"wrote 3 files of fashion's test images to {folder}:",
        f"  {folder}/ankle-boot.png         test image 0 (Ankle boot), enlarged to 280x280",
        f"  {folder}/pullover-on-white.jpg  test image 1 (Pullover), inverted, 300x300 RGB "
        "JPEG (needs --invert)",
        f"  {folder}/three.npy              test images 2-4 (Trouser, Trouser, Shirt), uint8 "
        "[3, 28, 28]",
        f"try: zoo predict cnn {folder}/ankle-boot.png {folder}/three.npy"]
    assert np.array_equal(np.load(folder / "three.npy"), test[2:5])
    boot = np.asarray(Image.open(folder / "ankle-boot.png"))
    assert boot.shape == (280, 280) and np.array_equal(boot[::10, ::10], test[0])
    jpeg = np.asarray(Image.open(folder / "pullover-on-white.jpg").convert("L").resize((28, 28)))
    assert np.abs(jpeg.astype(int) - (255 - test[1].astype(int))).mean() < 20  # inverted
