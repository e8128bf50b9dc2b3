"""IDX files: reading, decompressing, parsing and verifying one file of a dataset.

Checksums are of the decompressed bytes, so a re-compressed copy (Debian's) verifies too;
a gzip-only ``md5_gz`` (MNIST's) is checked against the compressed bytes. Every problem is
a one-line :class:`~zoo_core.errors.DataError` naming the file and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from zoo_core.catalogue.specs import DatasetSpec
from zoo_core.errors import DataError, setting

GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE = 0x08

# The usual fix for a bad file; a downloaded file gets its own (see downloads.py).
FIX = f"delete it and run again to fetch a fresh copy, or point {setting('data_dir')} at a good copy"


def read_raw(path: Path) -> bytes:
    """A file's bytes as stored; DataError naming it when unreadable."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(_unreadable(path, e)) from None


def _unreadable(path: Path, e: OSError) -> str:
    """Why a file cannot be read, and what to do about it."""
    if isinstance(e, IsADirectoryError):
        return (f"{path}: is a folder, not a file; put the file itself there (or point "
                f"{setting('data_dir')} at the folder holding the files)")
    if isinstance(e, PermissionError):
        return (f"{path}: cannot be read ({e.strerror or e}); make it readable "
                f"(chmod a+r) or point {setting('data_dir')} at a readable copy")
    if isinstance(e, FileNotFoundError):
        return f"{path}: disappeared while zoo was reading it; run again"
    return (f"{path}: cannot be read ({e.strerror or e}); check the file and its "
            f"disk, or point {setting('data_dir')} at another copy")


def decompress(raw: bytes, path: Path | str, fix: str = FIX) -> bytes:
    """``raw`` decompressed when it is gzip, else as it is."""
    if raw[:2] != GZIP_MAGIC:
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


def verify_file(spec: DatasetSpec, role: str, path: Path, *, label: str | None = None,
                fix: str = FIX) -> tuple[np.ndarray, str]:
    """Read, checksum and parse one file; DataError naming it when anything is off.

    Args:
        label: how messages name the file (default: its path).
        fix: what messages tell the user to do about a bad file.

    Returns:
        the parsed array and the sha256 of the decompressed bytes.
    """
    name = label or str(path)
    raw = read_raw(path)
    data = decompress(raw, name, fix)
    digest = sha256(data)
    _check_checksum(spec, role, name, raw, data, digest, fix)
    arr = parse_idx(data, name, fix)
    _check_contents(spec, role, name, arr, fix)
    return arr, digest


def _check_checksum(spec: DatasetSpec, role: str, name: str, raw: bytes, data: bytes,
                    digest: str, fix: str) -> None:
    """The registry's sha256 (of the decompressed bytes), else its md5_gz (of a .gz)."""
    entry = spec.files[role]
    if entry.get("sha256"):
        if digest != entry["sha256"]:
            problem = idx_problem(data)
            hint = f" [{problem}]" if problem else ""
            raise DataError(
                f"{name}: checksum mismatch for {spec.name} {role} (sha256 of the decompressed "
                f"bytes is {digest[:12]}…, expected {entry['sha256'][:12]}…){hint}; {fix}"
            )
    elif entry.get("md5_gz") and raw[:2] == GZIP_MAGIC:
        md5 = hashlib.md5(raw).hexdigest()
        if md5 != entry["md5_gz"]:
            raise DataError(
                f"{name}: checksum mismatch for {spec.name} {role} (md5 {md5}, expected "
                f"{entry['md5_gz']}); {fix}"
            )


def _check_contents(spec: DatasetSpec, role: str, name: str, arr: np.ndarray, fix: str) -> None:
    """Images of the dataset's height and width; one-dimensional labels within its classes."""
    h, w, c = spec.image_shape
    which = f"is it the {spec.files[role]['file']} of {spec.name}? {fix}"
    if role.endswith("images"):
        if arr.ndim != 3 or arr.shape[1:] != (h, w):
            raise DataError(f"{name}: images of shape {arr.shape[1:]}, expected ({h}, {w}); {which}")
        if c != 1:  # an IDX file's images are [N, height, width]: one channel
            raise DataError(
                f"{name}: the images are [{h}, {w}, 1] (one channel), but the registry's "
                f"[datasets.{spec.name}] declares image_shape = [{h}, {w}, {c}]: set it to "
                f"[{h}, {w}, 1] (check {setting('registry')} / ZOO_REGISTRY)")
        return
    if arr.ndim != 1:
        raise DataError(f"{name}: labels must be one-dimensional, got shape {arr.shape}; {which}")
    if arr.size and int(arr.max()) >= spec.num_classes:
        raise DataError(f"{name}: label {int(arr.max())} is out of range for "
                        f"{spec.num_classes} classes; {which}")
