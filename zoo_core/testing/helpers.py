"""Helpers for a plugin's own tests (an example is at the top of :mod:`zoo_core.testing`):
real images, default values, running a builder as the trainer calls it, and a short real
training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from zoo_core import data
from zoo_core.catalogue import open_zoo

from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data import to_float
from zoo_core.settings import as_hparam
from zoo_core.testing.subject import dataset as load_dataset
from zoo_core.testing.subject import forward_pass, session
from zoo_core.train import loop
from zoo_core.train.forward import BuilderError


def real_images(n: int = 32, dataset: str = "fashion") -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` training images and labels of a real dataset (float32, [0, 1])."""
    data = load_dataset(dataset)
    return to_float(data.x_train[:n]), data.y_train[:n]


def defaults(hparams: dict[str, Any]) -> dict[str, Any]:
    """Declared hyperparameters (HParam or bare defaults) -> their default values."""
    return {k: as_hparam(k, v).default for k, v in hparams.items()}


def forward_graph(build: Callable, hparams: dict[str, Any], *,
                  overrides: dict[str, Any] | None = None, shape: tuple[int, ...] = (28, 28, 1),
                  num_classes: int = 10, seed: int = 0):
    """The model's forward pass alone in a fresh graph, built as the trainer calls the
    builder (graph seed first, scope ``model``, a ``training`` tensor), for a plugin's tests
    of its graph: its ops, its variables, its logits for weights of the test's choosing.

    ``hparams`` are the declared ones (their defaults are used), ``overrides`` on top.
    What the builder raises is raised as it is; logits the trainer would refuse raise
    :class:`zoo_core.errors.PluginError`.

    Returns:
        the pass: ``.graph`` (finalized), ``.images`` (a float32 ``[None, *shape]``
        placeholder), ``.training`` (False unless fed), ``.logits``, ``.init`` (every
        variable's initializer), ``.trainable`` (the trainable variables), ``.params``
        (their total size).
    """
    values = {**defaults(hparams), **(overrides or {})}
    model = ModelSpec(getattr(build, "__name__", "builder"), build, "", {})
    try:
        return forward_pass(model, tuple(shape), num_classes, values, seed)
    except BuilderError as e:
        raise e.error from None


def run_builder(build: Callable, images: np.ndarray, hparams: dict[str, Any], *,
                num_classes: int = 10, training: bool = False, seed: int = 0,
                overrides: dict[str, Any] | None = None) -> np.ndarray:
    """Build the model in a fresh graph, initialise it and return its logits for ``images``.

    The builder is called as the trainer calls it (graph seed first, scope ``model``,
    a ``training`` tensor); what it raises is raised as it is. Logits the trainer
    would refuse raise :class:`zoo_core.errors.PluginError`.
    """
    f = forward_graph(build, hparams, overrides=overrides, shape=images.shape[1:],
                      num_classes=num_classes, seed=seed)
    with session(f.graph) as sess:
        sess.run(f.init)
        return sess.run(f.logits, {f.images: images, f.training: training})


def short_run(model: str, directory: Path | str, *, dataset: str = "fashion",
              limit: int | None = 3000, overrides: dict[str, Any] | None = None,
              seed: int = 0) -> loop.TrainResult:
    """Train an installed model as ``zoo run MODEL --dataset DATASET --limit LIMIT`` does
    (its settings merged from the plugin, registry.toml and ``overrides``), with its
    checkpoints in ``directory``, and record nothing. ``limit`` takes the first training
    images only; the test split is always whole.

    Returns:
        the trainer's result: ``result.test.accuracy`` and ``result.test.examples`` (the whole
        test split), ``result.best_epoch``, ``result.epochs`` (a record per epoch).
    """
    resolved = open_zoo().resolve(model, dataset, overrides=overrides)
    loaded = data.load(resolved.dataset, limit=limit)
    return loop.train(resolved.model, resolved.hparams, resolved.trainer, loaded, seed,
                      Path(directory))
