"""K optimizer steps in one ``Session.run``: a ``while_loop`` over a fed ``[K, batch]``
index matrix into the training data the graph holds.

:func:`zoo_core.train.graph.build_graph` adds a :class:`StepLoop` after the single
step's graph, built from the same pieces (:mod:`zoo_core.train.step`), so that
looping changes how steps are dispatched, never what they compute. A model for which
that cannot hold (:func:`loop_problem`, and the checks after building) trains one step
per call, and the graph says why.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Mapping

from zoo_core.catalogue.specs import ModelSpec
from zoo_core.settings import TrainerSettings
from zoo_core.train.blame import first_line
from zoo_core.train.forward import Forward, forward
# the single step's pieces: the loop body is built from the very same ones
from zoo_core.train.step import Loss, Rate, augment, learning_rate, train_step


class NoLoop(Exception):
    """The model cannot train in a :class:`StepLoop` exactly as in single steps; why."""


@dataclass
class LoopParts:
    """What the loop body rebuilds from: the model, the settings, the single step's pieces."""

    model: ModelSpec
    hparams: Mapping[str, Any]
    num_classes: int
    settings: TrainerSettings
    seed: int
    total_steps: int  # for the learning-rate schedule
    inputs: Any  # _Inputs
    net: Forward  # the single step's forward pass: its variables are the loop's
    optimizer: Any  # the single step's optimizer: the same slots (and Adam's beta powers)
    rate: Rate
    ema: Any = None  # the single step's Ema: the same averages, the same update


# Stateful random ops: in a loop body they would draw from another stream than the single
# step's op (dropout masks), so the steps would not be the same steps.
_RANDOM_OPS = ("Random", "TruncatedNormal", "Multinomial")


class StepLoop:
    """K optimizer steps in one ``Session.run``: a ``while_loop`` over a fed ``[K, batch]``
    index matrix, one row per step.

    Each step gathers its batch, augments it keyed by (seed, its global step), calls the
    builder again on the same variables (``reuse``), and applies the optimizer with its
    learning rate and the model's UPDATE_OPS built in the body (then updates the weights'
    average, with ``ema``): the same math as K single steps.
    The running sums (``loss_sum``, ``acc_sum``, float64, weighted by examples) are fed
    in and fetched back, so an epoch sums in the same order as single steps. The loop
    stops after a step whose loss is not finite.

    Raises:
        NoLoop: the body reads a variable once per call, draws stateful random numbers,
            or created variables (the builder ignores reuse); or building it failed.
    """

    def __init__(self, tf, parts: LoopParts):
        v1 = tf.compat.v1
        graph = v1.get_default_graph()
        first_op = len(graph.get_operations())
        variables = len(v1.global_variables())
        with v1.name_scope("steps"):
            self.indices = v1.placeholder(tf.int32, [None, None], name="indices")
            self.loss_sum = v1.placeholder_with_default(tf.constant(0.0, tf.float64), [],
                                                        name="loss_sum")
            self.acc_sum = v1.placeholder_with_default(tf.constant(0.0, tf.float64), [],
                                                       name="acc_sum")
            start = parts.inputs.global_step.read_value()
            try:
                self.outputs = v1.while_loop(
                    lambda i, loss_sum, acc_sum, loss, lr: (
                        (i < tf.shape(self.indices)[0]) & tf.math.is_finite(loss)),
                    lambda *state: self._body(tf, parts, start, *state),
                    [tf.constant(0), self.loss_sum, self.acc_sum, tf.constant(0.0),
                     tf.constant(0.0)],
                    parallel_iterations=1, back_prop=False, name="loop")
            except Exception as e:  # noqa: BLE001 - the single step still works
                raise NoLoop(f"building it in a loop failed: {type(e).__name__}: "
                             f"{first_line(e)}") from e
        if len(v1.global_variables()) != variables:
            raise NoLoop("its builder created new variables when called again (use "
                         "tf.compat.v1.get_variable or layers, which reuse them)")
        new_ops = graph.get_operations()[first_op:]
        stale = _stale_read(new_ops, start)
        if stale:
            raise NoLoop(f"its loop body would read {stale!r} once per call, not once per step")
        randoms = _random_ops(graph, new_ops)
        if randoms:
            raise NoLoop(_RANDOM_PROBLEM.format(", ".join(randoms)))

    def _body(self, tf, p: LoopParts, start, i, loss_sum, acc_sum, _loss, _lr):
        v1 = tf.compat.v1
        step = start + tf.cast(i, start.dtype)
        index = self.indices[i]
        images = augment(tf, p.inputs.gather(tf, index), p.settings, p.seed, step)
        images.set_shape(p.inputs.images.shape)  # as the single step's builder sees them
        labels = tf.gather(p.inputs.y_all, index)
        before = list(v1.get_collection(v1.GraphKeys.UPDATE_OPS))
        with _fresh_reads(v1.global_variables()):
            net = forward(p.model, images, tf.constant(True), num_classes=p.num_classes,
                          hparams=p.hparams, reuse=True)
        updates = [u for u in v1.get_collection(v1.GraphKeys.UPDATE_OPS)
                   if not any(u is b for b in before)]
        loss = Loss(tf, Forward(net.logits, p.net.trainable, p.net.params), labels,
                     p.num_classes, p.settings)
        lr = learning_rate(tf, p.settings, step, p.total_steps)
        p.rate.value = lr
        with tf.control_dependencies([step]):
            train_op = train_step(tf, p.optimizer, loss.total, p.net.trainable, p.settings,
                                 p.inputs.global_step, updates, p.ema)
        examples = tf.cast(tf.size(index), tf.float64)
        with tf.control_dependencies([train_op]):
            return (i + 1, loss_sum + tf.cast(loss.total, tf.float64) * examples,
                    acc_sum + tf.cast(loss.accuracy, tf.float64) * examples,
                    tf.identity(loss.total), tf.identity(lr))


