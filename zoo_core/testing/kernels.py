"""Two kernels of one model computing the same function: the check a faster kernel passes
before a plugin offers it (DESIGN.md, "Precision and speed").

A plugin whose hyperparameter chooses between its original graph (say BasicLSTMCell +
static_rnn, ``kernel=basic``) and a faster one computing the same function
(``kernel=sequence``) shows it with :func:`assert_same_function`, for each configuration it
cares about::

    from zoo_core import testing

    @pytest.mark.parametrize("overrides", [{}, {"layers": 2}, {"bidirectional": True}])
    def test_sequence_kernel_matches_the_basic_one(overrides):
        testing.assert_same_function(my_plugin.build, my_plugin.HPARAMS, overrides=overrides)

:func:`loss_graph` is the graph it compares (logits, loss and gradients), for a plugin's own
checks on it, such as a checkpoint of one kernel restored into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.testing.helpers import defaults, real_images
from zoo_core.testing.subject import session


@dataclass
class LossGraph:
    """A model's graph with its loss and gradients: ``images`` (the placeholder), ``logits``,
    ``variables`` (trainable, in creation order), ``gradients`` (of the mean cross-entropy,
    one per variable and the last one with respect to ``images``), ``init`` (every
    variable's initializer)."""

    graph: Any
    images: Any
    logits: Any
    variables: list
    gradients: list
    init: Any

    def shapes(self) -> list[tuple[str, list[int]]]:
        """Each variable's name and shape, in creation order."""
        return [(v.name, v.shape.as_list()) for v in self.variables]


def loss_graph(build: Callable, hparams: dict[str, Any], images_shape: tuple[int, ...],
               labels: np.ndarray, *, num_classes: int = 10, seed: int = 0) -> LossGraph:
    """Build ``build`` with ``hparams`` (every value given) in a fresh graph, graph seed
    first, in scope ``model`` with ``training`` off, and its loss over ``labels`` (fixed,
    one per image) and the gradients of that loss."""
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        images = v1.placeholder(tf.float32, images_shape)
        training = v1.placeholder_with_default(False, [])
        with v1.variable_scope("model"):
            logits = build(images, num_classes=num_classes, hparams=dict(hparams),
                           training=training)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))
        variables = v1.trainable_variables()
        gradients = tf.gradients(loss, variables + [images])
        init = v1.global_variables_initializer()
    return LossGraph(graph, images, logits, variables, gradients, init)


def _evaluate(model: LossGraph, weights: dict[str, np.ndarray], x: np.ndarray):
    """(logits, {variable name or "images": gradient}) with ``weights`` loaded by name."""
    with model.graph.as_default(), session(model.graph) as sess:
        sess.run(model.init)  # the variables that are not trainable too
        for v in model.variables:
            v.load(weights[v.name], sess)
        logits, gradients = sess.run([model.logits, model.gradients], {model.images: x})
    return logits, dict(zip([v.name for v in model.variables] + ["images"], gradients))


def assert_same_function(build: Callable, declared: dict[str, Any], *,
                         overrides: dict[str, Any] | None = None, option: str = "kernel",
                         reference: Any = "basic", candidate: Any = "sequence",
                         images: int = 32, dataset: str = "fashion", weight_std: float = 0.05,
                         bias_std: float = 0.5, rtol: float = 1e-5, atol: float = 1e-6,
                         seed: int = 0) -> None:
    """Assert that ``option=candidate`` computes what ``option=reference`` does.

    Both are built with the declared defaults, ``overrides`` on top: they must have the same
    trainable variables (names, shapes, order), so that a checkpoint of one loads into the
    other. Then the same random weights (normal, ``weight_std``; ``bias_std`` for variables
    named ``bias``, far from a zero start, so that every path matters) are loaded into both,
    and on the first ``images`` real training images of ``dataset`` they must give the same
    logits, and the same gradients of the loss with respect to every variable and to the
    images, within ``rtol`` and ``atol`` (float32 rounding when a kernel sums the same
    products in another order). Keep ``weight_std`` small enough for a recurrent model not to
    be chaotic: there rounding grows over the steps whatever the kernel.

    Raises:
        AssertionError: naming what differs (the variables, the logits, or which gradient),
            or a gradient that is zero everywhere (it would test nothing).
    """
    values = {**defaults(declared), **(overrides or {})}
    x, y = real_images(images, dataset)
    x = x.astype(np.float32)
    built = {kernel: loss_graph(build, {**values, option: kernel}, x.shape, y, seed=seed)
             for kernel in (reference, candidate)}
    ref, cand = built[reference], built[candidate]
    assert cand.shapes() == ref.shapes(), (
        f"{option}={candidate} has other variables than {option}={reference}: "
        f"{cand.shapes()} != {ref.shapes()}")
    rng = np.random.default_rng(seed)
    weights = {v.name: rng.normal(0, bias_std if "bias" in v.name else weight_std,
                                  v.shape.as_list()).astype(np.float32) for v in ref.variables}
    ref_logits, ref_grads = _evaluate(ref, weights, x)
    cand_logits, cand_grads = _evaluate(cand, weights, x)
    np.testing.assert_allclose(cand_logits, ref_logits, rtol=rtol, atol=atol,
                               err_msg=f"the logits of {option}={candidate} and {reference}")
    for name, g in ref_grads.items():
        assert np.abs(g).max() > 0, f"{name}: a gradient that is zero tests nothing"
        np.testing.assert_allclose(cand_grads[name], g, rtol=rtol, atol=atol,
                                   err_msg=f"the gradient of {name}, {option}={candidate} "
                                           f"and {reference}")
