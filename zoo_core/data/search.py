"""Where a dataset's files are: the search order and finding the four files in it.

The order: the folder the caller names (``data_dir``, itself or its ``NAME/`` subfolder),
``$ZOO_DATA_DIR`` (likewise), the zoo's cache (``$ZOO_HOME/datasets/NAME``), then the
dataset's ``system_dirs``. A folder the user named that does not exist is a UsageError;
any failure to look inside a folder is a DataError naming it, never a traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from zoo_core.catalogue.specs import FILE_ROLES, DatasetSpec
from zoo_core.errors import DataError, UsageError, setting
from zoo_core.paths import zoo_home

# Why a folder is searched, as locate() and search_dirs() say it (shown in Data.source).
GIVEN = setting("data_dir")  # the folder the caller named
FROM_ENV = "ZOO_DATA_DIR"
CACHE = "zoo cache"
SYSTEM = "system"


def search_dirs(spec: DatasetSpec, data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Where to look for a dataset's files, in order, each with why it is there."""
    out: list[tuple[str, Path]] = []
    if data_dir:
        base = expand(data_dir)
        out += [(GIVEN, base / spec.name), (GIVEN, base)]
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        base = expand(env)
        out += [(FROM_ENV, base / spec.name), (FROM_ENV, base)]
    out.append((CACHE, cache_dir(spec)))
    out += [(SYSTEM, expand(d)) for d in spec.system_dirs]
    return out


def expand(folder: str | os.PathLike) -> Path:
    """``folder`` with ``~`` expanded; as it is when the home folder is unknown (``~nobody``)."""
    try:
        return Path(folder).expanduser()
    except RuntimeError:
        return Path(folder)


def cache_dir(spec: DatasetSpec) -> Path:
    """The zoo's own copy of a dataset: ``$ZOO_HOME/datasets/NAME``."""
    return zoo_home() / "datasets" / spec.name


def path_kind(path: Path) -> str | None:
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
                        f"(chmod a+rx), or point {GIVEN} at another copy of the data") from None
    except ValueError as e:  # an embedded NUL byte
        raise DataError(f"{path!s}: not a valid path ({e}); check {GIVEN} / ZOO_DATA_DIR") from None
    if stat.S_ISREG(mode):
        return "file"
    return "folder" if stat.S_ISDIR(mode) else "other"


def find_file(folder: Path, name: str) -> Path | None:
    """``name`` (or its .gz / uncompressed twin) in ``folder``: a regular file first, else
    whatever occupies the name, so that reading it explains what is wrong."""
    candidates = [folder / c for c in (name, name[:-3] if name.endswith(".gz") else name + ".gz")]
    kinds = [path_kind(p) for p in candidates]
    for p, kind in zip(candidates, kinds):
        if kind == "file":
            return p
    for p, kind in zip(candidates, kinds):
        if kind is not None:
            return p
    return None


def _check_given_folder(folder: Path, how: str) -> None:
    """A folder the user named must exist: a typo is an error, not a silent fall-through."""
    kind = path_kind(folder)
    if kind is None:
        raise UsageError(f"{folder}: no such folder (given by {how}); check the path")
    if kind != "folder":
        raise UsageError(f"{folder}: not a folder (given by {how}); give the folder holding "
                         "the dataset's files")


def locate(spec: DatasetSpec, data_dir=None) -> tuple[str, dict[str, Path]] | None:
    """The first folder in the search order holding all four files, or None.

    A folder the user named (``data_dir``, ``ZOO_DATA_DIR``) that does not exist, or
    exists but lacks some files, is an error, not a fall-through: the user asked for that
    folder. Any failure to look inside a folder is a DataError naming it.

    Returns:
        why the folder was searched (:data:`GIVEN`, ``"ZOO_DATA_DIR"``, ``"zoo cache"``,
        ``"system"``) and the path of each file role.
    """
    if data_dir:
        _check_given_folder(expand(data_dir), f"{GIVEN} or ZOO_DATA_DIR")
    env = os.environ.get("ZOO_DATA_DIR")
    if env:
        _check_given_folder(expand(env), "ZOO_DATA_DIR")
    for why, folder in search_dirs(spec, data_dir):
        if path_kind(folder) != "folder":
            continue
        found = {role: find_file(folder, spec.files[role]["file"]) for role in FILE_ROLES}
        if all(found.values()):
            return why, found  # type: ignore[return-value]
        if why == GIVEN and folder == expand(data_dir) and any(found.values()):
            missing = [spec.files[r]["file"] for r, p in found.items() if p is None]
            raise DataError(
                f"{folder}: {spec.name} files missing: {', '.join(missing)}; "
                f"copy them there or drop {GIVEN}"
            )
    return None
