"""The ``Session`` loop shared by every model.

Train for the configured epochs (or until patience runs out), evaluate the validation
split after each one and checkpoint it, then restore the best epoch and evaluate the
test split once. Batch order depends only on (seed, epoch) and augmentation on
(seed, step), so a resumed run ends where an uninterrupted one would.
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
    def epoch_end(self, record: dict) -> None: ...


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
                    n, steps)
    state = TrainState()
    with tf.compat.v1.Session(graph=g.graph, config=session_config(settings)) as sess, \
            graph_errors(model, data.x_train.shape[1:], data.num_classes,
                         "when its variables were initialized") as now:
        sess.run(g.init)
        if resume:
            state = checkpoints.restore_last(sess, g.saver, run_dir)
        sess.run(g.data_init, {g.data_feed[0]: data.x_train, g.data_feed[1]: data.y_train})
        for epoch in range(len(state.epochs) + 1, settings.epochs + 1):
            if settings.patience and state.since_best >= settings.patience:
                state.stopped_early = True
                break
            now["doing"] = f"in epoch {epoch}" + (" (its first step)" if epoch == 1 else "")
            record = _epoch(sess, g, settings, data, seed, epoch, progress)
            state.add(record, n / record["seconds"])
            checkpoints.save(sess, g.saver, run_dir, state)
            progress.epoch_end(record)
        if not state.best_prefix:
            raise TrainingError(f"{run_dir}: no epoch finished, so there is nothing to evaluate")
        checkpoints.restore(sess, g.saver, run_dir, state.best_prefix,
                            "the test split cannot be evaluated: train the run again")
        now["doing"] = "on the test split"
        test = evaluate(sess, g, data.x_test, data.y_test, data.num_classes)
    return TrainResult(
        epochs=state.epochs, best_epoch=state.best_epoch, val_accuracy=state.best_acc, test=test,
        params=g.params, train_seconds=state.train_seconds,
        examples_per_sec=float(np.median(state.rates)), stopped_early=state.stopped_early,
    )


def _epoch(sess, g: ModelGraph, settings: TrainerSettings, data: Data, seed: int, epoch: int,
           progress: Progress) -> dict:
    """One pass over the training split, then the validation split: the epoch's record."""
    n = len(data.y_train)
    batch = min(settings.batch_size, n)
    steps = math.ceil(n / batch)
    progress.epoch_start(epoch, settings.epochs, steps)
    order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)
    loss_sum = acc_sum = 0.0
    lr = settings.lr
    start = time.perf_counter()
    for s in range(steps):
        idx = order[s * batch:(s + 1) * batch]
        _, loss, acc, lr = sess.run([g.train_op, g.loss, g.accuracy, g.learning_rate],
                                    {g.index: idx, g.training: True})
        if not math.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss} at epoch {epoch}, step {s + 1}: try a lower learning "
                f"rate ({setting('lr', f'{settings.lr / 10:g}')}) or "
                f"{setting('clip_norm', '1.0')}")
        loss_sum += float(loss) * len(idx)
        acc_sum += float(acc) * len(idx)
        progress.step(float(loss), float(acc))
    seconds = time.perf_counter() - start
    val = evaluate(sess, g, data.x_val, data.y_val, data.num_classes)
    return {"epoch": epoch, "train_loss": loss_sum / n, "train_accuracy": acc_sum / n,
            "val_loss": val.loss, "val_accuracy": val.accuracy, "lr": float(lr),
            "seconds": seconds}
