"""Evaluation: a split's loss, accuracy, per-class accuracy and confusion matrix.

Works on a live session (the loop evaluates the validation split every epoch, and the
test split once at the end) and from a run's best checkpoint (``zoo evaluate``).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

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
# cnn's activations for 2,000 images alone took ~300 MB of peak memory. Changing it changes
# bfloat16 runs' digits: oneDNN's bfloat16 kernels round differently at another batch size
# (a cnn checkpoint: 91.63 % at 256, 91.61 % at 2,000), so registry rows measured in bfloat16
# would have to be measured again (docs/results.md); float32 results did not move.
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
        :class:`Metrics` over all N examples (the last batch may be smaller), with each
        example's predicted class and its softmax probability (``predicted``,
        ``confidence``).
    """
    n = len(labels)
    total_loss = 0.0
    predictions = np.empty(n, dtype=np.int64)
    confidence = np.empty(n, dtype=np.float32)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        losses, preds, logits = session.run(
            [graph.example_losses, graph.predictions, graph.logits],
            {graph.images: to_float(images[start:stop]), graph.labels: labels[start:stop]},
        )
        total_loss += float(np.sum(losses))
        predictions[start:stop] = preds
        confidence[start:stop] = _top_probability(logits)
    metrics = summarize(labels, predictions, total_loss / max(n, 1), num_classes)
    metrics.predicted, metrics.confidence = predictions, confidence
    return metrics


def _top_probability(logits: np.ndarray) -> np.ndarray:
    """The softmax probability of each row's largest logit: 1 / sum(exp(l - max l))."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return (1.0 / np.exp(shifted).sum(axis=1)).astype(np.float32)


def evaluate_checkpoint(model: ModelSpec, hparams: Mapping[str, Any], settings: TrainerSettings,
                        run_dir: Path, images: np.ndarray, labels: np.ndarray,
                        num_classes: int, seed: int = 0) -> Metrics:
    """Rebuild a run's graph, restore its best checkpoint and evaluate a split."""
    prefix = checkpoints.best_prefix(run_dir)
    g = build_graph(model, hparams, settings, images.shape[1:], num_classes, seed)
    with best_session(g.graph, g.model_saver, settings, run_dir, prefix, "evaluated") as sess:
        with graph_errors(model, images.shape[1:], num_classes, "evaluating a checkpoint"):
            return evaluate(sess, g, images, labels, num_classes)


@contextmanager
def best_session(graph, saver, settings: TrainerSettings, run_dir: Path, prefix: Path,
                 doing: str) -> Iterator:
    """A Session on ``graph`` (with the run's session options: threads, precision) holding
    the checkpoint ``prefix`` of ``run_dir`` (:func:`checkpoints.best_prefix`), restored
    through ``saver``; what ``zoo evaluate``, ``zoo predict`` and ``zoo export`` run.

    ``doing``: what cannot be done when a checkpoint file is damaged ("evaluated").
    """
    tf = import_tf()
    # not `with Session() as sess`, which also makes it the thread's default session until
    # it exits: a caller may hold this one open across other sessions (zoo predict)
    sess = tf.compat.v1.Session(graph=graph, config=session_config(settings))
    try:
        with graph.as_default():  # a Saver restores the graph's variables in their graph
            checkpoints.restore(sess, saver, run_dir, str(prefix.relative_to(run_dir)),
                                f"the run cannot be {doing}: train it again")
        yield sess
    finally:
        sess.close()
