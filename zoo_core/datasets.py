"""Datasets: finding, downloading, verifying and splitting image data.

IDX datasets declared in registry.toml (Fashion-MNIST, MNIST) are searched for in
this order: an explicit ``--data-dir``, ``$ZOO_DATA_DIR``, the zoo's cache
(``$ZOO_HOME/datasets/NAME``), the dataset's ``system_dirs`` (Debian's
``/usr/share/datasets/fashion-mnist``, the Keras cache); else they are downloaded
from the official URLs into the cache, verified first. Checksums are of the
decompressed bytes, so a re-compressed copy (Debian's) verifies too.

Every problem is a one-line :class:`DataError` naming the file or folder and the fix: a
truncated, corrupted or wrong file, a missing or unreadable one, a failed download (a
``--data-dir`` that does not exist is a usage error). A download is verified before it is
renamed into the cache, so nothing unverified is ever cached, and a damaged file in the
zoo's own cache is fetched anew.

Images come out float32 ``[N, H, W, C]`` in [0, 1]; labels int32 ``[N]``. The
validation split is carved from the training set with the dataset's fixed seed; the
test split is never touched. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import stat
import struct
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo_core.errors import DataError, UsageError
from zoo_core.paths import ensure_dir, remedy, zoo_home
from zoo_core.catalogue.specs import FILE_ROLES, DatasetSpec

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
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file; put the file itself there "
                        "(or point --data-dir at the folder holding the files)") from None
    except PermissionError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}); make it readable "
                        "(chmod a+r) or point --data-dir at a readable copy") from None
    except FileNotFoundError:
        raise DataError(f"{path}: disappeared while zoo was reading it; run again") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}); check the file and its "
                        "disk, or point --data-dir at another copy") from None


# The usual fix for a bad file; a downloaded file gets its own (see _fetch_verified).
FIX = "delete it and run again to fetch a fresh copy, or point --data-dir at a good copy"


def decompress(raw: bytes, path: Path | str, fix: str = FIX) -> bytes:
    """``raw`` decompressed when it is gzip, else as it is."""
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupted or truncated gzip file ({e}); {fix}") from None


def idx_problem(data: bytes) -> str | None:
    """What is wrong with IDX bytes (unsigned-byte data), or None when they are sound."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        what = " (it looks like a web page)" if data.lstrip()[:1] == b"<" else ""
        return f"not an IDX file (bad magic number){what}"
    if data[2] != _IDX_UBYTE:
        return f"IDX data type 0x{data[2]:02x} is not unsigned bytes (0x08)"
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        return "truncated IDX header"
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        return f"{what}: {len(data)} bytes, the header promises {expected}"
    return None


def parse_idx(data: bytes, path: Path | str = "<bytes>", fix: str = FIX) -> np.ndarray:
    """Parse IDX bytes (unsigned-byte data) into an array; DataError naming ``path``."""
    problem = idx_problem(data)
    if problem is not None:
        raise DataError(f"{path}: {problem}; {fix}")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- search

