"""Where the zoo keeps its own files: the results store and the run folders.

Nothing here creates a folder on import or lookup; the code that writes a file creates its
parent with :func:`ensure_dir`, which turns any failure into one line naming the folder and
suggesting ``ZOO_HOME``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import platformdirs

from zoo_core.errors import ZooError


def zoo_home() -> Path:
    """The zoo's home folder: ``$ZOO_HOME`` when set and non-empty, else the user data dir.

    Always absolute (``~`` expanded, a relative ``ZOO_HOME`` taken from the current folder),
    so the run folders recorded in the store can be found from anywhere.
    """
    return Path(os.environ.get("ZOO_HOME") or platformdirs.user_data_dir("zoo")).expanduser().absolute()


def store_path() -> Path:
    """The SQLite results store, ``<zoo home>/zoo.db``."""
    return zoo_home() / "zoo.db"


ARTIFACTS_ENV = "ZOO_ARTIFACTS"  # the folder of run folders, when not <zoo home>/runs


def runs_dir() -> Path:
    """The folder holding one sub-folder per run (checkpoints, curves): ``$ZOO_ARTIFACTS``
    when set and non-empty (a path every machine of a team mounts alike), else
    ``<zoo home>/runs``. The store keeps run folders relative to it (:func:`relative_run_dir`),
    so a store shared by machines names folders that each machine finds under its own."""
    artifacts = os.environ.get(ARTIFACTS_ENV)
    if artifacts:
        return Path(artifacts).expanduser().absolute()
    return zoo_home() / "runs"


def relative_run_dir(run_dir: str, base: Path | None = None) -> str:
    """A run folder as the store keeps it: relative to ``base`` (default :func:`runs_dir`)
    when inside it, else as it is (a path outside the artifacts folder, or "" for none)."""
    if not run_dir or not os.path.isabs(run_dir):
        return run_dir
    try:
        return str(Path(run_dir).relative_to(base or runs_dir()))
    except ValueError:
        return run_dir


def absolute_run_dir(stored: str, base: Path | None = None) -> str:
    """A run folder as the store kept it, made absolute: a relative one is taken under
    ``base`` (default :func:`runs_dir`); an absolute one (written by a zoo-core before schema
    version 4, or outside the artifacts folder) is read as it is."""
    if not stored or os.path.isabs(stored):
        return stored
    return str((base or runs_dir()) / stored)


def ensure_dir(path: Path, what: str, error: type[ZooError] = ZooError) -> Path:
    """Create ``path`` (and its parents) unless it exists; return it.

    Args:
        path: the folder.
        what: what it is, for the message, e.g. "the dataset cache".
        error: the ZooError subclass to raise.

    Raises:
        error: one line naming the folder, why it failed and what to do (set ZOO_HOME).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create {what} {path} ({why_not(exc, path)}): {remedy(exc)}") from None
    return path


def why_not(exc: OSError, path: Path | None = None) -> str:
    """A short reason for an OSError about ``path``, without the errno noise."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        blocker = _file_in_the_way(path) if path is not None else None
        return f"{blocker} is a file, not a folder" if blocker else "a file is in the way"
    return exc.strerror or str(exc)


def remedy(exc: OSError | None = None) -> str:
    """What to do when zoo cannot write under its home."""
    if exc is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space, or set ZOO_HOME to a folder on a disk with room"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return "move that file aside, or set ZOO_HOME to another folder"
    return "make it writable, or set ZOO_HOME to a writable folder"


def _file_in_the_way(path: Path) -> Path | None:
    for folder in [*reversed(path.parents), path]:
        try:
            if folder.exists() and not folder.is_dir():
                return folder
        except OSError:
            return None
    return None


class RunFiles:
    """The names of the files a run leaves in its folder, in the order ``zoo show`` lists them."""

    CONFIG = "config.json"  # settings, sources, data checksums, versions
    METRICS = "metrics.json"  # per-epoch records, best epoch, test metrics
    CURVES = "curves.png"  # learning curves
    CONFUSION = "confusion.png"  # test confusion matrix
    PREDICTIONS = "predictions.png"  # a grid of test images, predicted and true classes
    TEST_PREDICTIONS = "predictions.npz"  # what it shows, and every test image's prediction
    CHECKPOINT_INDEX = "checkpoint.json"  # which checkpoints are best and last, and the state
    CHECKPOINTS = "ckpt"  # the folder of checkpoint files
    TENSORBOARD = "events.out.tfevents.*"  # per-epoch scalars for TensorBoard (a pattern)

    ALL = (CONFIG, METRICS, CURVES, CONFUSION, PREDICTIONS, TEST_PREDICTIONS, CHECKPOINT_INDEX,
           TENSORBOARD)
