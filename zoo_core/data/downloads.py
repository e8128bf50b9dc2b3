"""Downloading a dataset into the zoo's cache, verified before anything is cached.

Each file is written to a temporary ``NAME.*.part`` beside its final name, verified, then
renamed into place; a failure (or Ctrl-C) at any point removes the partial file, so a
later run never sees it. A damaged file already in the cache is fetched anew. How far a
download has got is reported to a :class:`DownloadProgress` the caller passes (the CLI's
progress bar); without one, downloads are silent.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Protocol

from zoo_core.catalogue.specs import FILE_ROLES, DatasetSpec
from zoo_core.data.idx import GZIP_MAGIC, verify_file
from zoo_core.data.search import GIVEN, cache_dir, path_kind
from zoo_core.errors import DataError
from zoo_core.paths import ensure_dir, remedy

# What a failed fetch can raise: the network and the disk (OSError, which includes
# urllib's URLError and socket timeouts), a server closing mid-body (IncompleteRead and
# other HTTPExceptions), a malformed URL in the registry (ValueError), a bad file (DataError).
_FETCH_ERRORS = (OSError, http.client.HTTPException, ValueError, DataError)

_CHUNK = 1 << 16


class DownloadProgress(Protocol):
    """What a download reports as it goes; one start ... finish per file."""

    def start(self, label: str, total: int | None) -> None:
        """A file begins: ``label`` names it, ``total`` is its size in bytes (None: unknown)."""

    def advance(self, n: int) -> None:
        """``n`` more bytes arrived."""

    def finish(self) -> None:
        """The file is done (complete or failed)."""


class _Silent:
    """The progress of a caller that passed none."""

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


def download(spec: DatasetSpec, progress: DownloadProgress | None = None) -> dict[str, Path]:
    """Download, verify and cache a dataset's files; the path of each file role.

    A file already in the cache that verifies is kept; one that does not is replaced.
    Each file is tried from every URL in turn; DataError naming every failure when none works.
    """
    if not spec.urls:
        raise DataError(
            f"dataset {spec.name!r} is not on this machine and has no download URL: "
            f"put its files in a folder and pass {GIVEN}"
        )
    dest = ensure_dir(cache_dir(spec), "the dataset cache", DataError)
    progress = progress if progress is not None else _Silent()
    paths = {}
    for role in FILE_ROLES:
        target = dest / spec.files[role]["file"]
        if not _cached_copy_verifies(spec, role, target):
            _fetch_from_any_url(spec, role, target, progress)
        paths[role] = target
    return paths


def _cached_copy_verifies(spec: DatasetSpec, role: str, target: Path) -> bool:
    """Whether the cache already holds a good copy; a bad one is removed, never used."""
    if path_kind(target) != "file":
        return False
    try:
        verify_file(spec, role, target)
        return True
    except DataError:
        _discard(target)
        return False


def _fetch_from_any_url(spec: DatasetSpec, role: str, target: Path,
                        progress: DownloadProgress) -> None:
    errors = []
    for base in spec.urls:
        url = base.rstrip("/") + "/" + target.name
        try:
            _fetch_verified(spec, role, url, target, progress)
            return
        except _FETCH_ERRORS as e:
            errors.append(f"{url}: {_reason(e)}")
    raise DataError(
        f"could not download {spec.name} {target.name}: " + "; ".join(errors)
        + f" -- check your connection, or put the files in a folder and pass {GIVEN}"
    )


def _reason(e: BaseException) -> str:
    """One line saying why a fetch failed (a DataError's keeps its setting markers)."""
    if isinstance(e, DataError):
        return e.template
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


def _fetch_verified(spec: DatasetSpec, role: str, url: str, target: Path,
                    progress: DownloadProgress) -> None:
    """Fetch one IDX file of ``spec`` to ``target``, verified before it is renamed into place."""

    def verify(path: Path, label: str) -> None:
        verify_file(spec, role, path, label=label, fix="the mirror may be serving a damaged copy")
        with open(path, "rb") as f:
            gzipped = f.read(2) == GZIP_MAGIC
        if not spec.files[role].get("sha256") and not gzipped:
            # only md5_gz is on record, and it applies to the .gz: nothing unverified is cached
            raise DataError(f"{label}: is not gzip-compressed, so its md5_gz cannot be checked; "
                            "the mirror may be serving a different file")

    _fetch_checked(url, target, progress, verify)


def download_archive(spec: DatasetSpec, verify, progress: DownloadProgress | None = None) -> Path:
    """Download a dataset's one archive (``spec.archive``) into the cache, verified by
    ``verify(path, label)`` (which raises DataError) before it is renamed into place; a cached
    copy that verifies is kept. Each URL is tried in turn; DataError naming every failure."""
    if not spec.urls:
        raise DataError(
            f"dataset {spec.name!r} is not on this machine and has no download URL: "
            f"put its archive in a folder and pass {GIVEN}"
        )
    target = ensure_dir(cache_dir(spec), "the dataset cache", DataError) / spec.archive["file"]
    progress = progress if progress is not None else _Silent()
    if path_kind(target) == "file":
        try:
            verify(target, str(target))
            return target
        except DataError:
            _discard(target)
    errors = []
    for base in spec.urls:
        url = base.rstrip("/") + "/" + target.name
        try:
            _fetch_checked(url, target, progress, verify)
            return target
        except _FETCH_ERRORS as e:
            errors.append(f"{url}: {_reason(e)}")
    raise DataError(
        f"could not download {spec.name} {target.name}: " + "; ".join(errors)
        + f" -- check your connection, or put the archive in a folder and pass {GIVEN}"
    )


def _fetch_checked(url: str, target: Path, progress: DownloadProgress, verify) -> None:
    """Fetch ``url`` to a .part file beside ``target``, ``verify`` it, rename it into place."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write in the dataset cache {target.parent} ({e.strerror or e}); "
                        f"{remedy(e)}") from None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            _copy(resp, out, total, f"downloading {target.name}", progress)
        verify(Path(tmp), f"the downloaded {target.name}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _CutShort(DataError):
    """The connection closed before the whole body arrived: worth resuming."""


def _copy(src: BinaryIO, dst: BinaryIO, total: int, label: str, progress: DownloadProgress,
          done: int = 0) -> None:
    """Copy the response body after the ``done`` bytes ``dst`` holds, reporting progress;
    :class:`_CutShort` (a DataError) when it ends short of ``total``."""
    progress.start(label, total or None)
    if done:
        progress.advance(done)
    try:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            progress.advance(len(chunk))
    finally:
        progress.finish()
    if total and dst.tell() != total:
        raise _CutShort(f"connection closed after {dst.tell()} of {total} bytes")


def fetch_resumable(url: str, part: Path, progress: DownloadProgress | None = None,
                    label: str = "", attempts: int = 4, timeout: float = 60) -> None:
    """Download ``url`` into ``part``, resuming a cut transfer with an HTTP ``Range`` request
    (or from the start, when the server sends the whole file again), up to ``attempts``
    times. What ``part`` already holds is kept and continued. Redirects are followed.
    Verifying the file, and removing it when it is wrong, is the caller's.

    Raises:
        DataError: the server refused (an HTTP error: try another URL), or the transfer
            was still cut short after ``attempts`` tries.
    """
    progress = progress if progress is not None else _Silent()
    why = ""
    for _ in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                resumed = have and resp.status == 206 and \
                    resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")
                have = have if resumed else 0
                total = int(resp.headers.get("Content-Length") or 0)
                with open(part, "ab" if resumed else "wb") as out:
                    _copy(resp, out, have + total if total else 0, label or part.name,
                          progress, done=have)
            return
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing after what we have: the caller verifies it
                return
            raise DataError(f"HTTP {e.code} {e.reason}") from None
        except (_CutShort, http.client.HTTPException, ConnectionError, TimeoutError) as e:
            why = _reason(e)
        except OSError as e:  # unreachable, refused: another attempt will not help
            raise DataError(_reason(e)) from None
    raise DataError(f"the transfer was cut short {attempts} times ({why}); try again later")

