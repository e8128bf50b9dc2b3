"""Data: the search order, verification against corrupted copies of the real files,
downloads (from file:// mirrors), and the splits."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from zoo_core import datasets
from zoo_core.errors import DataError, UsageError
from zoo_core.registry import read_catalogue

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
    data = datasets.load(fashion)
    assert data.x_train.shape == (55_000, 28, 28, 1) and data.x_train.dtype == np.float32
    assert data.x_val.shape == (5_000, 28, 28, 1)
    assert data.x_test.shape == (10_000, 28, 28, 1)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert set(np.unique(data.y_test)) == set(range(10))
    assert data.split_sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert data.checksums["train_images"] == fashion.files["train_images"]["sha256"]
    assert "/usr/share/datasets/fashion-mnist" in data.source


def test_the_validation_split_is_fixed_and_the_test_split_untouched(fashion, copy_dir):
    a = datasets.load(fashion)
    b = datasets.load(fashion, data_dir=copy_dir, limit=100)
    assert np.array_equal(a.y_val, b.y_val)
    assert np.array_equal(a.y_train[:100], b.y_train)
    raw_test = datasets.parse_idx(gzip.decompress((REAL / NAMES[3]).read_bytes()))
    assert np.array_equal(a.y_test, raw_test)  # same order, nothing carved
    # no validation image is also a training image
    train_rows = {row.tobytes() for row in a.x_train[:5000]}
    assert not any(row.tobytes() in train_rows for row in a.x_val[:500])


def test_limit_larger_than_the_data_is_a_usage_error(fashion):
    with pytest.raises(UsageError, match="--limit 60000 is larger than the training split of fashion "
                                         r"\(55000 examples"):
        datasets.load(fashion, limit=60_000)


def test_search_order_prefers_data_dir_then_env_then_cache(fashion, copy_dir, tmp_path, monkeypatch):
    assert datasets.locate(fashion, copy_dir)[0] == "--data-dir"
    monkeypatch.setenv("ZOO_DATA_DIR", str(copy_dir))
    assert datasets.locate(fashion)[0] == "ZOO_DATA_DIR"
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert datasets.locate(fashion)[0] == "system"
    # a data dir holding one subfolder per dataset works too
    nested = tmp_path / "all"
    shutil.copytree(copy_dir, nested / "fashion")
    why, paths = datasets.locate(fashion, nested)
    assert why == "--data-dir" and paths["train_images"].parent == nested / "fashion"


def test_decompressed_copies_verify_by_the_same_checksum(fashion, copy_dir):
    for name in NAMES:
        (copy_dir / name[:-3]).write_bytes(gzip.decompress((copy_dir / name).read_bytes()))
        (copy_dir / name).unlink()
    data = datasets.load(fashion, data_dir=copy_dir)
    assert data.checksums["test_labels"] == fashion.files["test_labels"]["sha256"]


def test_a_truncated_gzip_is_named_with_the_fix(fashion, copy_dir):
    path = copy_dir / NAMES[0]
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(DataError) as err:
        datasets.load(fashion, data_dir=copy_dir)
    assert str(path) in str(err.value)
    assert "corrupted or truncated gzip" in str(err.value) and "delete it" in str(err.value)


def test_a_corrupted_byte_fails_the_checksum(fashion, copy_dir):
    path = copy_dir / NAMES[2]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[5000] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=rf"{path}: checksum mismatch for fashion test_images"):
        datasets.load(fashion, data_dir=copy_dir)


def test_a_truncated_idx_file_says_truncated(fashion, copy_dir):
    path = copy_dir / NAMES[1]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match=r"checksum mismatch .*\[truncated: 59998 bytes, the header promises 60008\]"):
        datasets.load(fashion, data_dir=copy_dir)


def test_a_file_of_the_wrong_kind_is_refused(fashion, copy_dir):
    shutil.copy(copy_dir / NAMES[1], copy_dir / NAMES[0])  # labels where images belong
    unchecked = replace(fashion, files={**fashion.files, "train_images": {"file": NAMES[0]}})
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: images of shape \(\), expected \(28, 28\)"):
        datasets.load(unchecked, data_dir=copy_dir)
    (copy_dir / NAMES[0]).write_text("<html>Not Found</html>")
    with pytest.raises(DataError, match="not an IDX file"):
        datasets.parse_idx((copy_dir / NAMES[0]).read_bytes(), copy_dir / NAMES[0])


def test_labels_out_of_range_are_refused(fashion, copy_dir):
    unchecked = replace(fashion, classes=fashion.classes[:5],
                        files={k: {"file": v["file"]} for k, v in fashion.files.items()})
    with pytest.raises(DataError, match="label 9 is out of range for 5 classes"):
        datasets.load(unchecked, data_dir=copy_dir)


def test_a_data_dir_missing_some_files_is_an_error_not_a_fall_through(fashion, copy_dir):
    (copy_dir / NAMES[3]).unlink()
    with pytest.raises(DataError, match=rf"{copy_dir}: fashion files missing: {NAMES[3]}"):
        datasets.load(fashion, data_dir=copy_dir)


def test_download_verifies_then_caches(fashion, copy_dir, zoo_home):
    mirror = replace(fashion, system_dirs=(), urls=(copy_dir.as_uri() + "/",))
    data = datasets.load(mirror)
    cached = zoo_home / "datasets" / "fashion"
    assert data.source == f"{cached} (downloaded)"
    assert sorted(p.name for p in cached.iterdir()) == sorted(NAMES)
    assert datasets.locate(mirror)[0] == "zoo cache"


def test_a_failed_download_caches_nothing(fashion, copy_dir, zoo_home):
    (copy_dir / NAMES[0]).write_bytes((copy_dir / NAMES[0]).read_bytes()[:50_000])
    mirror = replace(fashion, system_dirs=(), urls=("file:///nonexistent/", copy_dir.as_uri()))
    with pytest.raises(DataError) as err:
        datasets.load(mirror)
    assert "could not download fashion train-images-idx3-ubyte.gz" in str(err.value)
    assert "--data-dir" in str(err.value)
    cached = zoo_home / "datasets" / "fashion"
    assert not (cached / NAMES[0]).exists()
    assert not list(cached.glob("*.part"))


def test_not_found_without_download_lists_where_it_looked(fashion, tmp_path):
    nowhere = replace(fashion, system_dirs=(str(tmp_path / "none"),))
    with pytest.raises(DataError, match="dataset 'fashion' not found; looked in: .*none"):
        datasets.load(nowhere, download_ok=False)
