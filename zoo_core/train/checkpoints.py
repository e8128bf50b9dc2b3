"""A run's folder: its files, its checkpoints, and the state saved with them.

Every epoch saves ``ckpt/last-E`` (every variable: weights, Adam's slots, the step) and,
when validation improved, ``ckpt/best-E``; ``checkpoint.json`` names them and holds the
run's progress (:class:`TrainState`), written atomically after the checkpoint files, so a
crash at any point leaves a consistent pair to resume from.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.errors import TrainingError, setting
from zoo_core.paths import RunFiles


@dataclass
class TrainState:
    """What a run has done so far; saved with every checkpoint so a run can resume."""

    epochs: list[dict] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0
    best_prefix: str = ""
    last_prefix: str = ""
    since_best: int = 0
    train_seconds: float = 0.0
    rates: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def add(self, record: dict, rate: float) -> None:
        """Account for a finished epoch; marks ``record["best"]``."""
        epoch = record["epoch"]
        record["best"] = record["val_accuracy"] > self.best_acc
        if record["best"]:
            self.best_acc, self.best_epoch, self.since_best = record["val_accuracy"], epoch, 0
            self.best_prefix = f"{RunFiles.CHECKPOINTS}/best-{epoch}"
        else:
            self.since_best += 1
        self.last_prefix = f"{RunFiles.CHECKPOINTS}/last-{epoch}"
        self.epochs.append(record)
        self.train_seconds += record["seconds"]
        self.rates.append(rate)


def save(sess, saver, run_dir: Path, state: TrainState) -> None:
    """Save the epoch's variables, then point ``checkpoint.json`` at them atomically.

    A crash while saving leaves the previous checkpoints and their index intact: older
    files are removed only after the index moved on.

    Raises:
        TrainingError: the files cannot be written (a full disk); the previous checkpoint
            is intact and the run can be resumed.
    """
    tf = import_tf()
    previous = read_index(run_dir) or {}
    try:
        (run_dir / RunFiles.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        saver.save(sess, str(run_dir / state.last_prefix), write_meta_graph=False,
                   write_state=False)
        if state.best_prefix != previous.get("prefix"):
            saver.save(sess, str(run_dir / state.best_prefix), write_meta_graph=False,
                       write_state=False)
        write_json_atomic(run_dir / RunFiles.CHECKPOINT_INDEX, {
            "prefix": state.best_prefix, "epoch": state.best_epoch, "last": state.last_prefix,
            "state": asdict(state),
        })
    except (OSError, tf.errors.OpError) as e:
        reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
        raise TrainingError(
            f"cannot save the checkpoint of epoch {state.epochs[-1]['epoch']} in {run_dir} "
            f"({reason.splitlines()[0] if reason else type(e).__name__}); the previous "
            f"checkpoint is intact: free some disk space, then continue with {setting('resume')}"
        ) from None
    for key, keep in (("prefix", state.best_prefix), ("last", state.last_prefix)):
        old = previous.get(key)
        if old and old != keep:
            for f in (run_dir / RunFiles.CHECKPOINTS).glob(Path(old).name + ".*"):
                f.unlink(missing_ok=True)


def restore_last(sess, saver, run_dir: Path) -> TrainState:
    """Restore the last completed epoch's variables and the run's progress; a run that ended
    before its first epoch did has nothing to restore and starts from its first epoch (its
    seed makes that the same run).

    Raises:
        TrainingError: ``checkpoint.json`` exists but cannot be read.
    """
    if not (run_dir / RunFiles.CHECKPOINT_INDEX).exists():
        return TrainState()
    index = read_index(run_dir)
    if not index or not index.get("last"):
        raise TrainingError(f"{run_dir / RunFiles.CHECKPOINT_INDEX} cannot be read, so the run "
                            "cannot be resumed: start it again as a new run")
    saver.restore(sess, str(run_dir / index["last"]))
    return TrainState(**index["state"])


def best_prefix(run_dir: Path) -> Path:
    """The best epoch's checkpoint prefix.

    Raises:
        TrainingError: the run has no checkpoint (it ended before its first epoch).
    """
    index = read_index(run_dir)
    if index is None:
        raise TrainingError(f"{run_dir} has no checkpoint (the run ended before its first epoch)")
    return run_dir / index["prefix"]


def read_index(run_dir: Path) -> dict | None:
    """``checkpoint.json``, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((run_dir / RunFiles.CHECKPOINT_INDEX).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
