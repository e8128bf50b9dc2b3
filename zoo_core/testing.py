"""Helpers for testing graph builders (the zoo's and third parties').

    from zoo_core import testing

    def test_logits():
        images, _ = testing.real_images(16)
        logits = testing.run_builder(my_plugin.build, images, my_plugin.HPARAMS)
        assert logits.shape == (16, 10)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from zoo_core.spec import as_hparam


@functools.lru_cache(maxsize=4)
def _dataset(name: str):
    from zoo_core import datasets, registry

    spec = registry.read_catalogue().datasets[name]
    return datasets.load(spec, download_ok=False)


def real_images(n: int = 32, dataset: str = "fashion") -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` training images and labels of a real dataset (float32, [0, 1])."""
    data = _dataset(dataset)
    return data.x_train[:n], data.y_train[:n]


def defaults(hparams: dict[str, Any]) -> dict[str, Any]:
    """Declared hyperparameters (HParam or bare defaults) -> their default values."""
    return {k: as_hparam(k, v).default for k, v in hparams.items()}


def run_builder(build: Callable, images: np.ndarray, hparams: dict[str, Any], *,
                num_classes: int = 10, training: bool = False, seed: int = 0,
                overrides: dict[str, Any] | None = None) -> np.ndarray:
    """Build the model in a fresh graph, initialise it and return its logits for ``images``."""
    from zoo_core._tf import seed_graph
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    values = {**defaults(hparams), **(overrides or {})}
    graph = tf.Graph()
    with graph.as_default():
        seed_graph(tf, seed)
        x = tf.compat.v1.placeholder(tf.float32, [None, *images.shape[1:]], name="images")
        is_training = tf.compat.v1.placeholder_with_default(False, [], name="training")
        logits = build(x, num_classes=num_classes, hparams=values, training=is_training)
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(init)
        return sess.run(logits, {x: images, is_training: training})
