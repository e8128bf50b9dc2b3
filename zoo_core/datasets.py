"""Datasets: finding, downloading, verifying and splitting image data.

IDX datasets declared in registry.toml (Fashion-MNIST, MNIST) are searched for in
this order: an explicit ``--data-dir``, ``$ZOO_DATA_DIR``, the zoo's cache
(``$ZOO_HOME/datasets/NAME``), the dataset's ``system_dirs`` (Debian's
``/usr/share/datasets/fashion-mnist``, the Keras cache); else they are downloaded
from the official URLs into the cache, verified first. Checksums are of the
decompressed bytes, so a re-compressed copy (Debian's) verifies too.

Images come out float32 ``[N, H, W, C]`` in [0, 1]; labels int32 ``[N]``. The
validation split is carved from the training set with the dataset's fixed seed; the
test split is never touched. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo_core.errors import DataError, UsageError
from zoo_core.paths import zoo_home
from zoo_core.spec import DatasetSpec

FILE_ROLES = ("train_images", "train_labels", "test_images", "test_labels")
_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Data:
    """A loaded dataset split three ways."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    checksums: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


# ----------------------------------------------------------------- IDX files

def read_raw(path: Path) -> bytes:
    """A file's bytes as stored; DataError naming it when unreadable."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}); check its permissions") from None


def decompress(raw: bytes, path: Path) -> bytes:
    """``raw`` decompressed when it is gzip, else as it is."""
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path}: corrupted or truncated gzip file ({e}); delete it and run again "
            "to fetch a fresh copy"
        ) from None


def parse_idx(data: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (unsigned-byte data) into an array; DataError naming ``path``."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number); is it the right file?")
    if data[2] != _IDX_UBYTE:
        raise DataError(f"{path}: IDX data type 0x{data[2]:02x} is not unsigned bytes (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: truncated IDX header; delete it and run again to fetch it anew")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {what}: {len(data)} bytes, the header promises {expected}; "
            "delete it and run again to fetch a fresh copy"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- search

def search_dirs(spec: DatasetSpec, data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Where to look for a dataset's files, in order, each with why it is there."""
    out: list[tuple[str, Path]] = []
    if data_dir:
        base = Path(data_dir).expanduser()
        out += [("--data-dir", base / spec.name), ("--data-dir", base)]
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        base = Path(env).expanduser()
        out += [("ZOO_DATA_DIR", base / spec.name), ("ZOO_DATA_DIR", base)]
    out.append(("zoo cache", cache_dir(spec)))
    out += [("system", Path(d).expanduser()) for d in spec.system_dirs]
    return out


def cache_dir(spec: DatasetSpec) -> Path:
    return zoo_home() / "datasets" / spec.name


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (name, name[:-3] if name.endswith(".gz") else name + ".gz"):
        p = folder / candidate
        if p.is_file():
            return p
    return None


def locate(spec: DatasetSpec, data_dir=None) -> tuple[str, dict[str, Path]] | None:
    """The first folder in the search order holding all four files, or None.

    An explicit ``--data-dir`` that exists but lacks files is an error, not a
    fall-through: the user asked for that folder.
    """
    for why, folder in search_dirs(spec, data_dir):
        try:
            if not folder.is_dir():
                continue
        except OSError:
            continue
        found = {role: _find_file(folder, spec.files[role]["file"]) for role in FILE_ROLES}
        if all(found.values()):
            return why, found  # type: ignore[return-value]
        if why == "--data-dir" and folder == Path(data_dir).expanduser() and any(found.values()):
            missing = [spec.files[r]["file"] for r, p in found.items() if p is None]
            raise DataError(
                f"{folder}: {spec.name} files missing: {', '.join(missing)}; "
                "copy them there or drop --data-dir"
            )
    return None


# ----------------------------------------------------------------- verification

