"""Domain errors. The library raises these with the facts; the CLI turns them into one line.

Library code knows no command-line flags. Where a message tells the user which setting to
change, it names the setting with :func:`setting` (``setting("data_dir")``,
``setting("lr", 1e-4)``), which leaves a marker in the message. ``str(error)`` shows the
library's name (``data_dir``, ``lr=0.0001``); the CLI shows its own spelling of the same
setting (``--data-dir``, ``--lr 0.0001``) through :func:`render`.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import sysconfig
import traceback
import urllib.parse
from typing import Any, Callable

# A setting named in a message: ⟦name⟧ or ⟦name=value⟧ (brackets no path or repr contains).
_SETTING = re.compile(r"⟦([A-Za-z_][A-Za-z0-9_]*)(?:=([^⟧]*))?⟧")


def setting(name: str, value: Any = None) -> str:
    """A marker naming a setting (and a suggested value) in an error message."""
    return f"⟦{name}⟧" if value is None else f"⟦{name}={value}⟧"


def _library_spelling(name: str, value: str | None) -> str:
    return name if value is None else f"{name}={value}"


def render(text: str, spell: Callable[[str, str | None], str] = _library_spelling) -> str:
    """``text`` with each setting marker spelled by ``spell(name, value)``."""
    return _SETTING.sub(lambda m: spell(m[1], m[2]), text)


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened so that a message stays one readable line."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"a {type(value).__name__} too long to print"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ZooError(Exception):
    """Base class of every error the zoo reports to a user (exit code 1).

    ``str(error)`` names settings as the library does; :attr:`template` keeps the
    markers for a front end that names them its own way (see :func:`render`).
    """

    @property
    def template(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return render(self.template)


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
    """Ctrl-C or SIGTERM during a run. The run is recorded as interrupted after ``epochs``
    epochs, or, when ``completed``, the signal came after its result was recorded (while
    its plots were drawn) and the run is recorded as completed."""

    def __init__(self, run_id: str, epochs: int, completed: bool = False):
        super().__init__(f"run {run_id} interrupted after {epochs} epoch(s)"
                         + (", its result recorded" if completed else ""))
        self.run_id = run_id
        self.epochs = epochs
        self.completed = completed


class TrialPruned(Exception):
    """A search's pruner stopped a trial at an epoch boundary (``zoo sweep --search
    --prune``): a decision, recorded as status "pruned" with ``reason``, not a failure."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- where in a plugin's code an error came from ------------------------------------------------

# Packages whose frames are never the plugin's, besides the standard library and the zoo.
_NOT_PLUGINS = ("tensorflow", "tf_keras", "keras", "numpy", "click", "pluggy", "_pytest",
                "pytest", "google")


def first_line(e: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), or its type's name."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for a message or a log."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = urllib.parse.quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def location(e: BaseException) -> str:
    """`` (at file:line)``: the deepest frame of the failure (or of its causes) in the
    plugin's own code, outside the zoo, the libraries it runs on and the standard library;
    "" when there is none."""
    frames = []
    while e is not None:
        frames += traceback.extract_tb(e.__traceback__)
        e = e.__cause__
    frames = plugin_frames(frames)
    if not frames:
        return ""
    return f" (at {relpath(frames[-1].filename)}:{frames[-1].lineno})"


def plugin_frames(frames) -> list:
    """The frames outside the zoo, the libraries it runs on, the standard library and the
    scripts folder (the ``zoo`` script itself), and not Python's own (``<frozen runpy>``)."""
    dirs = _library_dirs()
    return [f for f in frames if not _is_library(f.filename, dirs)]


def _is_library(filename: str, dirs) -> bool:
    """Whether a frame's file is the zoo's, a library's or Python's, not a plugin's.

    A virtual environment's ``platstdlib`` (``<venv>/lib/python3.X``) holds its
    site-packages, where ``pip install`` puts plugins: site-packages is a plugin's home
    unless the file is in one of the packages named in _NOT_PLUGINS (or the zoo)."""
    if filename.startswith("<"):
        return True
    path = os.path.realpath(filename)
    packages, site_dirs, library = dirs
    if path.startswith(packages):
        return True
    return not path.startswith(site_dirs) and path.startswith(library)


def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(the zoo's and _NOT_PLUGINS' package folders, the site-packages folders, the
    standard library's and scripts' folders), each ending in a separator."""
    packages = [os.path.dirname(os.path.abspath(__file__))]  # zoo_core
    for mod in _NOT_PLUGINS:
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__file__", None):
            packages.append(os.path.dirname(m.__file__))
    paths = sysconfig.get_paths()
    site_dirs = [paths.get("purelib"), paths.get("platlib"), *_site_packages()]
    library = [paths.get(key) for key in ("stdlib", "platstdlib", "scripts")]

    def folders(dirs):
        return tuple(os.path.realpath(d) + os.sep for d in dirs if d)

    return folders(packages), folders(site_dirs), folders(library)


def _site_packages() -> list[str]:
    import site

    try:
        return [*site.getsitepackages(), site.getusersitepackages()]
    except AttributeError:  # pragma: no cover - an old virtualenv's site module
        return []


def relpath(path: str) -> str:
    """``path`` relative to the working folder when it is inside it, else relative to the
    site-packages it is installed in (``zoo_gru/__init__.py``), else as it is."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return path
    if not rel.startswith(".."):
        return rel
    real = os.path.realpath(path)
    for site_dir in _library_dirs()[1]:
        if real.startswith(site_dir):
            return real[len(site_dir):]
    return path
