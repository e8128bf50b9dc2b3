"""A run's evidence, as a model card shows it: what the model costs and where it was measured.

Recorded by every run (docs/results.md, "Reading the evidence"):

- at its start, in ``config.json``'s ``environment``: the CPU model, the cores the process
  may run on, the command that started it and the zoo's git revision (:func:`environment`);
- when it trains, in ``metrics.json``'s ``model``: its parameters and multiply-accumulates
  per example, counted from the graph (:mod:`zoo_core.train.cost`);
- in the store, as before: parameters, training time, examples per second, the TensorFlow
  version and the precision (in the config).

:func:`of_run` reads it back; a run recorded before a field existed has None for it, shown
as :data:`NONE`. Nothing here imports TensorFlow or numpy: ``zoo leaderboard --details``
reads it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from zoo_core.paths import RunFiles
from zoo_core.settings import RunSettings
from zoo_core.store.records import precision_ran

NONE = "—"  # what a table shows for a figure the run did not record
# What of_run returns, in the order zoo show prints it.
KEYS = ("params", "macs", "train_seconds", "examples_per_sec", "precision", "cpu", "cores",
        "tensorflow", "python", "git", "command")
# What a leaderboard row adds with --details (params, times and precision are columns already).
DETAIL_KEYS = ("macs", "cpu", "cores", "tensorflow", "git")
GIT_SECONDS = 5  # a git command that takes longer is given up: the revision is unknown


# -- recording ---------------------------------------------------------------------------------


def environment(argv: list[str] | None = None) -> dict[str, Any]:
    """The facts of the machine and process a run starts in (``config.json``'s
    ``environment``): ``cpu`` (model name), ``cores`` (the CPUs this process may run on),
    ``command`` (how the process was started; ``argv`` defaults to ``sys.argv``) and ``git``
    (:func:`git_revision`). A fact that cannot be found is None; finding one never fails."""
    return {"cpu": cpu_model(), "cores": cores(), "command": command(argv),
            "git": git_revision(Path(__file__).resolve().parents[2])}


def cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo's ``model name``), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or None


def cores() -> int | None:
    """The CPUs this process may run on (its affinity mask, else all of the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def command(argv: list[str] | None = None) -> str:
    """The command line, shell-quoted, the zoo's own entry points named ``zoo``
    (``.venv/bin/zoo run cnn`` and ``python -m zoo_core run cnn`` are ``zoo run cnn``)."""
    argv = list(sys.argv if argv is None else argv) or [""]
    program = Path(argv[0])
    zoo = program.stem == "zoo" or (program.name == "__main__.py"
                                    and program.parent.name == "zoo_core")
    return shlex.join(["zoo" if zoo else program.name, *argv[1:]])


def git_revision(checkout: Path) -> str | None:
    """``git rev-parse HEAD`` of ``checkout`` (with ``-dirty`` when tracked files changed),
    when ``checkout`` is the top of a git work tree: the zoo runs from a checkout, not from
    an installed copy that happens to sit inside someone's repository. None otherwise, or
    when git is missing, fails or hangs."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True,
            stdin=subprocess.DEVNULL, timeout=GIT_SECONDS,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # status must not lock the index
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != checkout.resolve():
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


# -- reading -----------------------------------------------------------------------------------


def recorded_json(path: Path) -> dict:
    """A JSON object a run wrote, or {} when it is missing, unreadable or not an object."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def recorded_settings(record, declared, *, as_ran: bool = False) -> RunSettings:
    """A run's settings as it recorded them: its config, and the speed-only settings its
    config.json keeps beside it (which kernel computed it, say), for the model's
    ``declared`` hyperparameters; what resuming, predicting and exporting build the run's
    graph with. ``as_ran``: in the precision the run computed in (predicting and evaluating
    compute what the run computed), rather than the one it asked for (resuming asks again)."""
    speed = recorded_json(Path(record.run_dir) / RunFiles.CONFIG).get("speed", {})
    if as_ran:
        speed = {**speed, "precision": precision_ran(record)}
    return RunSettings.recorded({**record.config, **speed}, declared)


def of_run(record) -> dict[str, Any]:
    """A run's evidence (the keys of :data:`KEYS`), from its row and its folder's files;
    None for what it did not record."""
    folder = Path(record.run_dir) if record.run_dir else None
    config = recorded_json(folder / RunFiles.CONFIG) if folder else {}
    metrics = recorded_json(folder / RunFiles.METRICS) if folder else {}
    env, model = _object(config.get("environment")), _object(metrics.get("model"))
    return {
        "params": record.params if record.params is not None else _of(model, "params", int),
        "macs": _of(model, "macs", int),
        "train_seconds": record.train_seconds,
        "examples_per_sec": record.examples_per_sec,
        "precision": precision_ran(record),
        "cpu": _of(env, "cpu", str),
        "cores": _of(env, "cores", int),
        "tensorflow": record.tf_version or None,
        "python": _of(_object(config.get("versions")), "python", str),
        "git": _of(env, "git", str),
        "command": _of(env, "command", str),
    }


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _of(found: dict, key: str, type_: type) -> Any:
    """``found[key]`` when it is a ``type_`` (a damaged or hand-edited file's other values
    are not shown as figures); else None."""
    value = found.get(key)
    return value if isinstance(value, type_) and not isinstance(value, bool) else None


def summarize(runs: Iterable[Any]) -> dict[str, Any]:
    """What a leaderboard row of these runs adds with ``--details`` (:data:`DETAIL_KEYS`):
    the MACs (the same for every run of a config, the first recorded), and for the machine
    facts the value the runs share, or their different values joined by `` / ``."""
    found = [of_run(run) for run in runs]
    summary: dict[str, Any] = {"macs": next((f["macs"] for f in found
                                              if f["macs"] is not None), None)}
    for key in DETAIL_KEYS[1:]:
        values = sorted({f[key] for f in found if f[key] is not None}, key=str)
        summary[key] = values[0] if len(values) == 1 else (
            " / ".join(map(str, values)) if values else None)
    return summary


# -- showing -----------------------------------------------------------------------------------


def short_cpu(name: str | None) -> str:
    """``Intel(R) Xeon(R) Platinum 8488C CPU @ 2.40GHz`` -> ``Intel Xeon Platinum 8488C``."""
    if not name:
        return NONE
    name = re.sub(r"\((R|TM|tm|r)\)|\bCPU\b|@\s*[\d.]+\s*GHz|\bProcessor\b", " ", name)
    return " ".join(name.split())


def short_git(revision: str | None) -> str:
    """A revision's first 10 hex digits, keeping ``-dirty``."""
    if not revision:
        return NONE
    head, dirty, _ = revision.partition("-dirty")
    return head[:10] + dirty


def detail_cells(row: dict[str, Any], count) -> list[str]:
    """A leaderboard row's ``--details`` cells (:data:`DETAIL_HEADERS`); ``count`` formats
    the MACs as the table formats parameters."""
    return [count(row["macs"]) if row.get("macs") is not None else NONE,
            " / ".join(short_cpu(cpu) for cpu in str(row["cpu"]).split(" / "))
            if row.get("cpu") else NONE,
            NONE if row.get("cores") is None else str(row["cores"]),
            row.get("tensorflow") or NONE,
            " / ".join(short_git(g) for g in str(row["git"]).split(" / "))
            if row.get("git") else NONE]


DETAIL_HEADERS = ["MACs", "CPU", "cores", "TF", "git"]
DETAIL_ALIGNS = ["right", "left", "right", "left", "left"]
