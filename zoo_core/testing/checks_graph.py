"""Checks of the graph a builder makes: where it builds, what it returns, per example.

``fresh_graph``, ``logits_shape`` and ``batch_independence``: the forward pass alone
(and once the trainer's graph), nothing trained.
"""

from __future__ import annotations

import re

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.testing.kit import (
    BATCH_SIZES, CLASS_COUNTS, Fail, check, fmt_shape, max_diff, random_images,
)
from zoo_core.testing.subject import Subject, session


@check("fresh_graph", "builds in a fresh graph, twice, and leaves no global state")
def fresh_graph(s: Subject) -> str:
    v1 = import_tf().compat.v1
    outer = v1.get_default_graph()
    before = _graph_state(outer)
    x = s.batch()[0]
    trained = s.trained(s.seed)  # in the trainer's graph, as `zoo run` builds it
    bare = s.forward(x.shape[1:], 10, cache=False)  # and once more, in a bare graph
    if v1.get_default_graph() is not outer:
        raise Fail("the default graph to be the same after building",
                   "another graph left as the default",
                   "leave every `with graph.as_default()` you enter")
    after = _graph_state(outer)
    added = after[0][len(before[0]):]
    if added or after[1] != before[1]:
        what = f"{len(added)} op(s) added to it" + (f", e.g. {added[:3]}" if added else "")
        raise Fail("nothing added to the default graph outside the one the core hands over",
                   what, "create ops and variables only inside build(), in the current "
                   "default graph; keep no tensors or layers in module-level variables")
    for trace, graph in ((trained.trace, trained.g.graph), (bare.trace, bare.graph)):
        _left_alone(trace, graph, s.seed)
    a, b = _variables(v1, trained.g.graph), _variables(v1, bare.graph)
    if a != b:
        only_a = [f"{n} {list(sh)}" for n, sh in a if (n, sh) not in b][:3]
        only_b = [f"{n} {list(sh)}" for n, sh in b if (n, sh) not in a][:3]
        raise Fail("the same variables when built twice with the same settings",
                   f"{', '.join(only_a) or 'nothing more'} in the first build but "
                   f"{', '.join(only_b) or 'nothing more'} in the second", "the builder keeps "
                   "state between calls (a module-level layer, cache or counter); create "
                   "everything inside build()")
    return (f"built twice in fresh graphs the same way: {trained.g.params:,} parameters in "
            f"{len(trained.variables)} trainable variables; nothing left behind")


def _left_alone(trace, graph, seed: int) -> None:
    """One call of the builder left the default graph, the graph seed and hparams alone."""
    if trace.graph is not graph:  # pragma: no cover - the core sets it
        raise Fail("build() to run in the core's graph", "another default graph")
    if trace.default_after is not trace.graph:
        raise Fail("the same default graph when build() returns as when it was called",
                   "a different one", "leave every `with graph.as_default()` you enter")
    if trace.seed_after != seed:
        raise Fail(f"the graph seed to stay {seed}", f"{trace.seed_after}",
                   "do not call tf.compat.v1.set_random_seed in build(); the core seeds "
                   "the graph")
    if trace.mutated:
        raise Fail("hparams to be left as handed over",
                   f"build() changed {', '.join(map(repr, trace.mutated))}",
                   "copy the dict before changing it")


def _graph_state(graph) -> tuple[list[str], dict]:
    ops = [op.name for op in graph.get_operations()]
    collections = {k: len(graph.get_collection(k)) for k in graph.get_all_collection_keys()}
    return ops, collections


_SLOT = re.compile(r"/Adam(_\d+)?$")


def _variables(v1, graph) -> list[tuple[str, tuple]]:
    """The model's variables (not the optimizer's slots): names and shapes."""
    return sorted((v.op.name, tuple(v.shape.as_list()))
                  for v in graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
                  if v.op.name.startswith("model/") and not _SLOT.search(v.op.name))


@check("logits_shape", "float32 [batch, num_classes] logits for batches of 1, 3, 17 and "
       "every accepted image shape")
def logits_shape(s: Subject) -> str:
    tf = import_tf()
    done = []
    for i, shape in enumerate(s.shapes):
        k = CLASS_COUNTS[i % len(CLASS_COUNTS)]
        f = s.forward(shape, k)
        with session(f.graph) as sess:
            sess.run(f.init)
            for n in BATCH_SIZES:
                out = f.run(tf, sess, random_images(n, shape), False)
                if out.shape != (n, k) or out.dtype != np.float32:
                    raise Fail(f"float32 logits of shape ({n}, {k}) for {n} images of "
                               f"{fmt_shape(shape)} and {k} classes",
                               f"{out.dtype} of shape {out.shape}",
                               "keep the batch dimension first and end with num_classes units")
                if not np.isfinite(out).all():
                    raise Fail(f"finite logits for {n} images of {fmt_shape(shape)}",
                               "NaN or infinite values", "check divisions and logs in build()")
        done.append(f"{fmt_shape(shape)} ({k} classes)")
    return f"float32 [batch, classes] for batches of {', '.join(map(str, BATCH_SIZES))}: " \
           + ", ".join(done)


@check("batch_independence", "with training off, an image's logits do not depend on the "
       "rest of its batch")
def batch_independence(s: Subject) -> str:
    tf = import_tf()
    shape = s.shapes[0]
    f = s.forward(shape, CLASS_COUNTS[0])
    x = random_images(17, shape)
    with session(f.graph) as sess:
        sess.run(f.init)
        full = f.run(tf, sess, x, False)
        for i in (0, 8, 16):
            alone = f.run(tf, sess, x[i:i + 1], False)
            if not np.allclose(alone[0], full[i], rtol=1e-4, atol=1e-5):
                raise Fail(f"image {i}'s logits to be the same alone as in a batch of 17 "
                           "(training off)",
                           f"a max difference of {max_diff(alone[0], full[i]):.3g}",
                           "the builder mixes examples across the batch: check that reshapes "
                           "keep the batch dimension first (e.g. [-1, height, width * channels])")
        reversed_ = f.run(tf, sess, x[::-1], False)[::-1]
        if not np.allclose(reversed_, full, rtol=1e-4, atol=1e-5):
            raise Fail("the same logits for a batch in reverse order", "a max difference of "
                       f"{max_diff(reversed_, full):.3g}", "the builder mixes examples across "
                       "the batch")
    return "the same logits alone, in a batch of 17 and in reverse order"
