"""What training and evaluation measure: per-epoch metric names and a split's metrics.

No TensorFlow, and numpy only when metrics are computed: the store and the leaderboard,
which light commands use, read these too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# The metrics recorded for every epoch, in the store and in checkpoint.json.
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")


@dataclass
class Metrics:
    """What one evaluation of a split measured."""

    loss: float
    accuracy: float
    per_class: list[float]  # accuracy of each true class
    confusion: np.ndarray  # [num_classes, num_classes], rows = true, columns = predicted
    examples: int
    # per example, from evaluate(): the predicted class (int64 [N]) and its softmax
    # probability (float32 [N]); not part of to_dict()
    predicted: np.ndarray | None = None
    confidence: np.ndarray | None = None

    def to_dict(self, classes=None) -> dict:
        out = {"loss": self.loss, "accuracy": self.accuracy, "examples": self.examples,
               "per_class": self.per_class, "confusion": self.confusion.tolist()}
        if classes is not None:
            out["classes"] = list(classes)
        return out


def summarize(labels: np.ndarray, predictions: np.ndarray, loss: float, num_classes: int) -> Metrics:
    """Metrics from true labels and predicted classes."""
    import numpy as np  # here, not at the top: keeps numpy out of `zoo list` and the store

    labels = np.asarray(labels, dtype=np.int64)
    confusion = np.bincount(labels * num_classes + predictions,
                            minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(num_classes), where=support > 0)
    accuracy = float(np.trace(confusion) / max(len(labels), 1))
    return Metrics(float(loss), accuracy, [float(a) for a in per_class], confusion, len(labels))


def train_loss_terms(config) -> list[str]:
    """What the training loss adds to the validation loss's plain cross-entropy, from a
    run's settings: ``["label smoothing 0.1", "weight decay 0.0005"]``, [] for none. (The
    training loss is the objective each step minimised, in training mode: with dropout.)"""
    terms = []
    if config.get("label_smoothing"):
        terms.append(f"label smoothing {config['label_smoothing']:g}")
    if config.get("weight_decay"):
        terms.append(f"weight decay {config['weight_decay']:g}")
    return terms


def loss_note(config) -> str:
    """A line saying how the training and validation losses differ, or "" when they are the
    same cross-entropy."""
    terms = train_loss_terms(config)
    if not terms:
        return ""
    return (f"train loss: the training objective, cross-entropy with {' and '.join(terms)}; "
            "val loss: plain cross-entropy (the two are not comparable)")
