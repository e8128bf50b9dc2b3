"""The ``Session`` loop shared by every model.

Train for the configured epochs (or until patience runs out), evaluate the validation
split after each one and checkpoint it, then restore the best epoch and evaluate the
test split once. Batch order depends only on (seed, epoch) and augmentation on
(seed, step), so a resumed run ends where an uninterrupted one would.

With ``ema`` (or ``swa``), validation (so the choice of the best epoch), the best
checkpoint and the test use the weights' moving average (or their mean over the last
epochs, folded in at each epoch's end), while training continues from the raw weights
(:class:`~zoo_core.train.ema.Ema`, :class:`~zoo_core.train.ema.Swa`). The test restores
only the model's own variables of the best checkpoint (``model_saver``): all evaluation
needs, and with either the best checkpoint has no ``ema/`` variables to restore.

Steps run one per ``Session.run``, or K per call through the graph's
:class:`~zoo_core.train.graph.StepLoop` (``steps_per_call``: the same math, less Python
and dispatch per step; 0 picks K from the time of the first single steps).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data import Data
from zoo_core.errors import TrainingError, setting
from zoo_core.settings import TrainerSettings
from zoo_core.train import checkpoints
from zoo_core.train.blame import graph_errors
from zoo_core.train.checkpoints import TrainState
from zoo_core.train.evaluate import evaluate
from zoo_core.train.graph import ModelGraph, build_graph, session_config
from zoo_core.train.metrics import Metrics


class Progress:
    """Receives the loop's progress; the default does nothing."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, loss: float, accuracy: float) -> None: ...

    def steps(self, count: int, loss: float, accuracy: float) -> None:
        """``count`` steps ran in one call; ``loss`` and ``accuracy`` are their means.

        By default, ``count`` calls of :meth:`step`, for progress written before K steps
        ran per call."""
        for _ in range(count):
            self.step(loss, accuracy)

    def epoch_saved(self, record: dict, publish) -> None:
        """The epoch's checkpoint is saved under names of its own: call ``publish()`` to name
        it in ``checkpoint.json`` (a recorder does it only while the run is its process's)."""
        publish()

    def epoch_end(self, record: dict) -> None: ...


def report_steps(progress, count: int, loss: float, accuracy: float) -> None:
    """Tell ``progress`` that ``count`` steps ran: :meth:`Progress.steps`, or ``count`` calls
    of ``step`` for a progress that has no ``steps`` (it need not subclass Progress)."""
    steps = getattr(progress, "steps", None)
    if steps is not None:
        steps(count, loss, accuracy)
    else:
        for _ in range(count):
            progress.step(loss, accuracy)


# steps_per_call 0 (automatic): the first PROBE_STEPS steps run one per call; from the
# median time of all but the first, K is chosen so that a call takes about CALL_SECONDS.
PROBE_STEPS = 4
CALL_SECONDS = 0.05
MAX_STEPS_PER_CALL = 64


@dataclass
class TrainResult:
    """What a finished training run measured."""

    epochs: list[dict]
    best_epoch: int
    val_accuracy: float
    test: Metrics
    params: int
    train_seconds: float
    examples_per_sec: float
    stopped_early: bool = False
    steps_per_call: int = 1  # the K used (the last one chosen, when automatic)
    steps_note: str = ""  # why steps ran one per call although more were asked for


