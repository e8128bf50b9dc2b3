"""Averages of a model's trainable weights, which :func:`zoo_core.train.graph.build_graph`
adds to a training graph: an exponential moving average updated after every step
(:class:`Ema`, the ``ema`` setting) or the mean of the weights at the ends of the last
epochs (:class:`Swa`, stochastic weight averaging, the ``swa`` setting).
"""

from __future__ import annotations


class _Averages:
    """Shadows of the trainable weights, their swap and the best checkpoint's saver: what
    :class:`Ema` and :class:`Swa` share (they differ in how the shadows are updated)."""

    def __init__(self, tf, trainable):
        v1 = tf.compat.v1
        with v1.name_scope("ema/"):  # at the top, whatever the scope: ema/model/...
            self.pairs = [(v, v1.Variable(v.initial_value, trainable=False,
                                          name=v.op.name)) for v in trainable]
            weights = [v.read_value() for v, _ in self.pairs]
            shadows = [s.read_value() for _, s in self.pairs]
            with tf.control_dependencies(weights + shadows):
                self.swap = tf.group(
                    *[v.assign(a, read_value=False) for (v, _), a in zip(self.pairs, shadows)],
                    *[s.assign(w, read_value=False) for (_, s), w in zip(self.pairs, weights)],
                    name="swap")

    def averaged_saver(self, tf):
        """A Saver of every variable but the shadows, each trainable one's name holding its
        shadow's value: the best checkpoint, as predicting and packing read it."""
        v1 = tf.compat.v1
        shadow_of = {id(v): s for v, s in self.pairs}
        shadows = {id(s) for _, s in self.pairs}
        return v1.train.Saver(var_list={v.op.name: shadow_of.get(id(v), v)
                                        for v in v1.global_variables() if id(v) not in shadows},
                              max_to_keep=None)


class Ema(_Averages):
    """An exponential moving average of the trainable weights (``ema``, the decay).

    Each trainable variable ``model/...`` has a shadow ``ema/model/...`` (not trainable,
    outside the model's scope, starting at the variable's initial value), updated after
    every optimizer step, in single steps and in the steps' loop alike, as
    ``tf.train.ExponentialMovingAverage(decay, num_updates=global_step)`` does:
    ``shadow -= (1 - d) * (shadow - weight)`` with ``d = min(decay, (1 + t) / (10 + t))``
    after step ``t`` (1, 2, ...), so that the average forgets the initial weights early in
    a run (0.9 at step 80, 0.99 at step 890). Batch norm's moving statistics (not
    trainable) are not averaged.

    Training always runs on the raw weights, and the last checkpoint (every variable)
    holds them and the shadows, so a resumed run continues exactly. The averaged weights
    are used through two things only: :attr:`swap` exchanges the values of the weights and
    their shadows (both read, then both assigned: exact, and its own inverse), run before
    and after the validation split is evaluated (:meth:`ModelGraph.averaged`); and
    :meth:`averaged_saver` writes the best checkpoint with the shadows' values under the
    model variables' own names. So the test, ``zoo evaluate``, ``predict``, ``export``
    and packs, which restore the model's own variables from the best checkpoint, use the
    averages without knowing of them.
    """

    def __init__(self, tf, trainable, decay: float, global_step):
        self.decay, self.global_step = decay, global_step
        super().__init__(tf, trainable)

    def update(self, tf, after):
        """The averages' update, run after the op ``after`` (the optimizer's step, which
        counts the global step)."""
        with tf.control_dependencies([after]):
            t = tf.cast(self.global_step.read_value(), tf.float32)
            decay = tf.minimum(tf.constant(self.decay, tf.float32), (1.0 + t) / (10.0 + t))
            rate = 1.0 - decay
            return tf.group(*[s.assign_sub((s.read_value() - v.read_value()) * rate,
                                           read_value=False) for v, s in self.pairs])


class Swa(_Averages):
    """Stochastic weight averaging (Izmailov et al., 2018; ``swa``, a number of epochs N):
    the mean of the trainable weights at the ends of the run's last N epochs.

    The shadows, the swap and the best checkpoint's saver are those :class:`Ema` uses too
    (so whatever uses the averages does so unknowingly, as with ``ema``); only the update
    differs. It runs once an epoch, after its last step and before its validation, as
    ``shadow = shadow * (1 - rate) + weight * rate`` with the rate :meth:`feed` gives: 1
    (the shadow becomes the weights, so the epochs before the window validate the raw
    weights) until the window, then 1/2, 1/3, ... (the running mean). The rate depends on
    the epoch alone, and the last checkpoint holds the shadows, so a resumed run continues
    exactly.
    """

    def __init__(self, tf, trainable, epochs: int, window: int):
        super().__init__(tf, trainable)
        self.before = max(0, epochs - window)  # the epochs before the window
        v1 = tf.compat.v1
        with v1.name_scope("swa/"):
            self.rate = v1.placeholder(tf.float32, [], name="rate")
            keep = 1.0 - self.rate  # so that rate 1 copies the weights exactly
            self.fold = tf.group(*[s.assign(s.read_value() * keep + v.read_value() * self.rate,
                                            read_value=False) for v, s in self.pairs],
                                 name="fold")

    def feed(self, epoch: int) -> dict:
        """The feed of :attr:`fold` after ``epoch`` (1-based): rate 1 before the window (and
        at its first epoch), then 1/k at its k-th."""
        return {self.rate: 1.0 / max(1, epoch - self.before)}
