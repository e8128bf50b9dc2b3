"""The training graph: inputs, the model's forward pass, the loss and the optimizer (and,
with ``ema``, an average of the weights: :class:`~zoo_core.train.ema.Ema`).

:func:`build_graph` builds a fresh ``tf.Graph`` (seed first) around a plugin's builder,
the way every run, evaluation and conformance check does: the builder is called by
:func:`zoo_core.train.forward.forward` (the one place the zoo calls it), the step is built
from :mod:`zoo_core.train.step`'s pieces. The inputs hold the training data in the graph
(fed once) and gather each batch by index, so a step sends only the indices; ``images`` and
``labels`` can also be fed directly (evaluation). With ``step_loop``, the graph also holds a
:class:`~zoo_core.train.steploop.StepLoop`: several optimizer steps in one ``Session.run``,
built from the same pieces.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from zoo_core._tf import seed_graph
from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data.splits import to_float_op
from zoo_core.settings import TrainerSettings
from zoo_core.train.batchnorm import MovingStats, moving_stats
from zoo_core.train.ema import Ema, Swa
from zoo_core.train.forward import MODEL_SCOPE, forward
from zoo_core.train.step import Loss, Rate, augment, learning_rate, new_optimizer, train_step
from zoo_core.train.steploop import LoopParts, NoLoop, StepLoop, loop_problem


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
    # writes the best checkpoint: ``saver``, or with ``ema`` or ``swa`` the averages under
    # the model variables' own names (:class:`~zoo_core.train.ema.Ema`, ``Swa``)
    best_saver: Any = None
    ema_swap: Any = None  # with ``ema`` or ``swa``: exchanges the weights and their averages
    # batch normalization's moving statistics, estimated again before each evaluation
    # (``bn_batches``); None for a model that keeps none
    moving_stats: MovingStats | None = None
    swa: Swa | None = None  # with ``swa``: its update, run once an epoch (fold, feed)

    @contextmanager
    def averaged(self, session):
        """While the block runs, the model's variables in ``session`` hold the averaged
        weights (``ema`` or ``swa``), and the raw ones again after it; without either,
        nothing."""
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
        loss = Loss(tf, net, inputs.labels, num_classes, settings)
        model_saver = v1.train.Saver(var_list=v1.global_variables(scope=MODEL_SCOPE + "/"),
                                     max_to_keep=None)  # before the optimizer adds its slots
        total_steps = settings.epochs * steps_per_epoch
        with v1.name_scope("train"):
            lr = learning_rate(tf, settings, inputs.global_step, total_steps)
            rate = Rate(lr)
            optimizer = new_optimizer(tf, settings, rate)
            # before the steps' loop, which updates it too; it draws no random number, so
            # every other variable starts where it would without it
            ema = Ema(tf, net.trainable, settings.ema, inputs.global_step) \
                if settings.ema else None
            swa = Swa(tf, net.trainable, settings.epochs, settings.swa) if settings.swa \
                else None  # once an epoch, not a step
            train_op = train_step(tf, optimizer, loss.total, net.trainable, settings,
                                 inputs.global_step, v1.get_collection(v1.GraphKeys.UPDATE_OPS),
                                 ema)
        # the single step's update ops, before the steps' loop adds its own
        stats = moving_stats(tf, MODEL_SCOPE) if settings.bn_batches else None
        steps, problem = None, ""
        if step_loop:
            problem = loop_problem(tf, graph, loss.total)
            if not problem:
                steps = StepLoop(tf, LoopParts(model, hparams, num_classes, settings, seed,
                                               total_steps, inputs, net, optimizer, rate, ema))
        saver = v1.train.Saver(var_list=v1.global_variables(), max_to_keep=None)
        averages = ema or swa
        best_saver = averages.averaged_saver(tf) if averages else saver
        init = v1.global_variables_initializer()
    graph.finalize()
    return ModelGraph(graph, inputs.images, inputs.labels, inputs.index, inputs.training,
                      net.logits, loss.predictions, loss.example_losses, loss.total,
                      loss.accuracy, train_op, lr, inputs.global_step, saver, init,
                      inputs.data_init, inputs.data_feed, net.params, steps, problem,
                      model_saver, best_saver, averages.swap if averages else None, stats,
                      swa)


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
            batch_x = augment(tf, self.gather(tf, self.index), settings, seed, self.global_step)
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