_RANDOM_PROBLEM = ("it draws stateful random numbers ({}: dropout?), which a loop would draw "
                   "from another stream than single steps")


def loop_problem(tf, graph, loss) -> str:
    """Why the single step's graph cannot be looped exactly, seen before building a loop:
    regularization losses, or stateful random ops in the loss's ancestors; or ""."""
    v1 = tf.compat.v1
    if v1.get_collection(v1.GraphKeys.REGULARIZATION_LOSSES):
        return "the model adds regularization losses, which a loop would compute once per call"
    seen, todo = set(), [loss.op]
    while todo:
        op = todo.pop()
        if op.name not in seen:
            seen.add(op.name)
            todo.extend(t.op for t in op.inputs)
    randoms = _random_ops(graph, [graph.get_operation_by_name(name) for name in seen])
    return _RANDOM_PROBLEM.format(", ".join(randoms)) if randoms else ""


@contextlib.contextmanager
def _fresh_reads(variables):
    """Variables read afresh where they are used, while building the loop body.

    ``static_rnn`` sets a caching device, so its cells' variables hold one read made when
    they were created; inside a loop that read would be made once per call, and every
    step of it would see the weights as they were at its start. ``_stale_read`` checks
    that no such read is left.
    """
    cached = [(v, v._cached_value) for v in variables  # noqa: SLF001 - see above
              if getattr(v, "_cached_value", None) is not None]
    for v, _ in cached:
        v._cached_value = None  # noqa: SLF001
    try:
        yield
    finally:
        for v, value in cached:
            v._cached_value = value  # noqa: SLF001


def _stale_read(new_ops, start) -> str:
    """The variable a loop reads from outside its body (once per call), or ""."""
    entering = [t for op in new_ops if op.type in ("While", "StatelessWhile", "Enter")
                for t in op.inputs]
    seen, todo = set(), [t.op for t in entering]
    while todo:
        op = todo.pop()
        if op.name in seen or op is start.op:
            continue
        seen.add(op.name)
        if op.type == "ReadVariableOp":
            return op.inputs[0].op.name
        todo.extend(t.op for t in op.inputs)
    return ""


def _random_ops(graph, new_ops) -> list[str]:
    """The stateful random ops among ``new_ops`` and the graph's functions (a while_loop
    body, its conditionals), by type."""
    types = {op.type for op in new_ops}
    for fn in graph.as_graph_def().library.function:
        types.update(node.op for node in fn.node_def)
    return sorted(t for t in types
                  if any(r in t for r in _RANDOM_OPS) and not t.startswith(("Stateless", "Stateful")))