def verify_file(spec: DatasetSpec, role: str, path: Path) -> tuple[np.ndarray, str]:
    """Read, checksum and parse one file; DataError naming it when anything is off."""
    entry = spec.files[role]
    raw = read_raw(path)
    data = decompress(raw, path)
    digest = sha256(data)
    if entry.get("sha256"):
        if digest != entry["sha256"]:
            arr_hint = _try_parse_hint(data, path)
            raise DataError(
                f"{path}: checksum mismatch for {spec.name} {role} (sha256 of the decompressed "
                f"bytes is {digest[:12]}…, expected {entry['sha256'][:12]}…){arr_hint}; "
                "delete it and run again, or point --data-dir at a good copy"
            )
    elif entry.get("md5_gz") and raw[:2] == _GZIP_MAGIC:
        md5 = hashlib.md5(raw).hexdigest()
        if md5 != entry["md5_gz"]:
            raise DataError(
                f"{path}: checksum mismatch for {spec.name} {role} (md5 {md5}, expected "
                f"{entry['md5_gz']}); delete it and run again, or point --data-dir at a good copy"
            )
    arr = parse_idx(data, path)
    h, w, _ = spec.image_shape
    if role.endswith("images"):
        if arr.ndim != 3 or arr.shape[1:] != (h, w):
            raise DataError(f"{path}: images of shape {arr.shape[1:]}, expected ({h}, {w})")
    else:
        if arr.ndim != 1:
            raise DataError(f"{path}: labels must be one-dimensional, got shape {arr.shape}")
        if arr.size and int(arr.max()) >= spec.num_classes:
            raise DataError(
                f"{path}: label {int(arr.max())} is out of range for {spec.num_classes} classes"
            )
    return arr, digest


def _try_parse_hint(data: bytes, path: Path) -> str:
    try:
        parse_idx(data, path)
    except DataError as e:
        return f" [{str(e).split(': ', 1)[1].split(';')[0]}]"
    return ""


@dataclass
class FileStatus:
    role: str
    path: Path | None
    ok: bool
    message: str


def inspect(spec: DatasetSpec, data_dir=None) -> tuple[str, list[FileStatus]]:
    """Where a dataset's files are and whether each verifies (for ``zoo datasets``)."""
    if spec.load is not None:
        return f"plugin {spec.plugin}", []
    found = locate(spec, data_dir)
    if found is None:
        return "not found (downloads on first use)", []
    why, paths = found
    statuses = []
    for role in FILE_ROLES:
        try:
            verify_file(spec, role, paths[role])
            statuses.append(FileStatus(role, paths[role], True, "ok"))
        except DataError as e:
            statuses.append(FileStatus(role, paths[role], False, str(e)))
    return f"{paths['train_images'].parent} ({why})", statuses


# ----------------------------------------------------------------- download

def download(spec: DatasetSpec, progress: bool = True) -> dict[str, Path]:
    """Download, verify and cache a dataset's files. Nothing unverified is cached."""
    if not spec.urls:
        raise DataError(
            f"dataset {spec.name!r} is not on this machine and has no download URL: "
            "put its files in a folder and pass --data-dir"
        )
    dest = cache_dir(spec)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the dataset cache {dest}: {e.strerror}; set ZOO_HOME") from None
    paths = {}
    for role in FILE_ROLES:
        name = spec.files[role]["file"]
        target = dest / name
        if target.is_file():
            try:
                verify_file(spec, role, target)
                paths[role] = target
                continue
            except DataError:
                target.unlink()  # a bad cached copy is replaced, never used
        errors = []
        for base in spec.urls:
            url = base.rstrip("/") + "/" + name
            try:
                _fetch_verified(spec, role, url, target, progress)
                paths[role] = target
                break
            except (OSError, DataError) as e:
                errors.append(f"{url}: {e}")
        else:
            raise DataError(
                f"could not download {spec.name} {name}: " + "; ".join(errors)
                + " -- check your connection, or put the files in a folder and pass --data-dir"
            )
    return paths


