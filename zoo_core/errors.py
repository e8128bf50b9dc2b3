"""Domain errors. The library raises these; the CLI turns them into one clear line."""

from __future__ import annotations

import difflib


class ZooError(Exception):
    """Base class of every error the zoo reports to a user (exit code 1)."""


class UsageError(ZooError):
    """The user's input is malformed (a bad option value): exit code 2."""


class RegistryError(ZooError):
    """registry.toml (or a user's registry file) is malformed."""


class PluginError(ZooError):
    """A plugin failed to load or made an invalid registration."""


class UnknownNameError(UsageError):
    """A model, dataset or run name that does not exist."""

    def __init__(self, kind: str, name: str, known, hint: str = ""):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif known:
            msg += f"; known {kind}s: " + ", ".join(known)
        else:
            msg += f"; no {kind}s are available"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.name = name
        self.known = known


class HParamError(UsageError):
    """An unknown hyperparameter or a value of the wrong type or range."""


class DataError(ZooError):
    """A data file is missing, truncated, corrupted or of the wrong kind."""


class TrainingError(ZooError):
    """Training could not go on (for example the loss became NaN)."""


class StoreError(ZooError):
    """The results store cannot be opened, read or written."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run; the run is recorded as interrupted."""

    def __init__(self, run_id: str, epochs: int):
        super().__init__(f"run {run_id} interrupted after {epochs} epoch(s)")
        self.run_id = run_id
        self.epochs = epochs
