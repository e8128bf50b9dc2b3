"""Batch normalization's statistics, estimated again before each evaluation ("precise BN").

A batch-normalized model keeps moving averages of its batch statistics (batch norm's
``moving_mean`` and ``moving_variance``), updated by its ``UPDATE_OPS`` at every training
step: ``v <- v - d * (v - x)`` with ``x`` the batch's statistic and ``d = 1 - momentum``.
With momentum 0.99 they need a few hundred steps to forget their initial values and the
early weights' statistics, so a short run evaluates far below what it trained to (the
default cnn, one epoch on 6,000 images: 77 % on its training batches, 24 % on test).

:class:`MovingStats` replaces them, before each evaluation, by the plain average of the
statistics of ``bn_batches`` training batches computed with the current weights: what the
moving averages converge to after a long run, available after any number of steps. It
needs nothing from the plugin. It treats the model's update ops as a black box and relies
only on each being such a moving average of a non-trainable variable: for each batch it
sets the variables to 0 and runs the update ops, so they hold ``d * x``; ``d`` is read once
per session (:meth:`MovingStats._decays`). A variable the update ops leave alone, or change
in any other way, keeps its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

# The value the statistics are set to when their decay is read: float32 keeps (1 - d) * LARGE
# to 1/16, so d to about 6e-8.
LARGE = 1e6


@dataclass
class MovingStats:
    """The non-trainable variables a model's update ops may keep, and the ops that set and
    read them; built by :func:`moving_stats` in the graph before it is finalized."""

    variables: list  # the model's non-trainable floating-point variables
    update_ops: list  # the model's UPDATE_OPS
    feeds: list  # one placeholder per variable
    assign: Any  # sets each variable to its feed
    read: list  # each variable's value
    reset: Any  # sets each variable to 0
    read_and_reset: list  # [each variable's value, then reset]
    # per variable, its decay d, or None: not a moving average (left as it is); read once
    decays: list | None = field(default=None)

    def refresh(self, session, feeds: Iterable[dict]) -> None:
        """Set each moving average to the mean of its statistic over the batches ``feeds``
        (each a feed dict for a training-mode step's forward pass, without its update of
        the weights); the other variables keep their values."""
        feeds = list(feeds)
        if not feeds:
            return
        before = session.run(self.read)
        if self.decays is None:
            self.decays = self._decays(session, before, feeds[0])
        if not any(d is not None for d in self.decays):
            return
        sums = [np.zeros_like(v, dtype=np.float64) for v in before]
        session.run(self.reset)
        for feed in feeds:
            session.run(self.update_ops, feed)
            for total, value in zip(sums, session.run(self.read_and_reset)[0]):
                total += value
        after = [v if d is None else (s / (len(feeds) * d)).astype(v.dtype)
                 for v, s, d in zip(before, sums, self.decays)]
        session.run(self.assign, dict(zip(self.feeds, after)))

    def _decays(self, session, before: list, feed: dict) -> list:
        """Each variable's decay ``d`` (``v <- v - d (v - x)``), or None where the update
        ops don't move it so; the variables keep their values.

        The same batch from 0 and from :data:`LARGE` gives ``d x`` and ``(1 - d) L + d x``:
        their difference is ``(1 - d) L`` whatever the statistic. Rounded to 4 significant
        digits (a momentum is a short decimal: 0.99, 0.997), ``d`` is the same number in
        every session, so a resumed run's statistics are the uninterrupted run's.
        """
        moved = []
        for start in (0.0, LARGE):
            session.run(self.assign, dict(zip(self.feeds, [np.full_like(v, start) for v in before])))
            session.run(self.update_ops, feed)
            moved.append(session.run(self.read))
        session.run(self.assign, dict(zip(self.feeds, before)))
        decays = []
        for low, high in zip(*moved):
            d = 1.0 - (high.astype(np.float64) - low) / LARGE
            ok = d.size and np.all(d > 0) and np.all(d <= 1) and np.ptp(d) <= 1e-3 * np.max(d)
            decays.append(float(f"{np.mean(d):.4g}") if ok else None)
        return decays


def moving_stats(tf, scope: str) -> MovingStats | None:
    """The model's moving statistics in the current graph (the non-trainable floating-point
    variables under ``scope``, and ``UPDATE_OPS``), or None when it keeps none."""
    v1 = tf.compat.v1
    update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
    trainable = {v.ref() for v in v1.trainable_variables()}
    variables = [v for v in v1.global_variables(scope=scope + "/")
                 if v.ref() not in trainable and v.dtype.base_dtype.is_floating]
    if not update_ops or not variables:
        return None
    with v1.name_scope("moving_stats"):
        feeds = [v1.placeholder(v.dtype.base_dtype, v.shape) for v in variables]
        assign = tf.group(*[v.assign(f) for v, f in zip(variables, feeds)])
        read = [tf.identity(v.read_value()) for v in variables]
        with tf.control_dependencies(read):
            reset = tf.group(*[v.assign(tf.zeros_like(v)) for v in variables])
        zero = tf.group(*[v.assign(tf.zeros_like(v)) for v in variables])
    return MovingStats(variables, update_ops, feeds, assign, read, zero, [read, reset])
