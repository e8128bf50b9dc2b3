"""The training graph: inputs, the model's forward pass, the loss and the optimizer (and,
with ``ema``, an average of the weights: :class:`~zoo_core.train.ema.Ema`).

:func:`build_graph` builds a fresh ``tf.Graph`` (seed first) around a plugin's builder,
the way every run, evaluation and conformance check does; :func:`forward` is the one
place the zoo calls a builder, and :func:`logits_problem` the one check of what it
returned. The inputs hold the training data in the graph (fed once) and gather each
batch by index, so a step sends only the indices; ``images`` and ``labels`` can also be
fed directly (evaluation). With ``step_loop``, the graph also holds a
:class:`~zoo_core.train.steploop.StepLoop`: several optimizer steps in one ``Session.run``,
built from this module's pieces.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from zoo_core._tf import seed_graph
from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data.splits import to_float_op
from zoo_core.errors import PluginError
from zoo_core.settings import TrainerSettings
from zoo_core.train.batchnorm import MovingStats, moving_stats
from zoo_core.train.blame import first_line, location
from zoo_core.train.ema import Ema

if TYPE_CHECKING:
    from zoo_core.train.steploop import StepLoop


class BuilderError(PluginError):
    """The plugin's builder raised; ``error`` is what it raised."""

    def __init__(self, model: ModelSpec, error: BaseException):
        if isinstance(error, SystemExit):
            text = f"{_where(model)}: the builder called sys.exit({error.code!r}){location(error)}"
        else:
            text = (f"{_where(model)}: the builder raised {type(error).__name__}: "
                    f"{first_line(error)}{location(error)}")
        super().__init__(text)
        self.error = error


@dataclass(frozen=True)
class LogitsProblem:
    """What is wrong with a builder's return value."""

    kind: str  # which rule it breaks: "tensor", "dtype", "shape" or "batch"
    rule: str  # "logits must be float32"
    got: str  # "float64"
    hint: str  # what to change in the builder


class LogitsError(PluginError):
    """The builder returned something other than ``[batch, num_classes]`` float32 logits."""

    def __init__(self, model: ModelSpec, problem: LogitsProblem):
        super().__init__(f"model {model.name!r} ({model.plugin}): {problem.rule}, got {problem.got}")
        self.problem = problem


def _where(model: ModelSpec) -> str:
    return f"model {model.name!r} ({model.plugin})"


def logits_problem(logits: Any, num_classes: int) -> LogitsProblem | None:
    """What is wrong with ``logits`` as a builder's return value, or None."""
    tf = import_tf()
    if not isinstance(logits, tf.Tensor):
        return LogitsProblem("tensor", "the builder must return a logits tensor", type(logits).__name__,
                             "return the output of the last layer")
    if logits.dtype != tf.float32:
        return LogitsProblem("dtype", "logits must be float32", logits.dtype.name,
                             "cast the last layer's output with tf.cast(logits, tf.float32)")
    shape = logits.shape.as_list() if logits.shape.ndims is not None else None
    if shape is None or len(shape) != 2 or shape[1] != num_classes:
        return LogitsProblem("shape", f"logits must have shape [batch, {num_classes}]", str(shape),
                             "end with a dense layer of num_classes units")
    if shape[0] is not None:
        return LogitsProblem("batch", f"logits must have a free batch dimension ([None, {num_classes}])",
                             str(shape), "do not hard-code the batch size; reshape with -1")
    return None


@dataclass
class Forward:
    """A builder's forward pass, as built in the current graph."""

    logits: Any  # float32 [batch, num_classes]
    trainable: list  # the trainable variables it created
    params: int  # their total size


MODEL_SCOPE = "model"  # the variable scope of the builder: the model's own variables


