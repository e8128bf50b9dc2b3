"""The whole flow for one dataset: find or download its files, verify them, split them
(:func:`load`); or only say where they are and whether they verify (:func:`inspect`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo_core.catalogue.specs import FILE_ROLES, DatasetSpec
from zoo_core.data import archives
from zoo_core.data.downloads import DownloadProgress, download
from zoo_core.data.idx import verify_file
from zoo_core.data.search import CACHE, locate, search_dirs
from zoo_core.data.splits import Data, array_digest, from_plugin, make_splits
from zoo_core.errors import DataError

_DOWNLOADED = "downloaded"


def load(spec: DatasetSpec, data_dir=None, limit: int | None = None, download_ok: bool = True,
         progress: DownloadProgress | None = None) -> Data:
    """Load, verify and split a dataset.

    Args:
        spec: the dataset.
        data_dir: a folder the user named; searched first.
        limit: keep only the first ``limit`` training examples (after the
            validation split is carved), for quick tries.
        download_ok: download the files when they are nowhere local.
        progress: told how a download goes (a progress bar); None: silent.

    Returns:
        a :class:`Data` with float32 images in [0, 1].
    """
    if spec.load is not None:
        x_tr, y_tr, x_te, y_te = from_plugin(spec, data_dir)
        checksums = {"train": array_digest(x_tr, y_tr), "test": array_digest(x_te, y_te)}
        source = f"plugin {spec.plugin}"
    elif spec.archive:
        x_tr, y_tr, x_te, y_te, checksums, source = archives.load(spec, data_dir, download_ok,
                                                                  progress)
    else:
        arrays, checksums, source = _load_files(spec, data_dir, download_ok, progress)
        x_tr, y_tr = arrays["train_images"], arrays["train_labels"]
        x_te, y_te = arrays["test_images"], arrays["test_labels"]
    return make_splits(spec, x_tr, y_tr, x_te, y_te, checksums, source, limit)


def _load_files(spec: DatasetSpec, data_dir, download_ok: bool,
                progress: DownloadProgress | None) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """The four IDX files' arrays and checksums, and where they came from."""
    found = locate(spec, data_dir)
    if found is None:
        if not download_ok:
            raise DataError(f"dataset {spec.name!r} not found; looked in: "
                            + ", ".join(str(p) for _, p in search_dirs(spec, data_dir)))
        why, paths = _DOWNLOADED, download(spec, progress)
    else:
        why, paths = found
    try:
        arrays, checksums = _verify_all(spec, paths)
    except DataError:
        if why != CACHE or not download_ok or not spec.urls:
            raise
        # The cache is the zoo's own: a damaged cached copy is replaced, not reported.
        why, paths = _DOWNLOADED, download(spec, progress)
        arrays, checksums = _verify_all(spec, paths)
    _check_pairs(arrays, paths)
    return arrays, checksums, f"{paths['train_images'].parent} ({why})"


def _verify_all(spec: DatasetSpec, paths: dict[str, Path]):
    arrays, checksums = {}, {}
    for role in FILE_ROLES:
        arrays[role], checksums[role] = verify_file(spec, role, paths[role])
    return arrays, checksums


def _check_pairs(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> None:
    """As many labels as images in each split: the files belong together."""
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(
                f"{paths[split + '_labels']}: {n_lab} labels for {n_img} images in "
                f"{paths[split + '_images'].name}; the two files do not belong together"
            )


@dataclass
class FileStatus:
    """One file of a dataset as :func:`inspect` found it.

    ``message`` is ``"ok"`` or the problem, with settings named by marker (see
    :func:`zoo_core.errors.render`), so that a front end names them its own way.
    """

    role: str
    path: Path | None
    ok: bool
    message: str


def inspect(spec: DatasetSpec, data_dir=None) -> tuple[str, list[FileStatus]]:
    """Where a dataset's files are and whether each verifies (for ``zoo datasets``).

    The location may name a setting by marker (a folder found through ``data_dir``).

    Raises:
        UsageError: a folder the user named (``data_dir``, ``ZOO_DATA_DIR``) does not exist
            or is not a folder: the question cannot be answered for it.
    """
    if spec.load is not None:
        return f"plugin {spec.plugin}", []
    if spec.archive:
        return _inspect_archive(spec, data_dir)
    try:
        found = locate(spec, data_dir)
    except DataError as e:
        return "cannot be searched", [FileStatus("search", None, False, e.template)]
    if found is None:
        return "not found (downloads on first use)", []
    why, paths = found
    statuses = []
    for role in FILE_ROLES:
        try:
            verify_file(spec, role, paths[role])
            statuses.append(FileStatus(role, paths[role], True, "ok"))
        except DataError as e:
            statuses.append(FileStatus(role, paths[role], False, e.template))
    return f"{paths['train_images'].parent} ({why})", statuses


def _inspect_archive(spec: DatasetSpec, data_dir) -> tuple[str, list[FileStatus]]:
    """inspect() for a dataset that comes as one archive (see :mod:`zoo_core.data.archives`)."""
    try:
        found = archives.locate(spec, data_dir)
    except DataError as e:
        return "cannot be searched", [FileStatus("search", None, False, e.template)]
    if found is None:
        return "not found (downloads on first use)", []
    why, path = found
    if path.is_dir():  # an extracted copy: no file on record to check; shapes checked on load
        return f"{path} ({why}; an extracted copy, checked on load)", []
    try:
        archives.verify_archive(spec, path)
        return f"{path.parent} ({why})", [FileStatus("archive", path, True, "ok")]
    except DataError as e:
        return f"{path.parent} ({why})", [FileStatus("archive", path, False, e.template)]
