"""Checks of how a model trains: the ``training`` switch, seeds, gradients, fitting.

``training_flag``, ``seed_determinism``, ``all_variables_train``, ``overfit_one_batch`` and
``short_run_evaluation``: these run the trainer's own graph
(:meth:`~zoo_core.testing.subject.Subject.trained`) on the training batch.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.testing.kit import (
    CLASS_COUNTS, DROPOUT_LIKE, OVERFIT_STEPS, OVERFIT_TARGET, SEED_STEPS, SHORT_RUN_GAP,
    SHORT_RUN_STEPS, TRAIN_IMAGES, Fail, NotApplicable, check, max_diff, random_images,
)
from zoo_core.testing.subject import Subject, session


@check("training_flag", "the training tensor switches dropout and batch norm on, and only "
       "while training")
def training_flag(s: Subject) -> str:
    tf = import_tf()
    switches = _dropout_switches(s.spec, s.hparams)
    values = {**s.hparams, **switches}
    shape = s.shapes[0]
    f = s.forward(shape, CLASS_COUNTS[0], values)
    bn = _batch_norm_state(f.graph) is not None
    depends = _depends_on(f.logits, f.training)
    if not switches and not bn and not depends:
        raise NotApplicable("no dropout-like hyperparameter (a float or bool whose name "
                            "contains 'drop' or 'keep_prob'), no batch norm, and the logits "
                            "do not depend on `training`")
    what = []
    if switches:
        what.append(", ".join(f"{k}={v}" if "drop" in k else f"dropout ({k}={v})"
                              for k, v in switches.items()))
    if bn:
        what.append("batch norm")
    what = " and ".join(what) or "the model's training-only behaviour"
    if not depends:
        raise Fail(f"the logits to depend on the `training` tensor ({what})",
                   "logits computed without it", "pass `training` to the dropout and batch-norm "
                   "layers, e.g. tf.compat.v1.layers.dropout(x, rate, training=training)")
    x = s.batch()[0]
    if tuple(x.shape[1:]) != shape:
        x = random_images(TRAIN_IMAGES, shape)
    with session(f.graph) as sess:
        sess.run(f.init)
        eval1, eval2 = f.run(tf, sess, x, False), f.run(tf, sess, x, False)
        if not np.array_equal(eval1, eval2):
            raise Fail("identical logits from two passes with training off", "a max difference "
                       f"of {max_diff(eval1, eval2):.3g}", f"{what} must be off when `training` "
                       "is False (dropout's training= argument, batch norm's training=)")
        train = f.run(tf, sess, x, True)
        if np.allclose(train, eval1, rtol=1e-6, atol=1e-7):
            raise Fail(f"different logits with training on ({what})", "the same logits as with "
                       "training off", "pass `training` on to the dropout and batch-norm layers")
    if bn:
        _moving_statistics_update(s, values)
    return f"{what}: on while training, off (and deterministic) otherwise"


def _moving_statistics_update(s: Subject, values: dict[str, Any]) -> None:
    """A training step of the trainer's graph changes the batch-norm moving statistics."""
    t = s.trained(s.seed, values)
    sess = t.session()
    stats = _batch_norm_state(t.g.graph) or []
    before = sess.run(stats)
    t.step()
    after = sess.run(stats)
    if not stats or all(np.array_equal(a, b) for a, b in zip(before, after)):
        raise Fail("batch norm's moving statistics to change in a training step",
                   "no change", "use tf.compat.v1.layers.batch_normalization(x, "
                   "training=training), which adds its updates to UPDATE_OPS (the "
                   "trainer runs them)")


def _depends_on(tensor, target) -> bool:
    """Whether ``tensor`` is computed from ``target`` in the graph."""
    seen, todo = set(), [tensor.op]
    while todo:
        op = todo.pop()
        if op is target.op:
            return True
        if op in seen:
            continue
        seen.add(op)
        todo += [t.op for t in op.inputs] + list(op.control_inputs)
    return False


_BN_STATE = re.compile(r"moving_(mean|variance)|batch_?norm", re.IGNORECASE)