def forward(model: ModelSpec, images, training, *, num_classes: int,
            hparams: Mapping[str, Any], reuse: bool = False) -> Forward:
    """Call ``model.build`` the one way the zoo calls it, in the current graph.

    Under ``variable_scope("model")``, with a copy of ``hparams``; the logits are checked.
    ``reuse``: the variables exist already (a second call, in :class:`StepLoop`).

    Raises:
        BuilderError: the builder raised.
        LogitsError: it returned no ``[batch, num_classes]`` float32 tensor.
        PluginError: it created no trainable variable.
    """
    v1 = import_tf().compat.v1
    with v1.variable_scope(MODEL_SCOPE, reuse=True if reuse else None):
        try:
            logits = model.build(images, num_classes=num_classes, hparams=dict(hparams),
                                 training=training)
        except (Exception, SystemExit) as e:  # sys.exit() in a plugin is the plugin's failure
            raise BuilderError(model, e) from e
    problem = logits_problem(logits, num_classes)
    if problem is not None:
        raise LogitsError(model, problem)
    trainable = v1.trainable_variables()
    if not trainable:
        raise PluginError(f"{_where(model)}: the builder created no trainable variables")
    return Forward(logits, trainable, int(sum(np.prod(v.shape.as_list()) for v in trainable)))


@dataclass
class ModelGraph:
    """The tensors and ops the loop and the evaluator use."""

    graph: Any
    images: Any  # float32 [batch, H, W, C]; defaults to the gathered training batch
    labels: Any  # int32 [batch]
    index: Any  # int32 [batch]: which training examples form the batch
    training: Any  # bool scalar, False unless fed
    logits: Any
    predictions: Any
    example_losses: Any  # unsmoothed cross-entropy per example
    loss: Any  # what is minimised: mean (smoothed) cross-entropy + regularization
    accuracy: Any
    train_op: Any
    learning_rate: Any
    global_step: Any
    saver: Any
    init: Any
    data_init: Any  # fills the in-graph training data
    data_feed: tuple  # (images placeholder, labels placeholder) for data_init
    params: int
    steps: StepLoop | None = None  # K steps per Session.run, when asked for and possible
    steps_problem: str = ""  # why there is no StepLoop although one was asked for
    # restores the model's own variables only (no optimizer state, no step): what evaluating
    # and predicting need, from a full checkpoint or a pack's weights-only one
    model_saver: Any = None
    # writes the best checkpoint: ``saver``, or with ``ema`` the averages under the model
    # variables' own names (:class:`~zoo_core.train.ema.Ema`)
    best_saver: Any = None
    ema_swap: Any = None  # with ``ema``: exchanges the weights and their averages
    # batch normalization's moving statistics, estimated again before each evaluation
    # (``bn_batches``); None for a model that keeps none
    moving_stats: MovingStats | None = None

    @contextmanager
    def averaged(self, session):
        """While the block runs, the model's variables in ``session`` hold the averaged
        weights (``ema``), and the raw ones again after it; without ``ema``, nothing."""
        if self.ema_swap is None:
            yield
            return
        session.run(self.ema_swap)
        try:
            yield
        finally:
            session.run(self.ema_swap)

    def hold(self, session, images: np.ndarray, labels: np.ndarray) -> None:
        """Fill the in-graph training data (``data_init``) in ``session``.

        Raises:
            TypeError: ``images`` are not of the dtype the graph was built for
                (``build_graph(train_dtype=...)``): a session would convert uint8 pixels
                to floats in [0, 255] without a word.
        """
        want = self.data_feed[0].dtype.as_numpy_dtype
        if images.dtype != want:
            raise TypeError(f"the graph holds {np.dtype(want)} training images, got "
                            f"{images.dtype}: build it with train_dtype={images.dtype.name!r}")
        session.run(self.data_init, {self.data_feed[0]: images, self.data_feed[1]: labels})


