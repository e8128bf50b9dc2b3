"""Evaluation: loss, accuracy, per-class accuracy and the confusion matrix of a split.

Works on a live session (the trainer calls it on the validation split every epoch,
and once on the test split at the end) and from a run's checkpoint (``zoo evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EVAL_BATCH = 2000  # large batches: evaluation has no backward pass


@dataclass
class Metrics:
    """What one evaluation measured."""

    loss: float
    accuracy: float
    per_class: list[float]  # accuracy of each true class
    confusion: np.ndarray  # [num_classes, num_classes], rows = true, columns = predicted
    examples: int

    def to_dict(self, classes=None) -> dict:
        out = {"loss": self.loss, "accuracy": self.accuracy, "examples": self.examples,
               "per_class": self.per_class, "confusion": self.confusion.tolist()}
        if classes is not None:
            out["classes"] = list(classes)
        return out


def evaluate(session, graph, images: np.ndarray, labels: np.ndarray, num_classes: int,
             batch_size: int = EVAL_BATCH) -> Metrics:
    """Run a model over a whole split in large batches.

    Args:
        session: a ``tf.compat.v1.Session`` holding the trained variables.
        graph: the trainer's :class:`~zoo_core.trainer.ModelGraph`.
        images: float32 [N, H, W, C]; labels: int [N].
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
            {graph.images: images[start:stop], graph.labels: labels[start:stop]},
        )
        total_loss += float(np.sum(losses))
        predictions[start:stop] = preds
    return summarize(labels, predictions, total_loss / max(n, 1), num_classes)


def summarize(labels: np.ndarray, predictions: np.ndarray, loss: float, num_classes: int) -> Metrics:
    """Metrics from true labels and predicted classes."""
    labels = np.asarray(labels, dtype=np.int64)
    confusion = np.bincount(labels * num_classes + predictions,
                            minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(num_classes), where=support > 0)
    accuracy = float(np.trace(confusion) / max(len(labels), 1))
    return Metrics(float(loss), accuracy, [float(a) for a in per_class], confusion, len(labels))
