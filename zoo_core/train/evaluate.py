"""Evaluation: a split's loss, accuracy, per-class accuracy and confusion matrix.

Works on a live session (the loop evaluates the validation split every epoch, and the
test split once at the end) and from a run's best checkpoint (``zoo evaluate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data.splits import to_float
from zoo_core.settings import TrainerSettings
from zoo_core.train import checkpoints
from zoo_core.train.blame import graph_errors
from zoo_core.train.graph import ModelGraph, build_graph, session_config
from zoo_core.train.metrics import Metrics, summarize

# Batches of 256, not thousands: as fast or faster here (median time ratio of batch 2000 to
# 256, 5 interleaved rounds on 5,000 validation images: cnn 1.17, rnn 1.01, lstm 1.74), and a
# cnn's activations for 2,000 images alone took ~300 MB of peak memory.
EVAL_BATCH = 256


def evaluate(session, graph: ModelGraph, images: np.ndarray, labels: np.ndarray,
             num_classes: int, batch_size: int = EVAL_BATCH) -> Metrics:
    """Run a model over a whole split in batches of ``batch_size``.

    Args:
        session: a ``tf.compat.v1.Session`` holding the trained variables.
        graph: the :class:`~zoo_core.train.graph.ModelGraph` it runs.
        images: [N, H, W, C], uint8 or float32 in [0, 1] (each batch goes through
            :func:`zoo_core.data.to_float`, as the trainer's data does); labels: int [N].
        num_classes: the number of classes.

    Returns:
        :class:`Metrics` over all N examples (the last batch may be smaller).
    """
    n = len(labels)
    total_loss = 0.0
    predictions = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        losses, preds = session.run(
            [graph.example_losses, graph.predictions],
            {graph.images: to_float(images[start:stop]), graph.labels: labels[start:stop]},
        )
        total_loss += float(np.sum(losses))
        predictions[start:stop] = preds
    return summarize(labels, predictions, total_loss / max(n, 1), num_classes)


def evaluate_checkpoint(model: ModelSpec, hparams: Mapping[str, Any], settings: TrainerSettings,
                        run_dir: Path, images: np.ndarray, labels: np.ndarray,
                        num_classes: int, seed: int = 0) -> Metrics:
    """Rebuild a run's graph, restore its best checkpoint and evaluate a split."""
    tf = import_tf()
    prefix = checkpoints.best_prefix(run_dir)
    g = build_graph(model, hparams, settings, images.shape[1:], num_classes, seed)
    with tf.compat.v1.Session(graph=g.graph, config=session_config(settings)) as sess:
        checkpoints.restore(sess, g.model_saver, run_dir, str(prefix.relative_to(run_dir)),
                            "the run cannot be evaluated: train it again")
        with graph_errors(model, images.shape[1:], num_classes, "evaluating a checkpoint"):
            return evaluate(sess, g, images, labels, num_classes)
