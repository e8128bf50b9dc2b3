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
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
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
MAX_BYTES = 2 << 30  # the most one download may write, unless its caller says otherwise
DEFAULT_TIMEOUT = 900.0  # seconds for a whole download (all its URLs), unless told otherwise
READ_TIMEOUT = 60.0  # the longest wait for the next bytes


def _socket_timeout(resp, seconds: float) -> None:
    """Make the response's next read wait at most ``seconds`` (an HTTP response's socket;
    nothing for a file:// URL)."""
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


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


def _fetch_checked(url: str, target: Path, progress: DownloadProgress, verify,
                   deadline: float | None = None) -> None:
    """Fetch ``url`` to a .part file beside ``target`` (:func:`fetch_resumable`: bounded in
    size and time), ``verify`` it, rename it into place."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write in the dataset cache {target.parent} ({e.strerror or e}); "
                        f"{remedy(e)}") from None
    os.close(fd)
    try:
        fetch_resumable(url, Path(tmp), progress, f"downloading {target.name}",
                        deadline=deadline)
        verify(Path(tmp), f"the downloaded {target.name}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _CutShort(DataError):
    """The connection closed before the whole body arrived: worth resuming."""


def _copy(src: BinaryIO, dst: BinaryIO, total: int, label: str, progress: DownloadProgress,
          done: int = 0, bound: Bound | None = None) -> None:
    """Copy the response body after the ``done`` bytes ``dst`` holds, reporting progress,
    within ``bound`` (each read waits at most the time left); :class:`_CutShort` (a
    DataError) when it ends short of ``total``."""
    progress.start(label, total or None)
    if done:
        progress.advance(done)
    read = getattr(src, "read1", src.read)  # what has arrived, not a whole chunk's wait
    try:
        while True:
            if bound is not None:
                _socket_timeout(src, bound.seconds_left())
            chunk = read(_CHUNK)
            if not chunk:
                break
            dst.write(chunk)
            progress.advance(len(chunk))
            if bound is not None:
                bound.check_copied(dst.tell())
    finally:
        progress.finish()
    if total and dst.tell() != total:
        raise _CutShort(f"connection closed after {dst.tell()} of {total} bytes")


def fetch_resumable(url: str, part: Path, progress: DownloadProgress | None = None,
                    label: str = "", attempts: int = 4, *, limit: int = MAX_BYTES,
                    size: int | None = None, deadline: float | None = None) -> None:
    """Download ``url`` into ``part``, resuming a cut transfer with an HTTP ``Range`` request
    (or from the start, when the server sends the whole file again), up to ``attempts``
    times. What ``part`` already holds is kept and continued. Redirects are followed (a loop,
    or more than 10, is one line). The one download path of the zoo: data sets and packs.

    Bounded in size and time: never more than ``limit`` bytes (``size`` exactly, when the
    file's size is declared), and never past ``deadline`` (a ``time.monotonic()`` value;
    default: :data:`DEFAULT_TIMEOUT` from now), whatever the server does (one byte every few
    seconds, an endless body). A download stopped for either is removed, ``part`` with it.
    Verifying the file, and removing it when it is wrong, is the caller's.

    Raises:
        DataError: the server refused (an HTTP error: try another URL), the file is larger
            than its bound, the deadline passed, or the transfer was still cut short after
            ``attempts`` tries.
    """
    progress = progress if progress is not None else _Silent()
    deadline = deadline if deadline is not None else time.monotonic() + DEFAULT_TIMEOUT
    bound = Bound(size if size is not None else limit, size is not None, deadline)
    why = ""
    try:
        for _ in range(attempts):
            if _get(url, part, progress, label, bound):
                return
            why = bound.why
    except BaseException:
        part.unlink(missing_ok=True)  # bounded out, refused, or stopped: nothing resumable
        raise
    raise DataError(f"the transfer was cut short {attempts} times ({why}); try again later")


def _get(url: str, part: Path, progress: DownloadProgress, label: str, bound: Bound) -> bool:
    """One request for the rest of ``url``; False when it was cut short (worth resuming)."""
    have = part.stat().st_size if part.exists() else 0
    if have > bound.bytes:  # left by a process that was killed: not resumable
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=bound.seconds_left()) as resp:
            resumed = have and resp.status == 206 and \
                resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")
            have = have if resumed else 0
            total = int(resp.headers.get("Content-Length") or 0)
            bound.check_declared(have + total if total else None)
            with open(part, "ab" if resumed else "wb") as out:
                _copy(resp, out, have + total if total else 0, label or part.name,
                      progress, done=have, bound=bound)
        bound.check_declared(part.stat().st_size, whole=True)
        return True
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing after what we have: the caller verifies it
            return True
        if 300 <= e.code < 400:  # urllib's loop detection, or more than 10 redirects
            raise DataError(f"redirected in a loop or more than 10 times (HTTP {e.code}): "
                            "the URL is wrong, or the server is misconfigured") from None
        raise DataError(f"HTTP {e.code} {str(e.reason).splitlines()[0]}") from None
    except (_CutShort, http.client.HTTPException, ConnectionError) as e:
        bound.why = _reason(e)
    except TimeoutError as e:
        bound.check_time()
        bound.why = _reason(e)
    except OSError as e:  # unreachable, refused: another attempt will not help
        bound.check_time()
        raise DataError(_reason(e)) from None
    return False


@dataclass
class Bound:
    """What a download may take: ``bytes`` at most (exactly, when ``exact``: a declared
    size), until ``deadline`` (``time.monotonic()``)."""

    bytes: int
    exact: bool
    deadline: float
    why: str = ""  # why the last attempt was cut short

    def seconds_left(self) -> float:
        """The time left, for a socket's timeout (at most READ_TIMEOUT); DataError when none."""
        self.check_time()
        return min(READ_TIMEOUT, max(self.deadline - time.monotonic(), 0.05))

    def check_time(self) -> None:
        if time.monotonic() >= self.deadline:
            raise DataError("the download did not finish in time (the deadline set by "
                            "--timeout passed): the server is too slow or never ends; try "
                            "again later, or give more time with --timeout")

    def limit(self) -> str:
        return (f"the declared size ({self.bytes:,} bytes)" if self.exact else
                f"the most a download may take ({self.bytes:,} bytes)")

    def check_declared(self, total: int | None, whole: bool = False) -> None:
        """Refuse a file the server declares (``total``) larger than the bound, or one that
        arrived ``whole`` with another size than the declared one."""
        if total is not None and total > self.bytes:
            raise DataError(f"the server declares {total:,} bytes, more than {self.limit()}: "
                            "refused")
        if whole and self.exact and total != self.bytes:
            raise DataError(f"the file is {total:,} bytes, not {self.limit()}: refused")

    def check_copied(self, done: int) -> None:
        """Stop a body that grows past the bound, or a download past the deadline."""
        if done > self.bytes:
            raise DataError(f"the server sent more than {self.limit()}: stopped, and the "
                            "partial file removed")
        self.check_time()
