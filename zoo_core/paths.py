"""Where the zoo keeps its own files: the results store and the run folders.

Nothing here creates a folder; the code that writes a file creates its parent.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def zoo_home() -> Path:
    """The zoo's home folder: ``$ZOO_HOME`` when set and non-empty, else the user data dir."""
    return Path(os.environ.get("ZOO_HOME") or platformdirs.user_data_dir("zoo"))


def store_path() -> Path:
    """The SQLite results store, ``<zoo home>/zoo.db``."""
    return zoo_home() / "zoo.db"


def runs_dir() -> Path:
    """The folder holding one sub-folder per run (checkpoints, curves)."""
    return zoo_home() / "runs"