def build_graph(model: ModelSpec, hparams: Mapping[str, Any], settings: TrainerSettings,
                image_shape, num_classes: int, seed: int, n_train: int = 0,
                steps_per_epoch: int = 1, step_loop: bool = False,
                train_dtype: Any = "float32") -> ModelGraph:
    """Build a fresh graph around ``model.build``; the graph seed is set first.

    Args:
        model: the registered model.
        hparams: the model's merged hyperparameters.
        settings: the trainer settings.
        image_shape: (height, width, channels).
        num_classes: the number of logits.
        seed: graph-level seed.
        n_train: training examples held in the graph (0 when only evaluating).
        train_dtype: their dtype, as :meth:`ModelGraph.hold` gets them: uint8 (scaled to
            [0, 1] in the graph as a batch is gathered, the same multiply as
            :func:`zoo_core.data.to_float`) or float32.
        steps_per_epoch: for the learning-rate schedule.
        step_loop: also build a :class:`~zoo_core.train.steploop.StepLoop`. It is built
            after the single step, so the rest of the graph (every random initial value)
            is the same either way. When the model cannot run in it exactly, there is
            none (the graph is built again without it if need be) and ``steps_problem``
            says why.
    """
    args = (model, hparams, settings, image_shape, num_classes, seed, n_train, steps_per_epoch,
            np.dtype(train_dtype))
    if step_loop:
        from zoo_core.train.steploop import NoLoop  # here: steploop imports this module

        try:
            return _build(*args, step_loop=True)
        except NoLoop as e:
            g = _build(*args, step_loop=False)
            g.steps_problem = str(e)
            return g
    return _build(*args, step_loop=False)


def _build(model, hparams, settings, image_shape, num_classes, seed, n_train, steps_per_epoch,
           train_dtype, step_loop: bool) -> ModelGraph:
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        seed_graph(tf, seed)
        inputs = _Inputs(tf, image_shape, n_train, settings, seed, train_dtype)
        net = forward(model, inputs.images, inputs.training, num_classes=num_classes,
                      hparams=hparams)
        loss = _Loss(tf, net, inputs.labels, num_classes, settings)
        model_saver = v1.train.Saver(var_list=v1.global_variables(scope=MODEL_SCOPE + "/"),
                                     max_to_keep=None)  # before the optimizer adds its slots
        total_steps = settings.epochs * steps_per_epoch
        with v1.name_scope("train"):
            lr = _learning_rate(tf, settings, inputs.global_step, total_steps)
            rate = _Rate(lr)
            optimizer = _optimizer(tf, settings, rate)
            # before the steps' loop, which updates it too; it draws no random number, so
            # every other variable starts where it would without it
            ema = Ema(tf, net.trainable, settings.ema, inputs.global_step) \
                if settings.ema else None
            train_op = _train_op(tf, optimizer, loss.total, net.trainable, settings,
                                 inputs.global_step, v1.get_collection(v1.GraphKeys.UPDATE_OPS),
                                 ema)
        # the single step's update ops, before the steps' loop adds its own
        stats = moving_stats(tf, MODEL_SCOPE) if settings.bn_batches else None
        steps, problem = None, ""
        if step_loop:
            # here, not at the top: steploop builds its body from this module's pieces
            from zoo_core.train.steploop import LoopParts, StepLoop, loop_problem

            problem = loop_problem(tf, graph, loss.total)
            if not problem:
                steps = StepLoop(tf, LoopParts(model, hparams, num_classes, settings, seed,
                                               total_steps, inputs, net, optimizer, rate, ema))
        saver = v1.train.Saver(var_list=v1.global_variables(), max_to_keep=None)
        best_saver = ema.averaged_saver(tf) if ema else saver
        init = v1.global_variables_initializer()
    graph.finalize()
    return ModelGraph(graph, inputs.images, inputs.labels, inputs.index, inputs.training,
                      net.logits, loss.predictions, loss.example_losses, loss.total,
                      loss.accuracy, train_op, lr, inputs.global_step, saver, init,
                      inputs.data_init, inputs.data_feed, net.params, steps, problem,
                      model_saver, best_saver, ema.swap if ema else None, stats)


