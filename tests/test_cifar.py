"""CIFAR-10 (issue 18, point 9): the official python-pickle archive's format, generated here
small (a few images per batch, same members, same pickles), found, verified, downloaded with
progress, refused when wrong; and a tiny real `zoo run cnn-bn --dataset cifar10` on it."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from zoo_core import data
from zoo_core.catalogue import open_zoo
from zoo_core.catalogue.registry import default_registry_path
from zoo_core.data import archives
from zoo_core.errors import DataError

PER_BATCH, TEST = 40, 30


def batch(rng, n: int, name: str) -> bytes:
    """One batch pickled as the official archive's are (protocol 2, bytes keys)."""
    return pickle.dumps({b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"filenames": [b"x.png"] * n}, protocol=2)


def make_archive(path: Path, seed: int = 0, members: dict[str, bytes] | None = None) -> str:
    """A cifar-10-python.tar.gz of the official layout; returns its sha256."""
    rng = np.random.default_rng(seed)
    members = members or {name: batch(rng, TEST if name == "test_batch" else PER_BATCH, name)
                          for name in archives.BATCHES}
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    """A generated archive in a folder, and a registry whose cifar10 names its sha256 (and a
    validation split that fits 200 training images)."""
    folder = tmp_path / "cifar"
    folder.mkdir()
    digest = make_archive(folder / "cifar-10-python.tar.gz")
    text = default_registry_path().read_text()
    block = text[text.index("[datasets.cifar10]"):]
    block = block[:block.index("\n\n")]
    small = re.sub(r'sha256 = "[0-9a-f]{64}"', f'sha256 = "{digest}"', block)
    small = small.replace("validation = 5000", "validation = 50")
    registry = tmp_path / "registry.toml"
    registry.write_text(text.replace(block, small))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    return folder, open_zoo(str(registry)).dataset("cifar10")


def test_the_registry_declares_cifar10_from_the_official_archive():
    spec = open_zoo().dataset("cifar10")
    assert spec.image_shape == (32, 32, 3) and spec.classes[0] == "airplane"
    assert spec.archive == {"format": "cifar-python", "file": "cifar-10-python.tar.gz",
                            "folder": "cifar-10-batches-py", "sha256":
                            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}
    assert spec.urls == ("https://www.cs.toronto.edu/~kriz/",)


def test_the_archive_loads_as_images_and_labels(cifar):
    folder, spec = cifar
    loaded = data.load(spec, folder)
    assert loaded.x_train.shape == (5 * PER_BATCH - 50, 32, 32, 3)
    assert loaded.x_test.shape == (TEST, 32, 32, 3) and loaded.x_val.shape == (50, 32, 32, 3)
    assert loaded.x_train.dtype == np.uint8
    assert set(loaded.checksums) == {"train", "test"}
    # the planes: value i of row r is red, 1024 + i green, 2048 + i blue of pixel i
    with tarfile.open(folder / "cifar-10-python.tar.gz") as tar:
        raw = pickle.loads(tar.extractfile("cifar-10-batches-py/test_batch").read(),
                           encoding="bytes")
    first = raw[b"data"][0]
    assert loaded.x_test[0, 0, 1].tolist() == first[[1, 1025, 2049]].tolist()
    assert loaded.y_test.tolist() == raw[b"labels"]


def test_an_extracted_copy_loads_the_same(cifar, tmp_path):
    folder, spec = cifar
    extracted = tmp_path / "keras"
    with tarfile.open(folder / "cifar-10-python.tar.gz") as tar:
        tar.extractall(extracted, filter="data")
    from_archive, from_folder = data.load(spec, folder), data.load(spec, extracted)
    assert from_folder.checksums == from_archive.checksums
    assert from_folder.source.endswith("cifar-10-batches-py (⟦data_dir⟧)")


def test_a_wrong_archive_is_refused_with_what_to_do(cifar):
    folder, spec = cifar
    make_archive(folder / "cifar-10-python.tar.gz", seed=1)
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz: checksum mismatch .*delete it "
                                        r"and run again to download it, or point data_dir"):
        data.load(spec, folder)


def test_a_batch_that_would_run_code_is_refused(cifar, tmp_path):
    folder, spec = cifar

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    members = {name: pickle.dumps(Evil()) for name in archives.BATCHES}
    (tmp_path / "evil").mkdir()
    digest = make_archive(tmp_path / "evil" / "cifar-10-python.tar.gz", members=members)
    spec = spec.__class__(**{**spec.__dict__, "archive": {**spec.archive, "sha256": digest}})
    with pytest.raises(DataError, match=r"not a CIFAR batch \(UnpicklingError: it names "
                                        r"builtins.print, which a batch never does\)"):
        data.load(spec, tmp_path / "evil")


def test_it_downloads_with_progress_verifies_and_caches(cifar, zoo_home):
    folder, spec = cifar
    spec = spec.__class__(**{**spec.__dict__, "urls": (folder.as_uri() + "/",)})
    events = []

    class Progress:
        def start(self, label, total):
            events.append(("start", label))

        def advance(self, n):
            events.append(("advance", n))

        def finish(self):
            events.append(("finish",))

    loaded = data.load(spec, None, progress=Progress())
    cached = zoo_home / "datasets" / "cifar10" / "cifar-10-python.tar.gz"
    assert cached.read_bytes() == (folder / "cifar-10-python.tar.gz").read_bytes()
    assert events[0] == ("start", "downloading cifar-10-python.tar.gz") and events[-1] == ("finish",)
    assert sum(n for kind, *n in events if kind == "advance" for n in n) == cached.stat().st_size
    assert loaded.source.endswith("(downloaded)")
    assert data.load(spec, None).source.endswith("(zoo cache)")
    where, files = data.inspect(spec)
    assert where.endswith("(zoo cache)") and [f.ok for f in files] == [True]


def test_zoo_run_cnn_bn_on_cifar10_trains_for_real(zoo, cifar):
    """A tiny real run: 32x32x3 images through the batch-norm CNN, evaluated and recorded."""
    folder, _ = cifar
    r = zoo("run", "cnn-bn", "--dataset", "cifar10", "--data-dir",
            str(folder), "--epochs", "1", "--batch-size", "50", "--json")
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert (record["model"], record["dataset"], record["status"]) == ("cnn-bn", "cifar10", "completed")
    assert record["split_sizes"] == {"train": 150, "val": 50, "test": TEST}
    assert 0 <= record["test_accuracy"] <= 1 and record["params"] > 0
    shown = zoo("datasets", "--data-dir", str(folder)).output
    assert re.search(r"cifar10 +10 +\S+ \(--data-dir\) +yes", shown)
