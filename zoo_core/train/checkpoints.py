"""A run's folder: its files, its checkpoints, and the state saved with them.

Every epoch saves ``ckpt/last-E`` (every variable: weights, the optimizer's slots, the
step; with ``ema``, the weights' averages too) and, when validation improved,
``ckpt/best-E`` (the same, but with ``ema`` the averages under the weights' own names and
no ``ema/`` variables); ``checkpoint.json`` names them and holds the run's progress
(:class:`TrainState`), written atomically after the checkpoint files, so a crash at any
point leaves a consistent pair to resume from. An epoch's files are written in a folder of
their own first (:class:`Pending`) and renamed into place only by the run's owner, inside the
fenced write of the epoch's row (``Store.add_epoch``), so that a process that lost the run to
another never overwrites nor deletes what the other's ``checkpoint.json`` names.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.errors import TrainingError, setting
from zoo_core.paths import RunFiles
from zoo_core.train.forward import MODEL_SCOPE


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


def save(sess, saver, run_dir: Path, state: TrainState, best_saver=None) -> Pending:
    """Save the epoch's variables under names of this call's own, not yet published: their
    files and the new ``checkpoint.json`` go into ``ckpt/.pending-PID-TOKEN/``, which
    :meth:`Pending.publish` renames into place (the run's owner does it inside the fenced write
    of the epoch's row, so that a process that lost the run never names or deletes a file
    there). ``saver`` writes the last checkpoint, ``best_saver`` (default: ``saver``) the best
    one, when this epoch is the best so far.

    Raises:
        TrainingError: the files cannot be written (a full disk); the previous checkpoint
            is intact and the run can be resumed.
    """
    tf = import_tf()
    folder = run_dir / RunFiles.CHECKPOINTS / f".pending-{os.getpid()}-{secrets.token_hex(4)}"
    pending = Pending(run_dir, folder, state)
    try:
        folder.mkdir(parents=True)
        saver.save(sess, str(folder / Path(state.last_prefix).name), write_meta_graph=False,
                   write_state=False)
        if state.best_epoch == state.epochs[-1]["epoch"]:  # this epoch is the best so far
            (best_saver or saver).save(sess, str(folder / Path(state.best_prefix).name),
                                       write_meta_graph=False, write_state=False)
        write_json_atomic(folder / RunFiles.CHECKPOINT_INDEX, {
            "prefix": state.best_prefix, "epoch": state.best_epoch, "last": state.last_prefix,
            "state": asdict(state),
        })
    except (OSError, tf.errors.OpError) as e:
        pending.discard()
        raise TrainingError(_unsaved(run_dir, state, read_index(run_dir) or {}, reason(e))) \
            from None
    return pending


@dataclass
class Pending:
    """An epoch's checkpoint saved in ``folder``, to be published in ``run_dir`` (or
    discarded): :func:`save`."""

    run_dir: Path
    folder: Path
    state: TrainState
    published: bool = False

    def publish(self) -> None:
        """Rename the checkpoint's files into ``ckpt/``, then its ``checkpoint.json`` over the
        run's (atomically), then delete the files the replaced index named and the new one
        does not. Call it only while the run is this process's (inside the fenced write).

        Raises:
            TrainingError: a file cannot be renamed; the previous index is intact.
        """
        previous = read_index(self.run_dir) or {}
        ckpt = self.run_dir / RunFiles.CHECKPOINTS
        try:
            for f in sorted(self.folder.iterdir()):
                if f.name != RunFiles.CHECKPOINT_INDEX:
                    os.replace(f, ckpt / f.name)
            os.replace(self.folder / RunFiles.CHECKPOINT_INDEX,
                       self.run_dir / RunFiles.CHECKPOINT_INDEX)
        except OSError as e:
            raise TrainingError(_unsaved(self.run_dir, self.state, previous, reason(e))) \
                from None
        self.published = True
        for key, keep in (("prefix", self.state.best_prefix), ("last", self.state.last_prefix)):
            old = previous.get(key)
            if old and old != keep and old not in (self.state.best_prefix,
                                                   self.state.last_prefix):
                for f in ckpt.glob(glob.escape(Path(old).name) + ".*"):
                    f.unlink(missing_ok=True)
        self.discard()

    def discard(self) -> None:
        """Remove what is left of ``folder`` (all of it, unless published)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _unsaved(run_dir: Path, state: TrainState, previous: dict, why: str) -> str:
    """Why an epoch's checkpoint could not be saved, and what to do: resume from the previous
    checkpoint, or (the run's first one) run the same command again."""
    where = f"cannot save the checkpoint of epoch {state.epochs[-1]['epoch']} in {run_dir} ({why})"
    fix = "free some disk space" if "space" in why or "quota" in why.lower() else \
        "make it writable"
    if previous.get("last"):
        return (f"{where}; the previous checkpoint is intact: {fix}, then continue with "
                f"{setting('resume')} {run_dir.name}")
    return (f"{where}; it was the run's first, so there is no checkpoint to resume from: {fix}, "
            "then run the same command again")