class _Inputs:
    """The training data held in the graph, and the batch a step gathers from it."""

    def __init__(self, tf, image_shape, n_train: int, settings: TrainerSettings, seed: int,
                 dtype: np.dtype):
        if dtype not in (np.uint8, np.float32):
            raise TypeError(f"training images must be uint8 or float32, not {dtype}")
        v1 = tf.compat.v1
        h, w, c = image_shape
        with v1.name_scope("input"):
            x_feed = v1.placeholder(tf.as_dtype(dtype), [n_train, h, w, c], name="train_images")
            y_feed = v1.placeholder(tf.int32, [n_train], name="train_labels")
            local = [v1.GraphKeys.LOCAL_VARIABLES]
            self.x_all = x_all = v1.Variable(x_feed, trainable=False, collections=local,
                                             name="all_images")
            self.y_all = y_all = v1.Variable(y_feed, trainable=False, collections=local,
                                             name="all_labels")
            self.index = v1.placeholder_with_default(tf.zeros([0], tf.int32), [None], name="index")
            self.training = v1.placeholder_with_default(False, [], name="training")
            self.global_step = v1.train.get_or_create_global_step()
            batch_x = _augment(tf, self.gather(tf, self.index), settings, seed, self.global_step)
            self.images = v1.placeholder_with_default(batch_x, [None, h, w, c], name="images")
            self.labels = v1.placeholder_with_default(tf.gather(y_all, self.index), [None],
                                                      name="labels")
        self.data_init = tf.group(x_all.initializer, y_all.initializer)
        self.data_feed = (x_feed, y_feed)

    def gather(self, tf, index):
        """The training images at ``index``, float32 in [0, 1]: uint8 ones (held at a
        quarter of float32's memory) scaled by the same float32 multiply as
        :func:`zoo_core.data.to_float`, so both give the same bits."""
        images = tf.gather(self.x_all, index)
        return to_float_op(tf, images) if images.dtype == tf.uint8 else images


class _Loss:
    """Cross-entropy (optionally smoothed) plus regularization, and what is reported."""

    def __init__(self, tf, net: Forward, labels, num_classes: int, settings: TrainerSettings):
        v1 = tf.compat.v1
        with v1.name_scope("loss"):
            self.example_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=net.logits)
            if settings.label_smoothing:
                data_loss = v1.losses.softmax_cross_entropy(
                    tf.one_hot(labels, num_classes), net.logits,
                    label_smoothing=settings.label_smoothing)
            else:
                data_loss = tf.reduce_mean(self.example_losses)
            total = data_loss + v1.losses.get_regularization_loss()
            if settings.weight_decay:
                kernels = [v for v in net.trainable if v.shape.ndims and v.shape.ndims > 1]
                total += settings.weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in kernels])
            self.total = total
            self.predictions = tf.argmax(net.logits, axis=1, output_type=tf.int32)
            self.accuracy = tf.reduce_mean(
                tf.cast(tf.equal(self.predictions, labels), tf.float32))


class _Rate:
    """The optimizer's learning rate, read each time gradients are applied: the single
    step's tensor, then the loop body's (v1 optimizers call a callable learning rate)."""

    def __init__(self, value):
        self.value = value

    def __call__(self):
        return self.value


def _optimizer(tf, settings: TrainerSettings, rate):
    """Adam (the default), or SGD with Nesterov momentum (``optimizer=nesterov``)."""
    v1 = tf.compat.v1
    if settings.optimizer == "nesterov":
        return v1.train.MomentumOptimizer(rate, settings.momentum, use_nesterov=True)
    return v1.train.AdamOptimizer(rate)


def _train_op(tf, optimizer, loss, trainable, settings: TrainerSettings, global_step, update_ops,
              ema: Ema | None = None):
    """The optimizer's step, with optional gradient clipping, after the model's
    ``update_ops``; then, with ``ema``, the update of the averages."""
    grads, variables = zip(*optimizer.compute_gradients(loss, var_list=trainable))
    if settings.clip_norm:
        grads, _ = tf.clip_by_global_norm(grads, settings.clip_norm)
    with tf.control_dependencies(update_ops):
        step = optimizer.apply_gradients(zip(grads, variables), global_step=global_step)
    return ema.update(tf, step) if ema is not None else step


def _learning_rate(tf, settings: TrainerSettings, step, total_steps: int):
    """The learning rate at the global step ``step`` of ``total_steps``: with ``warmup``,
    rising linearly from 0 over its fraction of the steps, then ``lr_schedule`` over the
    rest (without, over every step, as before warmup existed)."""
    base = tf.constant(settings.lr, tf.float32)
    if not settings.warmup:
        return _scheduled(tf, settings, base, tf.cast(step, tf.float32) / float(max(total_steps, 1)))
    warm = settings.warmup * total_steps  # in steps, not rounded: > 0 and < total_steps
    at = tf.cast(step, tf.float32)
    after = _scheduled(tf, settings, base, tf.maximum(at - warm, 0.0) / (total_steps - warm))
    return tf.where(at < warm, base * (at / warm), after)


