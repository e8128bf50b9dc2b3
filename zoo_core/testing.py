"""Testing graph builders: small helpers, and the conformance kit.

Helpers for a plugin's own tests::

    from zoo_core import testing

    def test_logits():
        images, _ = testing.real_images(16)
        logits = testing.run_builder(my_plugin.build, images, my_plugin.HPARAMS)
        assert logits.shape == (16, 10)

The conformance kit checks the builder contract (DESIGN.md, "The plugin
contract") the way the trainer will exercise it, in the spirit of scikit-learn's
``check_estimator``: named checks, each one skippable, each failure saying which
check, what was expected and what happened. From pytest::

    @pytest.mark.parametrize("check", testing.checks("mynet"))
    def test_conformance(check):
        check()

(or ``@testing.parametrize_checks("mynet", "mynet-large", skip=[...])``), and from
the command line: ``zoo check mynet [--skip NAME ...]``.

The checks (:data:`CHECKS`, in order):

``fresh_graph``
    builds in the trainer's fresh graph and again in a bare one, with the same
    variables; adds nothing to any other graph, leaves the default graph and the
    graph seed alone, does not change ``hparams``.
``logits_shape``
    float32 ``[batch, num_classes]`` logits, with a free batch dimension, for
    batches of 1, 3 and 17 images of every accepted shape (28x28x1, 20x12x1 and
    32x32x3 unless narrowed with ``shapes=``), with 10, 7 and 4 classes.
``batch_independence``
    with ``training`` off, an image's logits do not depend on the rest of its
    batch (catches reshapes that mix examples).
``training_flag``
    the ``training`` tensor switches dropout and batch norm: evaluation is
    deterministic, training differs from it, batch-norm moving statistics
    update. Applicable when the model declares a dropout-like hyperparameter
    (a float or bool whose name contains ``drop`` or ``keep_prob``; one that
    is off is switched on for the check), uses batch norm, or its logits
    depend on ``training`` at all; otherwise skipped as not applicable.
``seed_determinism``
    two fresh graphs with the same seed give identical initial weights and
    logits (training off and on), two runs identical losses over a few Adam
    steps; another seed gives other weights.
``all_variables_train``
    every trainable variable gets a gradient and changes during training.
``overfit_one_batch``
    fits 32 real Fashion-MNIST training images to 90% training accuracy (with
    ``training`` on, as the trainer measures it) within 200 full-batch Adam
    steps at the trainer's default learning rate.
``hparams_honoured``
    the builder reads only declared hyperparameters, and changing each declared
    one (to another valid value) changes the parameter count or the outputs.

Graphs are built with :func:`zoo_core.trainer.build_graph` (what ``zoo run``
does) wherever training is involved; the other checks build the forward pass
alone, calling the builder exactly as the trainer does (seed first, scope
``model``, a ``training`` tensor), to stay fast. Sessions skip Grappler's graph
rewrites for the same reason.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from zoo_core.errors import DataError, PluginError, UnknownNameError, UsageError
from zoo_core.spec import TRAINER_HPARAMS, HParam, ModelSpec, as_hparam

# ------------------------------------------------------------------ helpers


@functools.lru_cache(maxsize=4)
def _dataset(name: str, download_ok: bool = False):
    from zoo_core import datasets, registry

    spec = registry.read_catalogue().datasets[name]
    return datasets.load(spec, download_ok=download_ok)


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


# ------------------------------------------------------------------ the kit's vocabulary

DEFAULT_SHAPES: tuple[tuple[int, int, int], ...] = ((28, 28, 1), (20, 12, 1), (32, 32, 3))
BATCH_SIZES = (1, 3, 17)
CLASS_COUNTS = (10, 7, 4)  # one per shape, in turn: catches a hard-coded 10
TRAIN_IMAGES = 32  # the real batch the training checks use
SEED_STEPS = 3
OVERFIT_STEPS = 200
OVERFIT_TARGET = 0.9
DROPOUT_LIKE = re.compile(r"drop|keep_prob")


class CheckFailure(AssertionError):
    """A conformance check failed; the message names the check, the model and why."""


class _Fail(Exception):
    """Raised inside a check: what was expected, what happened, and what to do."""

    def __init__(self, expected: str, got: str, hint: str = ""):
        super().__init__(f"expected {expected}, got {got}" + (f"; {hint}" if hint else ""))


class _NotApplicable(Exception):
    pass


@dataclass(frozen=True)
class Check:
    """A named conformance check: ``func(subject)`` returns a one-line summary."""

    name: str
    summary: str
    func: Callable[["Subject"], str]


CHECKS: dict[str, Check] = {}


def _check(name: str, summary: str):
    def register(func):
        CHECKS[name] = Check(name, summary, func)
        return func
    return register


@dataclass
class CheckResult:
    """The outcome of one check on one model."""

    check: str
    model: str
    status: str  # passed | failed | skipped
    message: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        return f"check {self.check!r} {self.status} for model {self.model!r}: {self.message}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------ what is checked


@dataclass
class _Trace:
    """What one call of the builder did, seen from outside."""

    read: set = field(default_factory=set)  # hyperparameter names the builder looked up
    read_all: bool = False  # it iterated over hparams
    mutated: list = field(default_factory=list)
    graph: Any = None  # the default graph when build() was called
    default_after: Any = None  # ... and when it returned
    seed_after: Any = None  # the graph seed when it returned


class _Tracked(dict):
    """The hparams dict handed to the builder, recording which names it reads."""

    def __init__(self, values: dict, trace: _Trace):
        super().__init__(values)
        self._trace = trace

    def __getitem__(self, key):
        self._trace.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._trace.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._trace.read.add(key)
        return super().__contains__(key)

    def _all(self):
        self._trace.read_all = True

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def values(self):
        self._all()
        return super().values()

    def items(self):
        self._all()
        return super().items()

    def copy(self):
        self._all()
        return dict(super().items())


@dataclass
class _Forward:
    """A forward pass alone, built as the trainer calls the builder."""

    graph: Any
    images: Any
    training: Any
    logits: Any
    init: Any
    params: int
    variables: list  # (name, shape) of the model's global variables
    trainable: list
    trace: _Trace

    def run(self, tf, sess, images: np.ndarray, training: bool) -> np.ndarray:
        """Logits for ``images``; ``training`` is always fed, so one signature serves both."""
        what = (f"the graph for {len(images)} {_fmt_shape(images.shape[1:])} image(s) with "
                f"training {'on' if training else 'off'}")
        return _run(tf, sess, self.logits, {self.images: images, self.training: training}, what)


def _session(tf, graph):
    """A session as the trainer configures one, without Grappler's graph rewrites.

    The rewrites change speed, not results; skipping them makes a session's first
    run several times faster, which keeps the kit at a few seconds per model.
    """
    from zoo_core import trainer

    config = trainer.session_config(tf)
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return tf.compat.v1.Session(graph=graph, config=config)


class Subject:
    """A model under test, with its hyperparameter values and cached graphs."""

    def __init__(self, spec: ModelSpec, hparams: dict[str, Any],
                 shapes: tuple[tuple[int, int, int], ...], seed: int):
        self.spec, self.hparams, self.shapes, self.seed = spec, hparams, shapes, seed
        self._forward: dict = {}
        self._trained: dict = {}
        self._batch = None

    @property
    def name(self) -> str:
        return self.spec.name

    def cfg(self) -> dict[str, Any]:
        """The trainer's default settings, as ``zoo run`` would merge them."""
        return {**{k: p.default for k, p in TRAINER_HPARAMS.items()}, "epochs": 1}

    # -- building

    def _traced(self, traces: list) -> ModelSpec:
        from zoo_core._tf import tf as import_tf

        build = self.spec.build

        def traced_build(images, *, num_classes, hparams, training):
            tf = import_tf()
            trace = _Trace()
            traces.append(trace)
            trace.graph = tf.compat.v1.get_default_graph()
            original = dict(hparams)
            tracked = _Tracked(hparams, trace)
            logits = build(images, num_classes=num_classes, hparams=tracked, training=training)
            after = dict(super(_Tracked, tracked).items())
            trace.mutated = sorted(k for k in set(original) | set(after)
                                   if original.get(k, _MISSING) != after.get(k, _MISSING))
            trace.default_after = tf.compat.v1.get_default_graph()
            trace.seed_after = trace.graph.seed
            return logits

        return dataclasses.replace(self.spec, build=traced_build)

    def forward(self, shape, num_classes: int, hparams: dict | None = None, *,
                seed: int | None = None, cache: bool = True) -> _Forward:
        """Build the forward pass alone in a fresh graph (seed first, scope ``model``)."""
        from zoo_core._tf import seed_graph
        from zoo_core._tf import tf as import_tf

        values = dict(self.hparams if hparams is None else hparams)
        seed = self.seed if seed is None else seed
        key = (tuple(shape), num_classes, tuple(sorted(values.items())), seed)
        if cache and key in self._forward:
            return self._forward[key]
        tf = import_tf()
        v1 = tf.compat.v1
        traces: list[_Trace] = []
        spec = self._traced(traces)
        graph = tf.Graph()
        with graph.as_default():
            seed_graph(tf, seed)
            images = v1.placeholder(tf.float32, [None, *shape], name="images")
            training = v1.placeholder_with_default(False, [], name="training")
            with v1.variable_scope("model"):
                try:
                    logits = spec.build(images, num_classes=num_classes, hparams=values,
                                        training=training)
                except Exception as e:
                    raise _BuildFailed(e, values, shape) from e
            _check_logits(tf, logits, num_classes, shape)
            trainable = v1.trainable_variables()
            params = int(sum(np.prod(v.shape.as_list()) for v in trainable))
            variables = [(v.op.name, tuple(v.shape.as_list())) for v in v1.global_variables()]
            init = v1.global_variables_initializer()
        graph.finalize()
        out = _Forward(graph, images, training, logits, init, params, variables, trainable,
                       traces[0])
        if cache:
            self._forward[key] = out
        return out

    def trained(self, seed: int, hparams: dict | None = None) -> "_Trained":
        """The trainer's own graph (``trainer.build_graph``) holding the training batch."""
        from zoo_core import trainer

        values = dict(self.hparams if hparams is None else hparams)
        key = (seed, tuple(sorted(values.items())))
        if key not in self._trained:
            x, y, _ = self.batch()
            traces: list[_Trace] = []
            try:
                g = trainer.build_graph(self._traced(traces), values, self.cfg(), x.shape[1:],
                                        10, seed, n_train=len(y), steps_per_epoch=1)
            except PluginError as e:
                if e.__cause__ is not None and traces:  # the builder itself raised
                    raise _BuildFailed(e.__cause__, values, x.shape[1:]) from e
                raise _Fail("a graph the trainer can use", str(e).split(": ", 1)[-1]) from e
            self._trained[key] = _Trained(self, g, traces[0])
        return self._trained[key]

    def batch(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The training batch: 32 real Fashion-MNIST images, when 28x28x1 is accepted."""
        if self._batch is None:
            if (28, 28, 1) in self.shapes:
                try:
                    data = _dataset("fashion")
                except DataError:
                    data = _dataset("fashion", True)
                x, y = data.x_train[:TRAIN_IMAGES], data.y_train[:TRAIN_IMAGES]
                self._batch = (x, y, f"{TRAIN_IMAGES} Fashion-MNIST training images")
            else:
                shape = self.shapes[0]
                rng = np.random.default_rng(0)
                x = rng.random((TRAIN_IMAGES, *shape), dtype=np.float32)
                y = rng.integers(0, 10, TRAIN_IMAGES).astype(np.int32)
                self._batch = (x, y, f"{TRAIN_IMAGES} random {_fmt_shape(shape)} images")
        return self._batch

    def prepare(self) -> None:
        """Import TensorFlow and load the training batch, so check timings exclude them."""
        from zoo_core._tf import tf as import_tf

        import_tf()
        try:
            self.batch()
        except DataError:
            pass  # reported by the checks that need it

    def close(self) -> None:
        """Close the sessions the checks opened."""
        for t in self._trained.values():
            t.close()


class _Trained:
    """A trainer graph with one session, trained from its initial state as checks need.

    The first :data:`SEED_STEPS` Adam steps are always the first thing run in the
    session, so results do not depend on which check runs first; the overfitting
    check continues from there. One session per graph keeps the kit fast (the first
    step of a session pays for graph optimization).
    """

    def __init__(self, subject: Subject, g, trace: _Trace):
        self.subject, self.g, self.trace = subject, g, trace
        self.sess = None
        self.initial: dict[str, np.ndarray] | None = None  # trainable variables at init
        self.after: dict[str, np.ndarray] | None = None  # ... after SEED_STEPS steps
        self.losses: list[float] = []
        self.steps = 0

    @property
    def variables(self) -> list:
        from zoo_core._tf import tf as import_tf

        v1 = import_tf().compat.v1
        return self.g.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)

    def index(self) -> np.ndarray:
        return np.arange(len(self.subject.batch()[1]), dtype=np.int32)

    def _start(self):
        """A new session, initialised, holding the training batch."""
        from zoo_core._tf import tf as import_tf

        tf = import_tf()
        x, y, _ = self.subject.batch()
        g = self.g
        sess = _session(tf, g.graph)
        try:
            sess.run(g.init)
            sess.run(g.data_init, {g.data_feed[0]: x, g.data_feed[1]: y})
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
        from zoo_core._tf import tf as import_tf

        tf = import_tf()
        g = self.g
        _, loss, acc = _run(tf, sess or self.sess, [g.train_op, g.loss, g.accuracy],
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


_MISSING = object()


class _BuildFailed(Exception):
    """The builder raised; carries what it raised and with which settings."""

    def __init__(self, error: BaseException, hparams: dict, shape):
        self.error, self.hparams, self.shape = error, hparams, tuple(shape)
        super().__init__(str(error))

    def describe(self, declared: dict) -> str:
        e = self.error
        msg = (f"the builder to return logits for {_fmt_shape(self.shape)} images, got "
               f"{type(e).__name__}: {_first_line(e)}{_location(e)}")
        if isinstance(e, KeyError) and e.args and e.args[0] not in declared:
            msg += (f"; it looks up hyperparameter {e.args[0]!r}, which the model does not "
                    "declare: add it to hparams= in register()")
        return "expected " + msg


def _check_logits(tf, logits, num_classes: int, shape) -> None:
    if not isinstance(logits, tf.Tensor):
        raise _Fail("build() to return a logits tf.Tensor", f"{type(logits).__name__}",
                    "return the output of the last layer")
    if logits.dtype != tf.float32:
        raise _Fail("float32 logits", f"{logits.dtype.name}", "cast the last layer's output "
                    "with tf.cast(logits, tf.float32)")
    static = logits.shape.as_list() if logits.shape.ndims is not None else None
    if static is None or len(static) != 2 or static[1] != num_classes:
        raise _Fail(f"logits of shape [batch, {num_classes}] for {_fmt_shape(shape)} images "
                    f"and num_classes={num_classes}", f"shape {static}",
                    "end with a dense layer of num_classes units")
    if static[0] is not None:
        raise _Fail("a free batch dimension (static shape [None, "
                    f"{num_classes}]) for images of shape [None, {', '.join(map(str, shape))}]",
                    f"{static}", "do not hard-code the batch size; reshape with -1")


# ------------------------------------------------------------------ small utilities


def _fmt_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _library_dirs() -> tuple[str, ...]:
    import sysconfig

    import zoo_core

    dirs = [os.path.dirname(zoo_core.__file__)]
    for key in ("stdlib", "platstdlib"):
        try:
            dirs.append(sysconfig.get_paths()[key])
        except KeyError:  # pragma: no cover
            pass
    for mod in ("tensorflow", "tf_keras", "keras", "numpy"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__file__", None):
            dirs.append(os.path.dirname(m.__file__))
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


def _location(e: BaseException) -> str:
    """`` (at file:line)``: the deepest frame of the failure in the plugin's own code."""
    libs = _library_dirs()
    best = None
    while e is not None:
        for frame in traceback.extract_tb(e.__traceback__):
            if not os.path.realpath(frame.filename).startswith(libs):
                best = frame
        e = e.__cause__
    if best is None:
        return ""
    return f" (at {_relpath(best.filename)}:{best.lineno})"


def _relpath(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def _images(n: int, shape, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _run(tf, sess, fetch, feed, what: str):
    try:
        return sess.run(fetch, feed)
    except tf.errors.OpError as e:
        raise _Fail(f"{what} to run", _describe_op_error(e)) from e


_OP_NOISE = ("Graph execution error", "Detected at node", "Node:", "[[", "File ")


def _describe_op_error(e) -> str:
    """The reason in a TensorFlow run-time error, and where the failing op was created."""
    lines = [ln.strip() for ln in (e.message or "").splitlines()]
    reasons = [ln for ln in lines if ln and not ln.startswith(_OP_NOISE)]
    reason = (reasons[0] if reasons else _first_line(e))[:300]
    where = ""
    op = getattr(e, "op", None)
    if op is not None:
        where = f" in op {op.name!r}"
        libs = _library_dirs()
        frames = [f for f in (op.traceback or ())
                  if not os.path.realpath(f.filename).startswith(libs)]
        if frames:
            where += f" (created at {_relpath(frames[-1].filename)}:{frames[-1].lineno})"
    return f"{type(e).__name__}{where}: {reason}"


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
    from zoo_core._tf import tf as import_tf

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


def _other_value(p: HParam, current):
    """Another valid value for a hyperparameter, or None when none can be guessed."""
    if p.type is bool:
        return not current
    if p.type is str:
        if p.choices:
            others = [c for c in p.choices if c != current]
            return others[0] if others else None
        return None
    candidates = []
    if p.type is int:
        candidates = [current + 1, current - 1]
    else:
        candidates = [0.5 if current == 0 else current * 2, 0.5 * current, current + 0.1,
                      current - 0.1]
    for value in candidates:
        if p.type is float:
            value = float(value)
        try:
            p.check("x", value)
        except UsageError:
            continue
        if value != current:
            return value
    return None


# ------------------------------------------------------------------ the checks


@_check("fresh_graph", "builds in a fresh graph, twice, and leaves no global state")
def check_fresh_graph(s: Subject) -> str:
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    v1 = tf.compat.v1
    outer = v1.get_default_graph()
    before = _graph_state(outer)
    x = s.batch()[0]
    trained = s.trained(s.seed)  # in the trainer's graph, as `zoo run` builds it
    bare = s.forward(x.shape[1:], 10, cache=False)  # and once more, in a bare graph
    if v1.get_default_graph() is not outer:
        raise _Fail("the default graph to be the same after building",
                    "another graph left as the default",
                    "leave every `with graph.as_default()` you enter")
    after = _graph_state(outer)
    added = after[0][len(before[0]):]
    if added or after[1] != before[1]:
        what = f"{len(added)} op(s) added to it" + (f", e.g. {added[:3]}" if added else "")
        raise _Fail("nothing added to the default graph outside the one the core hands over",
                    what, "create ops and variables only inside build(), in the current "
                    "default graph; keep no tensors or layers in module-level variables")
    for trace, graph in ((trained.trace, trained.g.graph), (bare.trace, bare.graph)):
        if trace.graph is not graph:  # pragma: no cover - the core sets it
            raise _Fail("build() to run in the core's graph", "another default graph")
        if trace.default_after is not trace.graph:
            raise _Fail("the same default graph when build() returns as when it was called",
                        "a different one", "leave every `with graph.as_default()` you enter")
        if trace.seed_after != s.seed:
            raise _Fail(f"the graph seed to stay {s.seed}", f"{trace.seed_after}",
                        "do not call tf.compat.v1.set_random_seed in build(); the core seeds "
                        "the graph")
        if trace.mutated:
            raise _Fail("hparams to be left as handed over",
                        f"build() changed {', '.join(map(repr, trace.mutated))}",
                        "copy the dict before changing it")
    a, b = _variables(v1, trained.g.graph), _variables(v1, bare.graph)
    if a != b:
        only_a = [f"{n} {list(sh)}" for n, sh in a if (n, sh) not in b][:3]
        only_b = [f"{n} {list(sh)}" for n, sh in b if (n, sh) not in a][:3]
        raise _Fail("the same variables when built twice with the same settings",
                    f"{', '.join(only_a) or 'nothing more'} in the first build but "
                    f"{', '.join(only_b) or 'nothing more'} in the second", "the builder keeps "
                    "state between calls (a module-level layer, cache or counter); create "
                    "everything inside build()")
    return (f"built twice in fresh graphs the same way: {trained.g.params:,} parameters in "
            f"{len(trained.variables)} trainable variables; nothing left behind")


def _graph_state(graph) -> tuple[list[str], dict]:
    ops = [op.name for op in graph.get_operations()]
    collections = {k: len(graph.get_collection(k)) for k in graph.get_all_collection_keys()}
    return ops, collections


def _variables(v1, graph) -> list[tuple[str, tuple]]:
    """The model's variables (not the optimizer's slots): names and shapes."""
    return sorted((v.op.name, tuple(v.shape.as_list()))
                  for v in graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
                  if v.op.name.startswith("model/") and not _SLOT.search(v.op.name))


_SLOT = re.compile(r"/Adam(_\d+)?$")


@_check("logits_shape", "float32 [batch, num_classes] logits for batches of 1, 3, 17 and "
        "every accepted image shape")
def check_logits_shape(s: Subject) -> str:
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    done = []
    for i, shape in enumerate(s.shapes):
        k = CLASS_COUNTS[i % len(CLASS_COUNTS)]
        f = s.forward(shape, k)
        with _session(tf, f.graph) as sess:
            sess.run(f.init)
            for n in BATCH_SIZES:
                out = f.run(tf, sess, _images(n, shape), False)
                if out.shape != (n, k) or out.dtype != np.float32:
                    raise _Fail(f"float32 logits of shape ({n}, {k}) for {n} images of "
                                f"{_fmt_shape(shape)} and {k} classes",
                                f"{out.dtype} of shape {out.shape}",
                                "keep the batch dimension first and end with num_classes units")
                if not np.isfinite(out).all():
                    raise _Fail(f"finite logits for {n} images of {_fmt_shape(shape)}",
                                "NaN or infinite values", "check divisions and logs in build()")
        done.append(f"{_fmt_shape(shape)} ({k} classes)")
    return f"float32 [batch, classes] for batches of {', '.join(map(str, BATCH_SIZES))}: " \
           + ", ".join(done)


@_check("batch_independence", "with training off, an image's logits do not depend on the "
        "rest of its batch")
def check_batch_independence(s: Subject) -> str:
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    shape = s.shapes[0]
    f = s.forward(shape, CLASS_COUNTS[0])
    x = _images(17, shape)
    with _session(tf, f.graph) as sess:
        sess.run(f.init)
        full = f.run(tf, sess, x, False)
        for i in (0, 8, 16):
            alone = f.run(tf, sess, x[i:i + 1], False)
            if not np.allclose(alone[0], full[i], rtol=1e-4, atol=1e-5):
                raise _Fail(f"image {i}'s logits to be the same alone as in a batch of 17 "
                            "(training off)", f"a max difference of {_max_diff(alone[0], full[i]):.3g}",
                            "the builder mixes examples across the batch: check that reshapes "
                            "keep the batch dimension first (e.g. [-1, height, width * channels])")
        reversed_ = f.run(tf, sess, x[::-1], False)[::-1]
        if not np.allclose(reversed_, full, rtol=1e-4, atol=1e-5):
            raise _Fail("the same logits for a batch in reverse order", "a max difference of "
                        f"{_max_diff(reversed_, full):.3g}", "the builder mixes examples across "
                        "the batch")
    return "the same logits alone, in a batch of 17 and in reverse order"


@_check("training_flag", "the training tensor switches dropout and batch norm on, and only "
        "while training")
def check_training_flag(s: Subject) -> str:
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    switches = _dropout_switches(s.spec, s.hparams)
    values = {**s.hparams, **switches}
    shape = s.shapes[0]
    f = s.forward(shape, CLASS_COUNTS[0], values)
    bn = _batch_norm_state(f.graph) is not None
    depends = _depends_on(f.logits, f.training)
    if not switches and not bn and not depends:
        raise _NotApplicable("no dropout-like hyperparameter (a float or bool whose name "
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
        raise _Fail(f"the logits to depend on the `training` tensor ({what})",
                    "logits computed without it", "pass `training` to the dropout and batch-norm "
                    "layers, e.g. tf.compat.v1.layers.dropout(x, rate, training=training)")
    x = s.batch()[0] if tuple(s.batch()[0].shape[1:]) == shape else _images(TRAIN_IMAGES, shape)
    with _session(tf, f.graph) as sess:
        sess.run(f.init)
        eval1, eval2 = f.run(tf, sess, x, False), f.run(tf, sess, x, False)
        if not np.array_equal(eval1, eval2):
            raise _Fail("identical logits from two passes with training off", "a max difference "
                        f"of {_max_diff(eval1, eval2):.3g}", f"{what} must be off when `training` "
                        "is False (dropout's training= argument, batch norm's training=)")
        train = f.run(tf, sess, x, True)
        if np.allclose(train, eval1, rtol=1e-6, atol=1e-7):
            raise _Fail(f"different logits with training on ({what})", "the same logits as with "
                        "training off", "pass `training` on to the dropout and batch-norm layers")
    if bn:
        t = s.trained(s.seed, values)
        sess = t.session()
        stats = _batch_norm_state(t.g.graph) or []
        before = sess.run(stats)
        t.step()
        after = sess.run(stats)
        if not stats or all(np.array_equal(a, b) for a, b in zip(before, after)):
            raise _Fail("batch norm's moving statistics to change in a training step",
                        "no change", "use tf.compat.v1.layers.batch_normalization(x, "
                        "training=training), which adds its updates to UPDATE_OPS (the "
                        "trainer runs them)")
    return f"{what}: on while training, off (and deterministic) otherwise"


@_check("seed_determinism", "the same seed gives the same initial weights, logits and losses; "
        "another seed other weights")
def check_seed_determinism(s: Subject) -> str:
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    x = s.batch()[0]
    shape = x.shape[1:]
    runs = []
    for seed, cache in ((s.seed, True), (s.seed, False), (s.seed + 1, True)):
        f = s.forward(shape, 10, seed=seed, cache=cache)
        with _session(tf, f.graph) as sess:
            sess.run(f.init)
            names = [v.op.name for v in f.trainable]
            runs.append((dict(zip(names, sess.run(f.trainable))), f.run(tf, sess, x, False),
                         f.run(tf, sess, x, True)))
    (w1, eval1, train1), (w2, eval2, train2), (w3, _, _) = runs
    for name in w1:
        if not np.array_equal(w1[name], w2[name]):
            raise _Fail(f"identical initial weights for seed {s.seed} in two fresh graphs",
                        f"{name} differs by up to {_max_diff(w1[name], w2[name]):.3g}",
                        "create every random op inside build(), after the core seeds the "
                        "graph; draw no seeds from the clock, os.urandom or numpy")
    for mode, a, b in (("off", eval1, eval2), ("on", train1, train2)):
        if not np.array_equal(a, b):
            raise _Fail(f"identical logits with training {mode} from two fresh graphs with "
                        f"seed {s.seed}", f"a max difference of {_max_diff(a, b):.3g}",
                        "give random ops in build() (dropout, noise) no seed of their own, so "
                        "the graph seed decides")
    if all(np.array_equal(w1[n], w3[n]) for n in w1):
        raise _Fail(f"other initial weights for seed {s.seed + 1} than for seed {s.seed}",
                    "identical weights", "the builder fixes its own seed (e.g. "
                    "tf.compat.v1.set_random_seed) or initializes every weight to a constant")
    t = s.trained(s.seed)
    t.session()
    again = t.replay()
    if again != t.losses:
        raise _Fail(f"identical losses over {SEED_STEPS} Adam steps in two runs with seed "
                    f"{s.seed}", f"{_fmt_losses(t.losses)} and {_fmt_losses(again)}",
                    "the model draws randomness at run time that the graph seed does not "
                    "decide (a py_function, or a stateful op seeded elsewhere)")
    return (f"identical weights, logits and losses ({_fmt_losses(t.losses)}) for seed "
            f"{s.seed}; seed {s.seed + 1} gives other weights")


def _fmt_losses(losses) -> str:
    return ", ".join(f"{x:.6g}" for x in losses)


@_check("all_variables_train", "every trainable variable gets a gradient and changes in training")
def check_all_variables_train(s: Subject) -> str:
    t = s.trained(s.seed)
    t.session()
    ops = {op.name for op in t.g.graph.get_operations()}
    stuck = [n for n in t.initial if np.array_equal(t.initial[n], t.after[n])]
    if stuck:
        no_grad = [n for n in stuck if f"{n}/Adam" not in ops]
        if no_grad:
            raise _Fail("every trainable variable to receive a gradient from the loss",
                        f"none for {', '.join(no_grad[:4])}",
                        "the logits do not use them: remove them or connect them, or create "
                        "them with trainable=False")
        raise _Fail(f"every trainable variable to change over {SEED_STEPS} Adam steps",
                    f"no change in {', '.join(stuck[:4])}", "their gradient is zero (dead "
                    "ReLUs, a stop_gradient, or a multiplication by 0)")
    return f"all {len(t.initial)} trainable variables change over {SEED_STEPS} Adam steps"


@_check("overfit_one_batch", f"fits {TRAIN_IMAGES} real training images to "
        f"{OVERFIT_TARGET:.0%} training accuracy within {OVERFIT_STEPS} Adam steps")
def check_overfit_one_batch(s: Subject) -> str:
    if (28, 28, 1) not in s.shapes:
        raise _NotApplicable("the model is checked without 28x28x1 images, so there is no real "
                             "batch to fit")
    _, _, what = s.batch()
    t = s.trained(s.seed)
    t.session()  # the first SEED_STEPS steps are done
    lr = s.cfg()["lr"]
    first_loss = loss = t.losses[0]
    acc = 0.0
    while t.steps < OVERFIT_STEPS:
        loss, acc = t.step()
        if not math.isfinite(loss):
            raise _Fail(f"a finite loss while fitting {what}", f"{loss} at step {t.steps}",
                        "check divisions, logs and initial weight scales in build()")
        if acc >= OVERFIT_TARGET:
            return (f"{acc:.0%} training accuracy on {what} at step {t.steps} of full-batch "
                    f"Adam (lr {lr:g}; loss {first_loss:.3f} -> {loss:.3f})")
    raise _Fail(f"at least {OVERFIT_TARGET:.0%} training accuracy on {what} within "
                f"{OVERFIT_STEPS} full-batch Adam steps (lr {lr:g})",
                f"{acc:.1%} (loss {first_loss:.3f} -> {loss:.3f})",
                "the model cannot fit even one batch: check that the logits depend on the "
                "images, that activations do not saturate, and that nothing is frozen")


@_check("hparams_honoured", "reads only declared hyperparameters, and each declared one "
        "changes the parameter count or the outputs")
def check_hparams_honoured(s: Subject) -> str:
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    declared = s.spec.hparams
    shape, k = s.shapes[0], CLASS_COUNTS[0]
    base = s.forward(shape, k)
    undeclared = sorted(str(n) for n in base.trace.read if n not in declared)
    if undeclared:
        raise _Fail("build() to read only the hyperparameters it declares"
                    + (f" ({', '.join(declared)})" if declared else " (none)"),
                    f"it also looks up {', '.join(map(repr, undeclared))}",
                    "declare them in register(..., hparams=...) so that `zoo run --set` can set "
                    "them and every run records them")
    if not declared:
        raise _NotApplicable("the model declares no hyperparameters, and reads none")
    x = _images(8, shape)
    base_out = _outputs(tf, base, x)
    effects, no_effect, untried = [], [], []
    for name, p in declared.items():
        current = s.hparams[name]
        value = _other_value(p, current)
        if value is None:
            untried.append(name)
            continue
        try:
            f = s.forward(shape, k, {**s.hparams, name: value}, cache=False)
        except _BuildFailed as e:
            raise _Fail(f"the model to build with {name}={value!r} (a value its declaration "
                        f"{p.describe()} allows)", f"{type(e.error).__name__}: "
                        f"{_first_line(e.error)}{_location(e.error)}",
                        "narrow the declaration (min=, max=, choices=) or support the value")
        except _Fail as e:
            raise _Fail(f"the model to build with {name}={value!r} (allowed by {p.describe()})",
                        str(e).removeprefix("expected ")) from None
        if f.params != base.params:
            effects.append(f"{name} (parameters)")
            continue
        if f.variables != base.variables:
            effects.append(f"{name} (variables)")
            continue
        out = _outputs(tf, f, x)
        if not np.array_equal(out[0], base_out[0]):
            effects.append(f"{name} (outputs)")
        elif not np.array_equal(out[1], base_out[1]):
            effects.append(f"{name} (training outputs)")
        else:
            never = "" if base.trace.read_all or name in base.trace.read else ", never read"
            no_effect.append(f"{name} ({current!r} -> {value!r}{never})")
    if no_effect:
        raise _Fail("every declared hyperparameter to change the parameter count or the outputs",
                    f"no effect from {', '.join(no_effect)}",
                    "use them in build(), or stop declaring them")
    msg = f"{len(effects)} hyperparameter(s) each change the model: {', '.join(effects)}"
    if untried:
        msg += f"; not varied (free-form strings): {', '.join(untried)}"
    return msg


def _outputs(tf, f: _Forward, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits with training off and on, in a fresh session (same seed, same weights)."""
    with _session(tf, f.graph) as sess:
        sess.run(f.init)
        return f.run(tf, sess, x, False), f.run(tf, sess, x, True)


# ------------------------------------------------------------------ running checks


class BoundCheck:
    """One check bound to one model: call it in a test, or :meth:`run` it for a result.

    Its ``__name__`` is the check's name, so pytest uses it as the test id.
    """

    def __init__(self, check: Check, subject: Subject, skip: str = ""):
        self.check, self.subject, self.skip = check, subject, skip
        self.__name__ = check.name

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def id(self) -> str:
        """``MODEL.CHECK``, for test ids when several models are checked."""
        return f"{self.subject.name}.{self.name}"

    def __repr__(self) -> str:
        return f"<check {self.name} of model {self.subject.name}>"

    def run(self) -> CheckResult:
        """Run the check; never raises for a failing model."""
        name, model = self.name, self.subject.name
        if self.skip:
            return CheckResult(name, model, "skipped", self.skip)
        start = time.perf_counter()
        try:
            status, message = "passed", self.check.func(self.subject)
        except _NotApplicable as e:
            status, message = "skipped", f"not applicable: {e}"
        except _Fail as e:
            status, message = "failed", str(e)
        except _BuildFailed as e:
            status, message = "failed", e.describe(self.subject.spec.hparams)
        except (DataError, UsageError) as e:
            status, message = "failed", f"could not run: {e}"
        except Exception as e:  # noqa: BLE001 - whatever a plugin does is reported, not raised
            status = "failed"
            message = f"the check raised {type(e).__name__}: {_first_line(e)}{_location(e)}"
        return CheckResult(name, model, status, message, time.perf_counter() - start)

    def __call__(self) -> CheckResult:
        """Run the check; raise :class:`CheckFailure` if it fails (skip in pytest if skipped)."""
        __tracebackhide__ = True
        result = self.run()
        if self.name == next(reversed(CHECKS)):  # the last check: free the sessions
            self.subject.close()
        if result.status == "failed":
            raise CheckFailure(result.describe())
        if result.status == "skipped" and "pytest" in sys.modules:
            import pytest

            pytest.skip(result.message)
        return result


def _subject(model, *, hparams=None, overrides=None, shapes=None, seed=0, name=None) -> Subject:
    from zoo_core.plugins import validate_model

    if isinstance(model, str):
        if hparams is not None:
            raise UsageError("hparams= declares a bare builder's hyperparameters; to set values "
                             "of a registered model's, use overrides=")
        from zoo_core.registry import open_zoo

        try:
            spec = open_zoo().model(model)
        except UnknownNameError as e:
            raise UnknownNameError("model", model, e.known,
                                   hint="is its plugin installed? pip install -e PLUGIN_FOLDER") from None
    elif isinstance(model, ModelSpec):
        spec = model
    elif callable(model):
        label = name or getattr(model, "__name__", "")
        if not re.match(r"^[a-z][a-z0-9_-]*$", label or ""):
            label = "builder"
        try:
            spec = validate_model(label, model, "a builder under test", hparams or {}, ("image",))
        except PluginError as e:
            raise UsageError(str(e)) from None
    else:
        raise UsageError(f"expected a model name, a ModelSpec or a builder, got "
                         f"{type(model).__name__}")
    values = spec.defaults()
    for key, value in (overrides or {}).items():
        if key not in spec.hparams:
            raise UsageError(f"unknown hyperparameter {key!r} for {spec.name}; declared: "
                             + (", ".join(spec.hparams) or "none"))
        values[key] = spec.hparams[key].check(key, value)
    shapes = tuple(tuple(int(d) for d in sh) for sh in (shapes or DEFAULT_SHAPES))
    for sh in shapes:
        if len(sh) != 3 or min(sh) < 1:
            raise UsageError(f"image shapes are (height, width, channels), got {sh}")
    return Subject(spec, values, shapes, seed)


def checks(model, *, hparams: dict | None = None, overrides: dict | None = None,
           skip: Iterable[str] = (), shapes=None, seed: int = 0,
           name: str | None = None) -> list[BoundCheck]:
    """The conformance checks bound to one model, in order.

    Args:
        model: a registered model's name (its plugin must be installed), a
            :class:`~zoo_core.spec.ModelSpec`, or a bare builder function.
        hparams: for a bare builder, its declared hyperparameters (HParam or
            defaults), as given to ``register``.
        overrides: hyperparameter values to check with instead of the defaults
            (each is validated against its declaration).
        skip: names of checks to report as skipped.
        shapes: the image shapes (height, width, channels) the model accepts;
            default 28x28x1, 20x12x1 and 32x32x3. Narrow it only for a model that
            truly cannot take other sizes, and say so in its README.
        seed: the graph seed to build with.
        name: for a bare builder, the name to report.

    Returns:
        one :class:`BoundCheck` per check; ``check()`` raises
        :class:`CheckFailure` on failure, ``check.run()`` returns a
        :class:`CheckResult`.

    Raises:
        UsageError: an unknown model, check name or hyperparameter.
    """
    skip = list(skip)
    for s in skip:
        if s not in CHECKS:
            raise UnknownNameError("check", s, CHECKS)
    subject = _subject(model, hparams=hparams, overrides=overrides, shapes=shapes, seed=seed,
                       name=name)
    return [BoundCheck(c, subject, "skipped on request" if c.name in skip else "")
            for c in CHECKS.values()]


def run_checks(model, **kwargs) -> list[CheckResult]:
    """Run every check on one model (arguments as for :func:`checks`); never raises for
    a failing model."""
    bound = checks(model, **kwargs)
    bound[0].subject.prepare()
    try:
        return [c.run() for c in bound]
    finally:
        if bound:
            bound[0].subject.close()


def check_model(model, **kwargs) -> list[CheckResult]:
    """Run every check; raise one :class:`CheckFailure` listing all failures, if any."""
    __tracebackhide__ = True
    results = run_checks(model, **kwargs)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise CheckFailure(f"{len(failed)} of {len(results)} checks failed:\n"
                           + "\n".join(r.describe() for r in failed))
    return results


def parametrize_checks(*models, argname: str = "check", **kwargs):
    """``pytest.mark.parametrize`` over the checks of one or more models, with skipped
    checks marked as skipped. Test ids are the check names for one model, and
    ``MODEL.CHECK`` for several::

        @testing.parametrize_checks("mynet", "mynet-large", skip=["overfit_one_batch"])
        def test_conformance(check):
            check()

    Other arguments are those of :func:`checks`, applied to every model.
    """
    import pytest

    if not models:
        raise UsageError("parametrize_checks needs at least one model")
    bound = [c for m in models for c in checks(m, **kwargs)]
    params = [pytest.param(c, id=c.name if len(models) == 1 else c.id,
                           marks=[pytest.mark.skip(reason=c.skip)] if c.skip else [])
              for c in bound]
    return pytest.mark.parametrize(argname, params)