def search_dirs(spec: DatasetSpec, data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Where to look for a dataset's files, in order, each with why it is there."""
    out: list[tuple[str, Path]] = []
    if data_dir:
        base = _expand(data_dir)
        out += [("--data-dir", base / spec.name), ("--data-dir", base)]
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        base = _expand(env)
        out += [("ZOO_DATA_DIR", base / spec.name), ("ZOO_DATA_DIR", base)]
    out.append(("zoo cache", cache_dir(spec)))
    out += [("system", _expand(d)) for d in spec.system_dirs]
    return out


def _expand(folder: str | os.PathLike) -> Path:
    """``folder`` with ``~`` expanded; as it is when the home folder is unknown (``~nobody``)."""
    try:
        return Path(folder).expanduser()
    except RuntimeError:
        return Path(folder)


def cache_dir(spec: DatasetSpec) -> Path:
    return zoo_home() / "datasets" / spec.name


def _kind(path: Path) -> str | None:
    """"file", "folder" or "other" for what is at ``path``; None when nothing is.

    Any other failure to look (a folder without search permission, an I/O error, a
    name too long) is a DataError naming the path, never a traceback.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        where = path.parent if isinstance(e, PermissionError) else path
        raise DataError(f"{where}: cannot look inside ({e.strerror or e}); make it readable "
                        "(chmod a+rx), or point --data-dir at another copy of the data") from None
    except ValueError as e:  # an embedded NUL byte
        raise DataError(f"{path!s}: not a valid path ({e}); check --data-dir / ZOO_DATA_DIR") from None
    if stat.S_ISREG(mode):
        return "file"
    return "folder" if stat.S_ISDIR(mode) else "other"


def _find_file(folder: Path, name: str) -> Path | None:
    """``name`` (or its .gz / uncompressed twin) in ``folder``: a regular file first, else
    whatever occupies the name, so that reading it explains what is wrong."""
    candidates = [folder / c for c in (name, name[:-3] if name.endswith(".gz") else name + ".gz")]
    kinds = [_kind(p) for p in candidates]
    for p, kind in zip(candidates, kinds):
        if kind == "file":
            return p
    for p, kind in zip(candidates, kinds):
        if kind is not None:
            return p
    return None


def _check_given_folder(folder: Path, how: str) -> None:
    """A folder the user named must exist: a typo is an error, not a silent fall-through."""
    kind = _kind(folder)
    if kind is None:
        raise UsageError(f"{folder}: no such folder (given by {how}); check the path")
    if kind != "folder":
        raise UsageError(f"{folder}: not a folder (given by {how}); give the folder holding "
                         "the dataset's files")


def locate(spec: DatasetSpec, data_dir=None) -> tuple[str, dict[str, Path]] | None:
    """The first folder in the search order holding all four files, or None.

    A folder the user named (``--data-dir``, ``ZOO_DATA_DIR``) that does not exist, or
    exists but lacks some files, is an error, not a fall-through: the user asked for that
    folder. Any failure to look inside a folder is a DataError naming it.
    """
    if data_dir:
        _check_given_folder(_expand(data_dir), "--data-dir or ZOO_DATA_DIR")
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        _check_given_folder(_expand(env), "ZOO_DATA_DIR")
    for why, folder in search_dirs(spec, data_dir):
        if _kind(folder) != "folder":
            continue
        found = {role: _find_file(folder, spec.files[role]["file"]) for role in FILE_ROLES}
        if all(found.values()):
            return why, found  # type: ignore[return-value]
        if why == "--data-dir" and folder == _expand(data_dir) and any(found.values()):
            missing = [spec.files[r]["file"] for r, p in found.items() if p is None]
            raise DataError(
                f"{folder}: {spec.name} files missing: {', '.join(missing)}; "
                "copy them there or drop --data-dir"
            )
    return None


# ----------------------------------------------------------------- verification

def verify_file(spec: DatasetSpec, role: str, path: Path, *, label: str | None = None,
                fix: str = FIX) -> tuple[np.ndarray, str]:
    """Read, checksum and parse one file; DataError naming it when anything is off.

    Args:
        label: how messages name the file (default: its path).
        fix: what messages tell the user to do about a bad file.
    """
    entry = spec.files[role]
    name = label or str(path)
    raw = read_raw(path)
    data = decompress(raw, name, fix)
    digest = sha256(data)
    if entry.get("sha256"):
        if digest != entry["sha256"]:
            problem = idx_problem(data)
            hint = f" [{problem}]" if problem else ""
            raise DataError(
                f"{name}: checksum mismatch for {spec.name} {role} (sha256 of the decompressed "
                f"bytes is {digest[:12]}…, expected {entry['sha256'][:12]}…){hint}; {fix}"
            )
    elif entry.get("md5_gz") and raw[:2] == _GZIP_MAGIC:
        md5 = hashlib.md5(raw).hexdigest()
        if md5 != entry["md5_gz"]:
            raise DataError(
                f"{name}: checksum mismatch for {spec.name} {role} (md5 {md5}, expected "
                f"{entry['md5_gz']}); {fix}"
            )
    arr = parse_idx(data, name, fix)
    h, w, _ = spec.image_shape
    if role.endswith("images"):
        if arr.ndim != 3 or arr.shape[1:] != (h, w):
            raise DataError(f"{name}: images of shape {arr.shape[1:]}, expected ({h}, {w}); "
                            f"is it the {spec.files[role]['file']} of {spec.name}? {fix}")
    else:
        if arr.ndim != 1:
            raise DataError(f"{name}: labels must be one-dimensional, got shape {arr.shape}; "
                            f"is it the {spec.files[role]['file']} of {spec.name}? {fix}")
        if arr.size and int(arr.max()) >= spec.num_classes:
            raise DataError(
                f"{name}: label {int(arr.max())} is out of range for {spec.num_classes} classes; "
                f"is it the {spec.files[role]['file']} of {spec.name}? {fix}"
            )
    return arr, digest


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
    try:
        found = locate(spec, data_dir)
    except (DataError, UsageError) as e:
        return "cannot be searched", [FileStatus("search", None, False, str(e))]
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

# What a failed fetch can raise: the network and the disk (OSError, which includes
# urllib's URLError and socket timeouts), a server closing mid-body (IncompleteRead and
# other HTTPExceptions), a malformed URL in the registry (ValueError), a bad file (DataError).
_FETCH_ERRORS = (OSError, http.client.HTTPException, ValueError, DataError)


def download(spec: DatasetSpec, progress: bool = True) -> dict[str, Path]:
    """Download, verify and cache a dataset's files. Nothing unverified is cached.

    Each file is written to a temporary ``NAME.*.part`` beside its final name, verified,
    then renamed into place; a failure (or Ctrl-C) at any point removes the partial file,
    so a later run never sees it.
    """
    if not spec.urls:
        raise DataError(
            f"dataset {spec.name!r} is not on this machine and has no download URL: "
            "put its files in a folder and pass --data-dir"
        )
    dest = ensure_dir(cache_dir(spec), "the dataset cache", DataError)
    paths = {}
    for role in FILE_ROLES:
        name = spec.files[role]["file"]
        target = dest / name
        if _kind(target) == "file":
            try:
                verify_file(spec, role, target)
                paths[role] = target
                continue
            except DataError:
                _discard(target)  # a bad cached copy is replaced, never used
        errors = []
        for base in spec.urls:
            url = base.rstrip("/") + "/" + name
            try:
                _fetch_verified(spec, role, url, target, progress)
                paths[role] = target
                break
            except _FETCH_ERRORS as e:
                errors.append(f"{url}: {_reason(e)}")
        else:
            raise DataError(
                f"could not download {spec.name} {name}: " + "; ".join(errors)
                + " -- check your connection, or put the files in a folder and pass --data-dir"
            )
    return paths


def _reason(e: BaseException) -> str:
    if isinstance(e, DataError):
        return str(e)
    reason = getattr(e, "reason", None)  # URLError wraps the socket's error
    if isinstance(reason, OSError):
        e = reason
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise DataError(f"{path}: a bad cached copy cannot be removed ({e.strerror or e}); "
                        "delete it by hand, or set ZOO_HOME to a writable folder") from None


def _fetch_verified(spec, role, url, target: Path, progress: bool) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write in the dataset cache {target.parent} ({e.strerror or e}); "
                        f"{remedy(e)}") from None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            _copy_with_progress(resp, out, total, f"downloading {target.name}", progress)
        label = f"the downloaded {target.name}"
        verify_file(spec, role, Path(tmp), label=label, fix="the mirror may be serving a damaged copy")
        entry = spec.files[role]
        with open(tmp, "rb") as f:
            gzipped = f.read(2) == _GZIP_MAGIC
        if not entry.get("sha256") and not gzipped:
            # only md5_gz is on record, and it applies to the .gz: nothing unverified is cached
            raise DataError(f"{label}: is not gzip-compressed, so its md5_gz cannot be checked; "
                            "the mirror may be serving a different file")
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
        raise DataError(f"connection closed after {dst.tell()} of {total} bytes")


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
        try:
            arrays, checksums = _verify_all(spec, paths)
        except DataError:
            if why != "zoo cache" or not download_ok or not spec.urls:
                raise
            # The cache is the zoo's own: a damaged cached copy is replaced, not reported.
            why, paths = "downloaded", download(spec)
            arrays, checksums = _verify_all(spec, paths)
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


def _verify_all(spec: DatasetSpec, paths: dict[str, Path]):
    arrays, checksums = {}, {}
    for role in FILE_ROLES:
        arrays[role], checksums[role] = verify_file(spec, role, paths[role])
    return arrays, checksums


def make_splits(spec, x_tr, y_tr, x_te, y_te, checksums, source, limit=None) -> Data:
    """Carve the validation split (fixed seed) and convert images to float32 [0, 1]."""
    n_val = spec.validation
    if n_val >= len(y_tr):
        raise DataError(
            f"dataset {spec.name!r}: validation split of {n_val} leaves no training data "
            f"({len(y_tr)} training examples); lower its validation in the registry"
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
        if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
            raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}): {what} images are "
                            f"{x.dtype}, expected uint8 or float; the plugin's loader is wrong")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}): {what} labels are "
                            f"{y.dtype}, expected integers; the plugin's loader is wrong")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}): {len(y)} {what} labels "
                            f"for {len(x)} images; the plugin's loader is wrong")
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise DataError(f"dataset {spec.name!r} (plugin {spec.plugin}): {what} labels outside "
                            f"0..{spec.num_classes - 1}; the plugin's loader is wrong")
    return x_tr, y_tr, x_te, y_te