def _fetch_verified(spec, role, url, target: Path, progress: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            _copy_with_progress(resp, out, total, f"downloading {target.name}", progress)
        verify_file(spec, role, Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _copy_with_progress(src, dst, total: int, label: str, progress: bool) -> None:
    import click

    show = progress and sys.stderr.isatty()
    with click.progressbar(length=total or None, label=label, file=sys.stderr,
                           hidden=not show) as bar:
        while chunk := src.read(1 << 16):
            dst.write(chunk)
            bar.update(len(chunk))
    if total and dst.tell() != total:
        raise DataError(f"{label}: connection closed after {dst.tell()} of {total} bytes")


# ----------------------------------------------------------------- loading

def load(spec: DatasetSpec, data_dir=None, limit: int | None = None, download_ok: bool = True) -> Data:
    """Load, verify and split a dataset.

    Args:
        spec: the dataset.
        data_dir: a folder the user named (``--data-dir``); searched first.
        limit: keep only the first ``limit`` training examples (after the
            validation split is carved), for quick tries.
        download_ok: download the files when they are nowhere local.

    Returns:
        a :class:`Data` with float32 images in [0, 1].
    """
    if spec.load is not None:
        x_tr, y_tr, x_te, y_te = _from_plugin(spec, data_dir)
        checksums = {"train": _array_digest(x_tr, y_tr), "test": _array_digest(x_te, y_te)}
        source = f"plugin {spec.plugin}"
    else:
        found = locate(spec, data_dir)
        if found is None:
            if not download_ok:
                raise DataError(f"dataset {spec.name!r} not found; looked in: "
                                + ", ".join(str(p) for _, p in search_dirs(spec, data_dir)))
            why, paths = "downloaded", download(spec)
        else:
            why, paths = found
        arrays, checksums = {}, {}
        for role in FILE_ROLES:
            arrays[role], checksums[role] = verify_file(spec, role, paths[role])
        for split in ("train", "test"):
            n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
            if n_img != n_lab:
                raise DataError(
                    f"{paths[split + '_labels']}: {n_lab} labels for {n_img} images in "
                    f"{paths[split + '_images'].name}; the two files do not belong together"
                )
        x_tr, y_tr = arrays["train_images"], arrays["train_labels"]
        x_te, y_te = arrays["test_images"], arrays["test_labels"]
        source = f"{paths['train_images'].parent} ({why})"
    return make_splits(spec, x_tr, y_tr, x_te, y_te, checksums, source, limit)


def make_splits(spec, x_tr, y_tr, x_te, y_te, checksums, source, limit=None) -> Data:
    """Carve the validation split (fixed seed) and convert images to float32 [0, 1]."""
    n_val = spec.validation
    if n_val >= len(y_tr):
        raise DataError(
            f"dataset {spec.name!r}: validation split of {n_val} leaves no training data "
            f"({len(y_tr)} training examples)"
        )
    order = np.random.default_rng(spec.split_seed).permutation(len(y_tr))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if limit is not None:
        if limit < 1:
            raise UsageError(f"--limit must be at least 1, got {limit}")
        if limit > len(train_idx):
            raise UsageError(
                f"--limit {limit} is larger than the training split of {spec.name} "
                f"({len(train_idx)} examples after the validation split)"
            )
        train_idx = train_idx[:limit]
    return Data(
        name=spec.name, classes=spec.classes,
        x_train=to_float(x_tr[train_idx], spec), y_train=y_tr[train_idx].astype(np.int32),
        x_val=to_float(x_tr[val_idx], spec), y_val=y_tr[val_idx].astype(np.int32),
        x_test=to_float(x_te, spec), y_test=y_te.astype(np.int32),
        checksums=checksums, source=source,
    )


def to_float(x: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Images as float32 [N, H, W, C]; uint8 input is scaled to [0, 1]."""
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype == np.uint8:
        return np.multiply(x, np.float32(1.0 / 255.0), dtype=np.float32)
    return x.astype(np.float32, copy=False)


def _array_digest(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _from_plugin(spec: DatasetSpec, data_dir):
    try:
        out = spec.load(data_dir)
        x_tr, y_tr, x_te, y_te = (np.asarray(a) for a in out)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - a plugin's loader failed
        raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}) failed to load: "
                        f"{type(e).__name__}: {e}") from None
    h, w, c = spec.image_shape
    for what, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        shape = x.shape if x.ndim == 4 else x.shape + (1,)
        if x.ndim not in (3, 4) or shape[1:] != (h, w, c):
            raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}): {what} images have "
                            f"shape {x.shape}, expected [N, {h}, {w}, {c}]")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"dataset {spec.name!r}: {len(y)} {what} labels for {len(x)} images")
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise DataError(f"dataset {spec.name!r}: {what} labels outside 0..{spec.num_classes - 1}")
    return x_tr, y_tr, x_te, y_te