def _batch_norm_state(graph) -> list | None:
    """The model's batch-norm moving statistics; None if it uses no batch norm.

    Batch norm is recognised by its ops (FusedBatchNorm*) or by non-trainable
    variables named like moving statistics (``moving_mean``, ``moving_variance``,
    or inside a ``batch_norm``/``BatchNorm`` scope).
    """
    v1 = import_tf().compat.v1
    trainable = {v.op.name for v in graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)}
    stats = [v for v in graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
             if v.op.name.startswith("model/") and v.op.name not in trainable
             and _BN_STATE.search(v.op.name)]
    fused = any(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())
    return stats if stats or fused else None


def _dropout_switches(spec: ModelSpec, values: dict) -> dict[str, Any]:
    """Dropout-like hyperparameters (float rates, bool switches), with values that switch
    them on."""
    out: dict[str, Any] = {}
    for name, p in spec.hparams.items():
        if p.type not in (float, bool) or not DROPOUT_LIKE.search(name):
            continue
        if p.type is bool:
            out[name] = True
            continue
        off = 1.0 if "keep" in name else 0.0
        value = values[name]
        if value == off:
            value = 0.5
            if p.min is not None:
                value = max(value, p.min)
            if p.max is not None:
                value = min(value, p.max)
        out[name] = value
    return out


@check("seed_determinism", "the same seed gives the same initial weights, logits and losses; "
       "another seed other weights")
def seed_determinism(s: Subject) -> str:
    tf = import_tf()
    x = s.batch()[0]
    runs = []
    for seed, cache in ((s.seed, True), (s.seed, False), (s.seed + 1, True)):
        f = s.forward(x.shape[1:], 10, seed=seed, cache=cache)
        with session(f.graph) as sess:
            sess.run(f.init)
            names = [v.op.name for v in f.trainable]
            runs.append((dict(zip(names, sess.run(f.trainable))), f.run(tf, sess, x, False),
                         f.run(tf, sess, x, True)))
    (w1, eval1, train1), (w2, eval2, train2), (w3, _, _) = runs
    for name in w1:
        if not np.array_equal(w1[name], w2[name]):
            raise Fail(f"identical initial weights for seed {s.seed} in two fresh graphs",
                       f"{name} differs by up to {max_diff(w1[name], w2[name]):.3g}",
                       "create every random op inside build(), after the core seeds the "
                       "graph; draw no seeds from the clock, os.urandom or numpy")
    for mode, a, b in (("off", eval1, eval2), ("on", train1, train2)):
        if not np.array_equal(a, b):
            raise Fail(f"identical logits with training {mode} from two fresh graphs with "
                       f"seed {s.seed}", f"a max difference of {max_diff(a, b):.3g}",
                       "give random ops in build() (dropout, noise) no seed of their own, so "
                       "the graph seed decides")
    if all(np.array_equal(w1[n], w3[n]) for n in w1):
        raise Fail(f"other initial weights for seed {s.seed + 1} than for seed {s.seed}",
                   "identical weights", "the builder fixes its own seed (e.g. "
                   "tf.compat.v1.set_random_seed) or initializes every weight to a constant")
    t = s.trained(s.seed)
    t.session()
    again = t.replay()
    if again != t.losses:
        raise Fail(f"identical losses over {SEED_STEPS} Adam steps in two runs with seed "
                   f"{s.seed}", f"{_fmt_losses(t.losses)} and {_fmt_losses(again)}",
                   "the model draws randomness at run time that the graph seed does not "
                   "decide (a py_function, or a stateful op seeded elsewhere)")
    return (f"identical weights, logits and losses ({_fmt_losses(t.losses)}) for seed "
            f"{s.seed}; seed {s.seed + 1} gives other weights")


def _fmt_losses(losses) -> str:
    return ", ".join(f"{x:.6g}" for x in losses)


