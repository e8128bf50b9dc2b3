"""The model under test: its settings, its graphs, its sessions and its training batch.

A :class:`Subject` builds the model two ways, both through the core:

- :meth:`Subject.forward`: the forward pass alone in a fresh graph
  (:func:`forward_pass`, which calls :func:`zoo_core.train.forward.forward`, the one place
  the zoo calls a builder), cached by shape, classes, hyperparameters and seed;
- :meth:`Subject.trained`: the trainer's own graph (:func:`zoo_core.train.graph.build_graph`,
  what ``zoo run`` builds) holding the training batch, with one session that has taken
  the first :data:`~zoo_core.testing.kit.SEED_STEPS` Adam steps (:class:`TrainedGraph`).

Either way the builder is wrapped (:func:`traced`) to record, in a :class:`Trace`, which
hyperparameters it reads, whether it changes them, and the default graph and graph seed
around it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from zoo_core._tf import seed_graph
from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.registry import read_catalogue
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data import Data, load, to_float
from zoo_core.errors import DataError
from zoo_core.settings import TrainerSettings
from zoo_core.testing.diagnose import building, run
from zoo_core.testing.kit import SEED_STEPS, TRAIN_IMAGES, fmt_shape
from zoo_core.train.forward import forward
from zoo_core.train.graph import ModelGraph, build_graph, session_config

# ------------------------------------------------------------------ data and sessions


@functools.lru_cache(maxsize=4)
def dataset(name: str, download_ok: bool = False) -> Data:
    """A dataset of the catalogue (registry.toml), loaded once per process."""
    return load(read_catalogue().datasets[name], download_ok=download_ok)


def session(graph):
    """A session as the trainer configures one, without Grappler's graph rewrites.

    The rewrites change speed, not results; skipping them makes a session's first
    run several times faster, which keeps the kit at a few seconds per model.
    """
    config = session_config()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return import_tf().compat.v1.Session(graph=graph, config=config)


# ------------------------------------------------------------------ the traced builder


@dataclass
class Trace:
    """What one call of the builder did, seen from outside."""

    read: set = field(default_factory=set)  # hyperparameter names the builder looked up
    read_all: bool = False  # it iterated over hparams
    mutated: list = field(default_factory=list)
    graph: Any = None  # the default graph when build() was called
    default_after: Any = None  # ... and when it returned
    seed_after: Any = None  # the graph seed when it returned


def _reads_key(method: Callable) -> Callable:
    def reads(self, key, *args):
        self._trace.read.add(key)
        return method(self, key, *args)
    return reads


def _reads_all(method: Callable) -> Callable:
    def reads(self, *args):
        self._trace.read_all = True
        return method(self, *args)
    return reads


class TrackedHParams(dict):
    """The hparams dict handed to the builder, recording which names it reads."""

    def __init__(self, values: dict, trace: Trace):
        super().__init__(values)
        self._trace = trace

    __getitem__ = _reads_key(dict.__getitem__)
    get = _reads_key(dict.get)
    __contains__ = _reads_key(dict.__contains__)
    __iter__ = _reads_all(dict.__iter__)
    keys = _reads_all(dict.keys)
    values = _reads_all(dict.values)
    items = _reads_all(dict.items)
    copy = _reads_all(dict.copy)


_MISSING = object()


def traced(spec: ModelSpec, traces: list[Trace]) -> ModelSpec:
    """``spec`` with a builder that appends a :class:`Trace` of each call to ``traces``."""
    build = spec.build

    def traced_build(images, *, num_classes, hparams, training):
        v1 = import_tf().compat.v1
        trace = Trace(graph=v1.get_default_graph())
        traces.append(trace)
        original = dict(hparams)
        tracked = TrackedHParams(hparams, trace)
        logits = build(images, num_classes=num_classes, hparams=tracked, training=training)
        after = dict(dict.items(tracked))
        trace.mutated = sorted(k for k in set(original) | set(after)
                               if original.get(k, _MISSING) != after.get(k, _MISSING))
        trace.default_after = v1.get_default_graph()
        trace.seed_after = trace.graph.seed
        return logits

    return dataclasses.replace(spec, build=traced_build)


# ------------------------------------------------------------------ the forward pass


@dataclass
class ForwardPass:
    """A forward pass alone in its own graph, built as the trainer calls the builder."""

    graph: Any
    images: Any  # float32 [None, H, W, C] placeholder
    training: Any  # bool scalar, False unless fed
    logits: Any
    init: Any
    params: int
    variables: list  # (name, shape) of the model's global variables
    trainable: list
    trace: Trace | None = None

    def run(self, tf, sess, images: np.ndarray, training: bool) -> np.ndarray:
        """Logits for ``images``; ``training`` is always fed, so one signature serves both."""
        what = (f"the graph for {len(images)} {fmt_shape(images.shape[1:])} image(s) with "
                f"training {'on' if training else 'off'}")
        return run(tf, sess, self.logits, {self.images: images, self.training: training}, what)


def forward_pass(model: ModelSpec, shape, num_classes: int, hparams: dict[str, Any],
                 seed: int) -> ForwardPass:
    """A fresh graph, seeded first, holding ``model``'s forward pass for ``shape`` images.

    Raises the core's errors (:func:`zoo_core.train.forward.forward`).
    """
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        seed_graph(tf, seed)
        images = v1.placeholder(tf.float32, [None, *shape], name="images")
        training = v1.placeholder_with_default(False, [], name="training")
        net = forward(model, images, training, num_classes=num_classes, hparams=hparams)
        variables = [(v.op.name, tuple(v.shape.as_list())) for v in v1.global_variables()]
        init = v1.global_variables_initializer()
    graph.finalize()
    return ForwardPass(graph, images, training, net.logits, init, net.params, variables,
                       net.trainable)


# ------------------------------------------------------------------ the subject


class Subject:
    """A model under test, with its hyperparameter values and cached graphs."""

    def __init__(self, spec: ModelSpec, hparams: dict[str, Any],
                 shapes: tuple[tuple[int, int, int], ...], seed: int):
        self.spec, self.hparams, self.shapes, self.seed = spec, hparams, shapes, seed
        self.settings = TrainerSettings(epochs=1)  # the trainer's defaults, for one epoch
        self._forward: dict = {}
        self._trained: dict = {}
        self._batch = None

    @property
    def name(self) -> str:
        return self.spec.name

    def forward(self, shape, num_classes: int, hparams: dict | None = None, *,
                seed: int | None = None, cache: bool = True) -> ForwardPass:
        """The forward pass alone in a fresh graph (seed first, scope ``model``)."""
        values = dict(self.hparams if hparams is None else hparams)
        seed = self.seed if seed is None else seed
        key = (tuple(shape), num_classes, tuple(sorted(values.items())), seed)
        if cache and key in self._forward:
            return self._forward[key]
        traces: list[Trace] = []
        with building(values, shape, num_classes):
            out = forward_pass(traced(self.spec, traces), shape, num_classes, values, seed)
        out.trace = traces[0]
        if cache:
            self._forward[key] = out
        return out

    def trained(self, seed: int, hparams: dict | None = None) -> TrainedGraph:
        """The trainer's own graph (``build_graph``) holding the training batch."""
        values = dict(self.hparams if hparams is None else hparams)
        key = (seed, tuple(sorted(values.items())))
        if key not in self._trained:
            x, y, _ = self.batch()
            traces: list[Trace] = []
            with building(values, x.shape[1:], 10):
                g = build_graph(traced(self.spec, traces), values, self.settings, x.shape[1:],
                                10, seed, n_train=len(y), steps_per_epoch=1)
            self._trained[key] = TrainedGraph(self, g, traces[0])
        return self._trained[key]

    def batch(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The training batch: 32 real Fashion-MNIST images, when 28x28x1 is accepted."""
        if self._batch is None:
            if (28, 28, 1) in self.shapes:
                try:
                    data = dataset("fashion")
                except DataError:
                    data = dataset("fashion", True)
                x, y = to_float(data.x_train[:TRAIN_IMAGES]), data.y_train[:TRAIN_IMAGES]
                self._batch = (x, y, f"{TRAIN_IMAGES} Fashion-MNIST training images")
            else:
                shape = self.shapes[0]
                rng = np.random.default_rng(0)
                x = rng.random((TRAIN_IMAGES, *shape), dtype=np.float32)
                y = rng.integers(0, 10, TRAIN_IMAGES).astype(np.int32)
                self._batch = (x, y, f"{TRAIN_IMAGES} random {fmt_shape(shape)} images")
        return self._batch

    def prepare(self) -> None:
        """Import TensorFlow and load the training batch, so check timings exclude them."""
        import_tf()
        try:
            self.batch()
        except DataError:
            pass  # reported by the checks that need it

    def close(self) -> None:
        """Close the sessions the checks opened."""
        for t in self._trained.values():
            t.close()


# ------------------------------------------------------------------ the trainer's graph


class TrainedGraph:
    """A trainer graph with one session, trained from its initial state as checks need.

    The first :data:`SEED_STEPS` Adam steps are always the first thing run in the
    session, so results do not depend on which check runs first; the overfitting
    check continues from there. One session per graph keeps the kit fast (the first
    step of a session pays for graph optimization).
    """

    def __init__(self, subject: Subject, g: ModelGraph, trace: Trace):
        self.subject, self.g, self.trace = subject, g, trace
        self.sess = None
        self.initial: dict[str, np.ndarray] | None = None  # trainable variables at init
        self.after: dict[str, np.ndarray] | None = None  # ... after SEED_STEPS steps
        self.losses: list[float] = []
        self.steps = 0

    @property
    def variables(self) -> list:
        v1 = import_tf().compat.v1
        return self.g.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)

    def index(self) -> np.ndarray:
        return np.arange(len(self.subject.batch()[1]), dtype=np.int32)

    def _start(self):
        """A new session, initialised, holding the training batch."""
        x, y, _ = self.subject.batch()
        g = self.g
        sess = session(g.graph)
        try:
            sess.run(g.init)
            g.hold(sess, x, y)
        except BaseException:
            sess.close()
            raise
        return sess

    def session(self):
        """The session, initialised, after the first :data:`SEED_STEPS` steps."""
        if self.sess is None:
            self.sess = self._start()
            try:
                names = [v.op.name for v in self.variables]
                self.initial = dict(zip(names, self.sess.run(self.variables)))
                for _ in range(SEED_STEPS):
                    self.losses.append(self.step()[0])
                self.after = dict(zip(names, self.sess.run(self.variables)))
            except BaseException:
                self.close()  # the next check starts again from scratch
                raise
        return self.sess

    def step(self, sess=None) -> tuple[float, float]:
        """One full-batch training step: the loss and the accuracy, with training on."""
        g = self.g
        _, loss, acc = run(import_tf(), sess or self.sess, [g.train_op, g.loss, g.accuracy],
                           {g.index: self.index(), g.training: True}, "a training step")
        if sess is None:
            self.steps += 1
        return float(loss), float(acc)

    def replay(self) -> list[float]:
        """The losses of the first :data:`SEED_STEPS` steps again, in a second session."""
        sess = self._start()
        try:
            return [self.step(sess)[0] for _ in range(SEED_STEPS)]
        finally:
            sess.close()

    def close(self) -> None:
        if self.sess is not None:
            self.sess.close()
        self.sess, self.initial, self.after, self.losses, self.steps = None, None, None, [], 0
