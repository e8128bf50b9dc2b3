"""Datasets that come as one archive: CIFAR-10's official python-pickle archive.

``cifar-10-python.tar.gz`` holds a folder (``cifar-10-batches-py``) of pickled batches:
``data_batch_1`` ... ``data_batch_5`` (training) and ``test_batch``, each a dict whose
``b"data"`` is a uint8 array [N, 3072] (the red, green and blue planes of a 32x32 image, row
by row) and ``b"labels"`` a list of N class indices.

Where it is found, in the usual search order (:mod:`zoo_core.data.search`): the archive
itself, or an extracted copy (the folder ``cifar-10-batches-py``, or a folder holding the
batches, e.g. Keras's ``~/.keras/datasets/cifar-10-batches-py``); else it is downloaded once
into the zoo's cache with progress. The archive is checked against the registry's sha256
before anything in it is read; an extracted copy has no file on record to check, so its
batches' shapes and labels are checked instead. Batches are read straight from the archive,
never extracted to disk, and unpickled by an unpickler that builds numpy arrays and nothing
else, so a tampered file cannot run code. What a run records as the data's checksums is a
digest of the arrays themselves (``train``, ``test``), the same whichever copy was read.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from zoo_core.catalogue.specs import DatasetSpec
from zoo_core.data.downloads import DownloadProgress, download_archive
from zoo_core.data.search import CACHE, GIVEN, _check_given_folder, expand, path_kind, search_dirs
from zoo_core.data.splits import array_digest
from zoo_core.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
DOWNLOADED = "downloaded"
# What a CIFAR batch pickle may name: numpy's array reconstruction and, in a pickle written
# by Python 3 with protocol 2, the bytes of an array as latin-1 text (_codecs.encode).
_ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def locate(spec: DatasetSpec, data_dir=None) -> tuple[str, Path] | None:
    """The archive (a file) or an extracted copy (a folder of batches) first in the search
    order, with why that folder was searched; None when there is none."""
    if data_dir:
        _check_given_folder(expand(data_dir), f"{GIVEN} or ZOO_DATA_DIR")
    for why, folder in search_dirs(spec, data_dir):
        if path_kind(folder) != "folder":
            continue
        if path_kind(folder / spec.archive["file"]) == "file":
            return why, folder / spec.archive["file"]
        for batches in (folder / spec.archive["folder"], folder):
            if all(path_kind(batches / name) == "file" for name in BATCHES):
                return why, batches
    return None


def verify_archive(spec: DatasetSpec, path: Path, label: str | None = None) -> None:
    """DataError unless the archive file's sha256 is the registry's."""
    label = label or str(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise DataError(f"{label}: cannot be read ({e.strerror or e})") from None
    if digest.hexdigest() != spec.archive["sha256"]:
        raise DataError(
            f"{label}: checksum mismatch (sha256 {digest.hexdigest()[:12]}…, expected "
            f"{spec.archive['sha256'][:12]}…): a damaged or different file; delete it and run "
            f"again to download it, or point {GIVEN} at the official {spec.archive['file']}"
        )


def load(spec: DatasetSpec, data_dir, download_ok: bool, progress: DownloadProgress | None):
    """The train and test arrays, their checksums and where they came from.

    Returns:
        ``(x_train, y_train, x_test, y_test, checksums, source)``, images uint8 [N, H, W, C].
    """
    found = locate(spec, data_dir)
    if found is None:
        if not download_ok:
            raise DataError(f"dataset {spec.name!r} not found; looked in: "
                            + ", ".join(str(p) for _, p in search_dirs(spec, data_dir)))
        found = DOWNLOADED, _download(spec, progress)
    why, path = found
    if path_kind(path) == "file":
        try:
            verify_archive(spec, path)
        except DataError:
            if why != CACHE or not download_ok or not spec.urls:
                raise
            why, path = DOWNLOADED, _download(spec, progress)  # the zoo's own copy: replaced
        batches = _read_archive(spec, path)
    else:
        batches = {name: _read_member(path / name, (path / name).read_bytes) for name in BATCHES}
    arrays = _arrays(spec, batches, path)
    checksums = {"train": array_digest(*arrays[:2]), "test": array_digest(*arrays[2:])}
    return (*arrays, checksums, f"{path} ({why})")


def _download(spec: DatasetSpec, progress) -> Path:
    return download_archive(spec, lambda p, label: verify_archive(spec, p, label), progress)


def _read_archive(spec: DatasetSpec, path: Path) -> dict[str, dict]:
    """Each batch's dict, read from the archive without extracting it."""
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in BATCHES:
                member = f"{spec.archive['folder']}/{name}"
                try:
                    f = tar.extractfile(member)
                except KeyError:
                    f = None
                if f is None:
                    raise DataError(f"{path}: {member} is missing from the archive; delete it "
                                    "and run again to download it")
                out[name] = _read_member(f"{path}: {member}", f.read)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: corrupted or truncated archive ({e}); delete it and run "
                        "again to download it") from None
    return out


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a batch never does")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy 2 warns about numpy.core
            return super().find_class(module, name)


def _read_member(where, read) -> dict:
    """Unpickle one batch (``read()`` gives its bytes) with :class:`_ArraysOnly`."""
    try:
        batch = _ArraysOnly(io.BytesIO(read()), encoding="bytes").load()
    except OSError as e:
        raise DataError(f"{where}: cannot be read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise DataError(f"{where}: not a CIFAR batch ({type(e).__name__}: {e}); delete it, or "
                        f"point {GIVEN} at the official archive") from None
    if not isinstance(batch, dict):
        raise DataError(f"{where}: not a CIFAR batch (a {type(batch).__name__}, not a dict)")
    return batch


def _arrays(spec: DatasetSpec, batches: dict[str, dict], source: Path):
    """The batches as x_train, y_train, x_test, y_test, each checked."""
    parts = {name: _batch_arrays(spec, name, batch, source) for name, batch in batches.items()}
    x_tr = np.concatenate([parts[n][0] for n in TRAIN_BATCHES])
    y_tr = np.concatenate([parts[n][1] for n in TRAIN_BATCHES])
    return x_tr, y_tr, *parts[TEST_BATCH]


def _batch_arrays(spec: DatasetSpec, name: str, batch: dict, source: Path):
    h, w, c = spec.image_shape
    data, labels = batch.get(b"data"), batch.get(b"labels")
    where = f"{source}: {name}"
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != h * w * c:
        raise DataError(f"{where}: data is not a uint8 array of {h * w * c} values per image "
                        f"(found {getattr(data, 'dtype', type(data).__name__)} "
                        f"{getattr(data, 'shape', '')})")
    y = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if y.shape != (len(data),):
        raise DataError(f"{where}: {y.size} labels for {len(data)} images")
    if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
        raise DataError(f"{where}: labels outside 0..{spec.num_classes - 1}")
    return data.reshape(-1, c, h, w).transpose(0, 2, 3, 1), y.astype(np.uint8)
