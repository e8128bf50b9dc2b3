"""Helpers for a plugin's own tests (an example is at the top of :mod:`zoo_core.testing`):
real images, default values, and running a builder as the trainer calls it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data import to_float
from zoo_core.settings import as_hparam
from zoo_core.testing.subject import dataset as load_dataset
from zoo_core.testing.subject import forward_pass, session
from zoo_core.train.forward import BuilderError


def real_images(n: int = 32, dataset: str = "fashion") -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` training images and labels of a real dataset (float32, [0, 1])."""
    data = load_dataset(dataset)
    return to_float(data.x_train[:n]), data.y_train[:n]


def defaults(hparams: dict[str, Any]) -> dict[str, Any]:
    """Declared hyperparameters (HParam or bare defaults) -> their default values."""
    return {k: as_hparam(k, v).default for k, v in hparams.items()}


def run_builder(build: Callable, images: np.ndarray, hparams: dict[str, Any], *,
                num_classes: int = 10, training: bool = False, seed: int = 0,
                overrides: dict[str, Any] | None = None) -> np.ndarray:
    """Build the model in a fresh graph, initialise it and return its logits for ``images``.

    The builder is called as the trainer calls it (graph seed first, scope ``model``,
    a ``training`` tensor); what it raises is raised as it is. Logits the trainer
    would refuse raise :class:`zoo_core.errors.PluginError`.
    """
    values = {**defaults(hparams), **(overrides or {})}
    model = ModelSpec(getattr(build, "__name__", "builder"), build, "", {})
    try:
        f = forward_pass(model, images.shape[1:], num_classes, values, seed)
    except BuilderError as e:
        raise e.error from None
    with session(f.graph) as sess:
        sess.run(f.init)
        return sess.run(f.logits, {f.images: images, f.training: training})