@check("all_variables_train", "every trainable variable gets a gradient and changes in training")
def all_variables_train(s: Subject) -> str:
    t = s.trained(s.seed)
    t.session()
    ops = {op.name for op in t.g.graph.get_operations()}
    stuck = [n for n in t.initial if np.array_equal(t.initial[n], t.after[n])]
    if stuck:
        no_grad = [n for n in stuck if f"{n}/Adam" not in ops]
        if no_grad:
            raise Fail("every trainable variable to receive a gradient from the loss",
                       f"none for {', '.join(no_grad[:4])}",
                       "the logits do not use them: remove them or connect them, or create "
                       "them with trainable=False")
        raise Fail(f"every trainable variable to change over {SEED_STEPS} Adam steps",
                   f"no change in {', '.join(stuck[:4])}", "their gradient is zero (dead "
                   "ReLUs, a stop_gradient, or a multiplication by 0)")
    return f"all {len(t.initial)} trainable variables change over {SEED_STEPS} Adam steps"


@check("overfit_one_batch", f"fits {TRAIN_IMAGES} real training images to "
       f"{OVERFIT_TARGET:.0%} training accuracy within {OVERFIT_STEPS} Adam steps")
def overfit_one_batch(s: Subject) -> str:
    if (28, 28, 1) not in s.shapes:
        raise NotApplicable("the model is checked without 28x28x1 images, so there is no real "
                            "batch to fit")
    _, _, what = s.batch()
    t = s.trained(s.seed)
    t.session()  # the first SEED_STEPS steps are done
    lr = s.settings.lr
    first_loss = loss = t.losses[0]
    acc = 0.0
    while t.steps < OVERFIT_STEPS:
        loss, acc = t.step()
        if not math.isfinite(loss):
            raise Fail(f"a finite loss while fitting {what}", f"{loss} at step {t.steps}",
                       "check divisions, logs and initial weight scales in build()")
        if acc >= OVERFIT_TARGET:
            return (f"{acc:.0%} training accuracy on {what} at step {t.steps} of full-batch "
                    f"Adam (lr {lr:g}; loss {first_loss:.3f} -> {loss:.3f})")
    raise Fail(f"at least {OVERFIT_TARGET:.0%} training accuracy on {what} within "
               f"{OVERFIT_STEPS} full-batch Adam steps (lr {lr:g})",
               f"{acc:.1%} (loss {first_loss:.3f} -> {loss:.3f})",
               "the model cannot fit even one batch: check that the logits depend on the "
               "images, that activations do not saturate, and that nothing is frozen")


@check("short_run_evaluation", f"a batch-normalized model evaluated after {SHORT_RUN_STEPS} "
       "training steps (training off, its statistics as the trainer estimates them) classifies "
       "the training batch about as well as in training mode")
def short_run_evaluation(s: Subject) -> str:
    t = s.trained(s.seed)
    g = t.g
    if _batch_norm_state(g.graph) is None and g.moving_stats is None:
        raise NotApplicable("no batch norm: evaluation uses what training uses")
    _, _, what = s.batch()
    feed = {g.index: t.index(), g.training: True}
    sess = t._start()  # a session of its own: the other checks' steps stay as they were
    try:
        for _ in range(SHORT_RUN_STEPS):
            t.step(sess)
        trained = float(sess.run(g.accuracy, feed))
        if g.moving_stats is not None:  # as the trainer does before each evaluation
            g.moving_stats.refresh(sess, [feed])
        evaluated = float(sess.run(g.accuracy, {g.index: t.index()}))
    finally:
        sess.close()
    if evaluated < trained - SHORT_RUN_GAP:
        raise Fail(f"evaluation within {SHORT_RUN_GAP:.0%} of training mode's {trained:.0%} on "
                   f"{what} after {SHORT_RUN_STEPS} steps", f"{evaluated:.0%}",
                   "its batch-norm moving statistics do not describe the data after a short "
                   "run: use tf.compat.v1.layers.batch_normalization(x, training=training), "
                   "whose moving averages (in UPDATE_OPS) the trainer estimates again before "
                   "each evaluation")
    return (f"{evaluated:.0%} evaluated against {trained:.0%} in training mode on {what} "
            f"after {SHORT_RUN_STEPS} steps")
