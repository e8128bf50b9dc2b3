"""A run's sample of test predictions: which test images ``predictions.png`` shows, kept in
``predictions.npz`` beside metrics.json so that ``zoo show`` can draw a missing picture.

The sample is a grid of :data:`GRID` x :data:`GRID` test images: the most confident mistakes
first (up to half the grid), then a fixed random sample of the rest (the same images for
every run on the same test split). The file holds every test image's predicted class and its
probability, and the sample's images (uint8), labels and positions.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo_core.paths import RunFiles

GRID = 6  # images per row and column of predictions.png
SAMPLE_SEED = 0  # the fixed random sample


@dataclass
class Sample:
    """The test images a run's predictions picture shows."""

    index: np.ndarray  # int64 [n]: their positions in the test split
    images: np.ndarray  # uint8 [n, H, W, C]
    labels: np.ndarray  # int64 [n]: the true classes
    predicted: np.ndarray  # int64 [n]
    confidence: np.ndarray  # float32 [n]: the predicted class's probability
    classes: tuple[str, ...]

    @property
    def wrong(self) -> np.ndarray:
        return self.predicted != self.labels


def pick(labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray,
         size: int = GRID * GRID) -> np.ndarray:
    """The positions to show: the most confident mistakes (up to half of ``size``), then a
    fixed random sample of the other images."""
    wrong = np.flatnonzero(predicted != labels)
    mistakes = wrong[np.argsort(-confidence[wrong], kind="stable")][:size // 2]
    others = np.setdiff1d(np.arange(len(labels)), mistakes)
    rng = np.random.default_rng(SAMPLE_SEED)
    rest = rng.choice(others, size=min(size - len(mistakes), len(others)), replace=False)
    return np.concatenate([mistakes, np.sort(rest)]).astype(np.int64)


def sample(images: np.ndarray, labels: np.ndarray, predicted: np.ndarray,
           confidence: np.ndarray, classes) -> Sample:
    """The sample of a test split (uint8 images, or floats in [0, 1]) and its predictions."""
    index = pick(labels, predicted, confidence)
    pixels = np.asarray(images[index])
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    return Sample(index, pixels, np.asarray(labels)[index].astype(np.int64),
                  np.asarray(predicted)[index].astype(np.int64),
                  np.asarray(confidence)[index].astype(np.float32), tuple(classes))


def save(run_dir: Path, chosen: Sample, predicted: np.ndarray, confidence: np.ndarray) -> Path:
    """Write ``predictions.npz`` atomically: the sample, and every test image's predicted
    class (``test_predicted``) and its probability (``test_confidence``)."""
    target = Path(run_dir) / RunFiles.TEST_PREDICTIONS
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez_compressed(
                out, index=chosen.index, images=chosen.images, labels=chosen.labels,
                predicted=chosen.predicted, confidence=chosen.confidence,
                classes=np.array(chosen.classes, dtype=str),
                test_predicted=np.asarray(predicted, np.int16),
                test_confidence=np.asarray(confidence, np.float32))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load(run_dir: Path) -> Sample | None:
    """The sample ``predictions.npz`` holds; None when it is missing or unreadable."""
    try:
        with np.load(Path(run_dir) / RunFiles.TEST_PREDICTIONS, allow_pickle=False) as f:
            return Sample(f["index"], f["images"], f["labels"], f["predicted"],
                          f["confidence"], tuple(str(c) for c in f["classes"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