def train(model: ModelSpec, hparams: Mapping[str, Any], settings: TrainerSettings, data: Data,
          seed: int, run_dir: Path, progress: Progress | None = None,
          resume: bool = False) -> TrainResult:
    """Train, select the best epoch on the validation split, evaluate the test split once.

    Args:
        model: the registered model.
        hparams: its merged hyperparameters.
        settings: the trainer settings.
        data: the loaded splits.
        seed: the run's seed (graph seed, batch order, augmentation).
        run_dir: where checkpoints go (``ckpt/``, and ``checkpoint.json`` naming them).
        progress: receives per-step and per-epoch progress.
        resume: continue from the last completed epoch saved in ``run_dir`` (dropout inside
            a model is TensorFlow's stateful randomness and is not replayed exactly).

    Raises:
        TrainingError: the loss became NaN or infinite, or there is nothing to resume.
        KeyboardInterrupt: passed through; the best and last checkpoints are kept.
    """
    tf = import_tf()
    progress = progress or Progress()
    n = len(data.y_train)
    steps = math.ceil(n / min(settings.batch_size, n))
    g = build_graph(model, hparams, settings, data.x_train.shape[1:], data.num_classes, seed,
                    n, steps, step_loop=settings.steps_per_call != 1,
                    train_dtype=data.x_train.dtype)
    state = TrainState()
    with tf.compat.v1.Session(graph=g.graph, config=session_config(settings)) as sess, \
            graph_errors(model, data.x_train.shape[1:], data.num_classes,
                         "when its variables were initialized") as now:
        sess.run(g.init)
        if resume:
            state = checkpoints.restore_last(sess, g.saver, run_dir)
        g.hold(sess, data.x_train, data.y_train)
        stepper = Stepper(sess, g, settings)
        for epoch in range(len(state.epochs) + 1, settings.epochs + 1):
            if settings.patience and state.since_best >= settings.patience:
                state.stopped_early = True
                break
            now["doing"] = f"in epoch {epoch}" + (" (its first step)" if epoch == 1 else "")
            record = _epoch(stepper, data, seed, epoch, progress)
            _check_finite(f"the validation split after epoch {epoch}", record["val_loss"],
                          record["val_accuracy"])
            state.add(record, n / record["seconds"])
            _save(progress, record, sess, g, run_dir, state)
            progress.epoch_end(record)
        if not state.best_prefix:
            raise TrainingError(f"{run_dir}: no epoch finished, so there is nothing to evaluate")
        checkpoints.restore(sess, g.model_saver, run_dir, state.best_prefix,
                            "the test split cannot be evaluated: train the run again")
        now["doing"] = "on the test split"
        test = evaluate(sess, g, data.x_test, data.y_test, data.num_classes)
        _check_finite(f"the test split (best epoch {state.best_epoch})", test.loss, test.accuracy)
    return TrainResult(
        epochs=state.epochs, best_epoch=state.best_epoch, val_accuracy=state.best_acc, test=test,
        params=g.params, train_seconds=state.train_seconds,
        examples_per_sec=float(np.median(state.rates)), stopped_early=state.stopped_early,
        steps_per_call=stepper.k or 1, steps_note=g.steps_problem,
    )


def _save(progress, record: dict, sess, g: ModelGraph, run_dir: Path, state: TrainState) -> None:
    """Save the epoch's checkpoint under names of its own, then name it in ``checkpoint.json``
    through the progress's ``epoch_saved`` (the run's recorder does it inside the fenced write
    of the epoch's row, and raises when the run is no longer this process's); what was saved
    and not published is removed, and nothing else."""
    pending = checkpoints.save(sess, g.saver, run_dir, state, best_saver=g.best_saver)
    saved = getattr(progress, "epoch_saved", None)
    try:
        if saved is None:  # a progress that does not subclass Progress
            pending.publish()
        else:
            saved(record, pending.publish)
    finally:
        pending.discard()


def _check_finite(where: str, loss: float, accuracy: float) -> None:
    """A non-finite loss on an evaluated split fails the run: its model outputs NaN or inf
    there, so its accuracy (argmax of NaN) would be a meaningless number."""
    if not (math.isfinite(loss) and math.isfinite(accuracy)):
        raise TrainingError(
            f"the model's outputs are not finite on {where} (loss {loss}): the run is not "
            f"recorded as completed; try a lower learning rate ({setting('lr')}) or "
            f"{setting('clip_norm', '1.0')}, and check the model's evaluation path "
            "(training=False)")