def reason(e: BaseException) -> str:
    """The reason in an OSError or a TensorFlow error about a file, without TensorFlow's
    noise: ``No space left on device`` from ``Graph execution error: ... PATH; No space left
    on device [[{{node save/SaveV2}}]]``."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    lines = [ln.strip() for ln in str(getattr(e, "message", None) or e).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(_TF_NOISE)]
    if not lines:
        return type(e).__name__
    path, sep, why = lines[0].rpartition("; ")  # "PATH; No space left on device"
    return (why if sep and "/" in path else lines[0])[:200]


_TF_NOISE = ("Graph execution error", "Detected at node", "Node:", "[[", "File ", "Hint:",
             "Original stack trace", "Restoring from checkpoint failed")


def restore(sess, saver, run_dir: Path, prefix: str, doing: str) -> None:
    """Restore the checkpoint ``run_dir / prefix``.

    Raises:
        TrainingError: a file of the checkpoint is missing or damaged: one line naming it
            (``doing`` says what cannot be done then, and what to do instead).
    """
    tf = import_tf()
    path = run_dir / prefix
    try:
        saver.restore(sess, str(path))
    except (ValueError, tf.errors.OpError) as e:
        file, what = _damaged(path, reason(e))
        raise TrainingError(f"{file}: checkpoint file {what}; {doing}") from None


def _damaged(prefix: Path, why: str) -> tuple[Path, str]:
    """Which file of the checkpoint ``prefix`` is at fault, and how: missing, damaged, or
    whole but holding other variables than the model's graph has now."""
    index = prefix.with_name(prefix.name + ".index")
    data = sorted(prefix.parent.glob(glob.escape(prefix.name) + ".data-*"))
    if not index.is_file():
        return index, "missing"
    if not data:
        return prefix.with_name(prefix.name + ".data-00000-of-00001"), "missing"
    if "not found in checkpoint" in why or "shape" in why.lower():  # whole, but another graph
        return index, (f"does not fit the model as its plugin builds it now ({why}; was the "
                       "plugin changed since?)")
    return (index if "sstable" in why or "index" in why.lower() else data[0]), f"damaged ({why})"


def restore_last(sess, saver, run_dir: Path) -> TrainState:
    """Restore the last completed epoch's variables and the run's progress. A run that ended
    before its first checkpoint has nothing to restore and starts from its first epoch (its
    seed makes that the same run).

    Raises:
        TrainingError: checkpoint files without a readable index, an index that cannot be
            read, or a file of the checkpoint missing or damaged.
    """
    index = read_index(run_dir)
    if not index or not index.get("last"):
        problem = _no_index(run_dir, "the run cannot be resumed")
        if problem:
            raise TrainingError(problem)
        if (run_dir / RunFiles.CHECKPOINT_INDEX).exists():
            raise TrainingError(f"{run_dir / RunFiles.CHECKPOINT_INDEX} cannot be read, so the "
                                "run cannot be resumed: start it again as a new run")
        return TrainState()  # no checkpoint yet: from the start
    restore(sess, saver, run_dir, index["last"],
            "the run cannot be resumed from it: start it again as a new run")
    return TrainState(**index["state"])


def best_prefix(run_dir: Path) -> Path:
    """The best epoch's checkpoint prefix.

    Raises:
        TrainingError: the run has no checkpoint (it ended before its first epoch), or its
            index ``checkpoint.json`` is missing or damaged.
    """
    index = read_index(run_dir)
    if index is None or not index.get("prefix"):
        raise TrainingError(_no_index(run_dir, "the best checkpoint is unknown") or (
            f"{run_dir} has no checkpoint (the run ended before its first epoch)"))
    return run_dir / index["prefix"]


def _no_index(run_dir: Path, so: str) -> str | None:
    """The message for checkpoint files without their index (``checkpoint.json`` deleted or
    damaged); None when the run has no checkpoint files either."""
    found = sorted(p.name.removesuffix(".index")
                   for p in (run_dir / RunFiles.CHECKPOINTS).glob("*.index"))
    if not found:
        return None
    return (f"{run_dir / RunFiles.CHECKPOINT_INDEX}: missing or damaged, so {so} although "
            f"{RunFiles.CHECKPOINTS}/ holds {', '.join(found)}: put it back from a copy, "
            "or train the run again")


def read_index(run_dir: Path) -> dict | None:
    """``checkpoint.json``, or None when there is none (or it is unreadable)."""
    try:
        index = json.loads((run_dir / RunFiles.CHECKPOINT_INDEX).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return index if isinstance(index, dict) else None


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


def model_variable_names(names) -> list[str]:
    """Of a checkpoint's variable names, the model's own (sorted): those in the builder's
    scope (``forward.MODEL_SCOPE``) that are not an optimizer's slot of another variable
    (Adam's ``model/dense/kernel/Adam`` and ``.../Adam_1``, Nesterov's ``.../Momentum``);
    the step, Adam's ``beta*_power`` and the ``ema`` averages (``ema/model/...``, in a last
    checkpoint only) are outside the scope. What ``ModelGraph.model_saver`` restores."""

    names = set(names)
    own = {n for n in names if n.startswith(MODEL_SCOPE + "/")}
    return sorted(n for n in own if n.rpartition("/")[0] not in own)


def write_weights_only(source: Path, target: Path) -> list[str]:
    """Copy the model's own variables (:func:`model_variable_names`) of the checkpoint
    ``source`` (a prefix) into a new checkpoint ``target`` (a prefix): the weights without
    the optimizer's state, about a third of the size with Adam. Returns the names copied.

    Raises:
        TrainingError: ``source`` cannot be read.
    """
    tf = import_tf()
    v1 = tf.compat.v1
    try:
        reader = tf.train.load_checkpoint(str(source))
    except (ValueError, tf.errors.OpError) as e:
        raise TrainingError(f"{source}: checkpoint cannot be read ({reason(e)})") from None
    names = model_variable_names(reader.get_variable_to_shape_map())
    graph = tf.Graph()
    with graph.as_default():
        variables = {n: v1.Variable(reader.get_tensor(n), name=n.replace("/", "_"),
                                    trainable=False) for n in names}
        saver = v1.train.Saver(var_list=variables)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.variables_initializer(list(variables.values())))
            saver.save(sess, str(target), write_meta_graph=False, write_state=False)
    return names