def _scheduled(tf, settings: TrainerSettings, base, progress):
    """``lr_schedule`` at ``progress`` (0 at its first step, 1 at the end)."""
    if settings.lr_schedule == "cosine":
        return base * 0.5 * (1.0 + tf.cos(math.pi * tf.minimum(progress, 1.0)))
    if settings.lr_schedule == "step":
        drops = tf.cast(progress >= 0.5, tf.float32) + tf.cast(progress >= 0.75, tf.float32)
        return base * tf.pow(0.1, drops)
    if settings.lr_schedule == "linear":
        return base * tf.maximum(1.0 - progress, 0.0)
    return base


def _augment(tf, images, settings: TrainerSettings, seed: int, step):
    """Random horizontal flips, shifts and cutout of training batches, on the fly, in that
    order: an image is flipped, then shifted (what moves in is 0), then an
    ``augment_erase`` x ``augment_erase`` square of what the model would see is set to 0.
    The square lies wholly inside the image (its corner uniform over the places it fits),
    so exactly N x N pixels are erased (the whole image when N is its size).

    Stateless random ops keyed by (seed, global step): the same step always sees the
    same augmentation, so a resumed run replays exactly.
    """
    shift, flip, erase = settings.augment_shift, settings.augment_flip, settings.augment_erase
    if not shift and not flip and not erase:
        return images
    height, width = int(images.shape[1]), int(images.shape[2])  # before a shift hides them
    batch = tf.shape(images)[0]
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    if flip:
        mask = tf.random.stateless_uniform([batch], seed=key) < 0.5
        images = tf.where(mask[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if shift:
        d = tf.random.stateless_uniform([batch, 2], seed=key + [0, 1 << 40], minval=-shift,
                                        maxval=shift + 1, dtype=tf.int32)
        d = tf.cast(d, tf.float32)
        ones, zeros = tf.ones([batch]), tf.zeros([batch])
        # output (x, y) reads input (x + dx, y + dy); outside the image is 0
        transforms = tf.stack([ones, zeros, d[:, 0], zeros, ones, d[:, 1], zeros, zeros], axis=1)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
            fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")
    if erase:
        images = _erase(tf, images, erase, height, width, batch, key)
    return images


def _erase(tf, images, size: int, height: int, width: int, batch, key):
    """Cutout: in each image, a ``size`` x ``size`` square (at most the image) set to 0."""
    rows, cols = min(size, height), min(size, width)
    top = tf.random.stateless_uniform([batch, 1, 1], seed=key + [0, 2 << 40], minval=0,
                                      maxval=height - rows + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([batch, 1, 1], seed=key + [0, 3 << 40], minval=0,
                                       maxval=width - cols + 1, dtype=tf.int32)
    y = tf.range(height)[None, :, None]
    x = tf.range(width)[None, None, :]
    inside = (y >= top) & (y < top + rows) & (x >= left) & (x < left + cols)  # [batch, H, W]
    return tf.where(inside[..., None], tf.zeros_like(images), images)


def session_config(settings: TrainerSettings | None = None):
    """Session options from the trainer settings: threads per op, bfloat16.

    ``precision`` bfloat16 (or auto) takes effect only where the CPU has bfloat16
    (:func:`zoo_core.settings.cpu_has_bf16`); elsewhere it trains in float32.
    ``threads`` 0 keeps TensorFlow's defaults (all cores per op, and as many ops at
    once), which measured as fast as any fixed choice for the zoo's models
    (docs/performance.md).
    """
    tf = import_tf()
    settings = settings or TrainerSettings()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=settings.threads,
        inter_op_parallelism_threads=settings.threads,
        allow_soft_placement=True,
    )
    if settings.effective_precision == "bfloat16":
        from tensorflow.core.protobuf import rewriter_config_pb2  # TF is loaded by now

        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON)
    return config