def _epoch(stepper: Stepper, data: Data, seed: int, epoch: int, progress: Progress) -> dict:
    """One pass over the training split, then the validation split: the epoch's record."""
    g, settings = stepper.g, stepper.settings
    n = len(data.y_train)
    batch = min(settings.batch_size, n)
    steps = math.ceil(n / batch)
    progress.epoch_start(epoch, settings.epochs, steps)
    order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)
    sums = _Sums()
    start = time.perf_counter()
    s = 0
    while s < steps:
        count = stepper.count(s, n // batch)
        rows = order[s * batch:(s + count) * batch]
        loss, acc = sums.loss, sums.acc
        if count == 1:
            stepper.step(rows, sums, last=s == steps - 1)
        else:
            stepper.call(rows.reshape(count, batch), sums)
        if not math.isfinite(sums.last_loss):
            bad = s + sums.done
            where = f"step {bad}" + (f" (steps {s + 1}-{s + count} ran in one call)"
                                     if count > 1 else "")
            raise TrainingError(
                f"the loss became {sums.last_loss} at epoch {epoch}, {where}: try a lower "
                f"learning rate ({setting('lr', f'{settings.lr / 10:g}')}) or "
                f"{setting('clip_norm', '1.0')}")
        examples = len(rows)
        report_steps(progress, count, (sums.loss - loss) / examples, (sums.acc - acc) / examples)
        s += count
    seconds = time.perf_counter() - start
    if g.swa is not None:  # the epoch's weights into the mean (before its window: they are it)
        stepper.sess.run(g.swa.fold, g.swa.feed(epoch))
    with g.averaged(stepper.sess):  # with ema or swa: the averages, then the raw ones again
        refresh = _refresh_statistics(stepper, seed, epoch, n)
        val = evaluate(stepper.sess, g, data.x_val, data.y_val, data.num_classes)
    record = {"epoch": epoch, "train_loss": sums.loss / n, "train_accuracy": sums.acc / n,
              "val_loss": val.loss, "val_accuracy": val.accuracy, "lr": sums.lr,
              "seconds": seconds + (refresh or 0.0)}
    if refresh is not None:  # part of the epoch's seconds, and on its own (its cost)
        record["bn_seconds"] = refresh
    return record


def _refresh_statistics(stepper: Stepper, seed: int, epoch: int, n: int) -> float | None:
    """Batch normalization's statistics estimated again over ``bn_batches`` training batches
    (:mod:`zoo_core.train.batchnorm`), before the epoch's evaluation and checkpoint: the
    seconds it took, or None for a model without them. The batches are drawn by (seed, epoch)
    alone and gathered as a training step gathers them, so a resumed run draws the same."""
    g, settings = stepper.g, stepper.settings
    if g.moving_stats is None:
        return None
    start = time.perf_counter()
    batch = min(settings.batch_size, n)
    count = min(settings.bn_batches, n // batch)
    rows = np.random.default_rng([seed, epoch, 1]).permutation(n)[:count * batch]
    feeds = ({g.index: r, g.training: True}
             for r in rows.astype(np.int32).reshape(count, batch))
    g.moving_stats.refresh(stepper.sess, feeds)
    return time.perf_counter() - start


@dataclass
class _Sums:
    """An epoch's running sums (float64, weighted by examples) and its last step's values."""

    loss: float = 0.0
    acc: float = 0.0
    lr: float = 0.0
    last_loss: float = 0.0
    done: int = 0  # steps run by the last call (fewer than asked when a loss was not finite)


class Stepper:
    """Runs training steps in a session: one per call, or K per call through ``g.steps``.

    ``k``: steps per call (0 until chosen automatically). Which steps form a call never
    changes what they compute: batches come from the epoch's order, augmentation from
    each step's global step.
    """

    def __init__(self, sess, g: ModelGraph, settings: TrainerSettings):
        self.sess, self.g, self.settings = sess, g, settings
        self.k = settings.steps_per_call if g.steps is not None else 1
        self.times: list[float] = []  # seconds of the first single steps, while k is 0

    def count(self, s: int, full: int) -> int:
        """How many steps to run in the next call, at step ``s`` of an epoch of ``full``
        full batches (a last, partial batch runs alone)."""
        if self.k == 0 and len(self.times) >= PROBE_STEPS:
            per_step = float(np.median(self.times[1:]))
            self.k = max(1, min(MAX_STEPS_PER_CALL, full, round(CALL_SECONDS / per_step)))
        if self.k == 0 or s >= full:
            return 1
        return max(1, min(self.k, full - s))

    def step(self, rows, sums: _Sums, last: bool) -> None:
        """One step in one call; the learning rate is fetched on an epoch's ``last`` step."""
        g = self.g
        fetches = [g.train_op, g.loss, g.accuracy] + ([g.learning_rate] if last else [])
        start = time.perf_counter()
        out = self.sess.run(fetches, {g.index: rows, g.training: True})
        if self.k == 0:
            self.times.append(time.perf_counter() - start)
        sums.loss += float(out[1]) * len(rows)
        sums.acc += float(out[2]) * len(rows)
        sums.last_loss, sums.done = float(out[1]), 1
        if last:
            sums.lr = float(out[3])

    def call(self, rows, sums: _Sums) -> None:
        """``len(rows)`` steps in one call, one row of indices each."""
        loop = self.g.steps
        done, sums.loss, sums.acc, last_loss, lr = self.sess.run(
            loop.outputs, {loop.indices: rows, loop.loss_sum: sums.loss, loop.acc_sum: sums.acc})
        sums.done, sums.last_loss, sums.lr = int(done), float(last_loss), float(lr)
