"""The shared TF1 trainer: one ``tf.Graph`` and ``Session`` loop for every model.

The core adds what every model shares around the plugin's builder: the input
pipeline (training data held in the graph, batches gathered by index, optional
augmentation), sparse softmax cross-entropy plus regularization losses,
``UPDATE_OPS``, Adam with an optional schedule and gradient clipping, and a Saver.
Model selection uses the validation split only: the best epoch's checkpoint is
restored and the test split is evaluated once, at the end.

The trainer reads no command-line flags and prints nothing: progress goes to a
:class:`Progress` object the caller supplies.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core import evaluator
from zoo_core._tf import seed_graph
from zoo_core._tf import tf as import_tf
from zoo_core.datasets import Data
from zoo_core.errors import PluginError, TrainingError
from zoo_core.spec import ModelSpec


class Progress:
    """Receives the trainer's progress; the default does nothing."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, loss: float, accuracy: float) -> None: ...
    def epoch_end(self, record: dict) -> None: ...
    def checkpoint(self, epoch: int, prefix: str) -> None: ...


@dataclass
class ModelGraph:
    """The tensors and ops the trainer and evaluator use."""

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


@dataclass
class TrainResult:
    epochs: list[dict]
    best_epoch: int
    val_accuracy: float
    test: evaluator.Metrics
    params: int
    train_seconds: float
    examples_per_sec: float
    checkpoint: str
    stopped_early: bool = False


def build_graph(model: ModelSpec, hparams: dict, cfg: dict, image_shape, num_classes: int,
                seed: int, n_train: int = 0, steps_per_epoch: int = 1) -> ModelGraph:
    """Build a fresh graph around ``model.build``; the graph seed is set first.

    Args:
        model: the registered model.
        hparams: the model's merged hyperparameters.
        cfg: the merged trainer settings (see ``TRAINER_HPARAMS``).
        image_shape: (height, width, channels).
        num_classes: the number of logits.
        seed: graph-level seed.
        n_train: training examples held in the graph (0 when only evaluating).
        steps_per_epoch: for the learning-rate schedule.
    """
    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        seed_graph(tf, seed)
        h, w, c = image_shape
        with v1.name_scope("input"):
            x_feed = v1.placeholder(tf.float32, [n_train, h, w, c], name="train_images")
            y_feed = v1.placeholder(tf.int32, [n_train], name="train_labels")
            local = [v1.GraphKeys.LOCAL_VARIABLES]
            x_all = v1.Variable(x_feed, trainable=False, collections=local, name="all_images")
            y_all = v1.Variable(y_feed, trainable=False, collections=local, name="all_labels")
            index = v1.placeholder_with_default(tf.zeros([0], tf.int32), [None], name="index")
            training = v1.placeholder_with_default(False, [], name="training")
            global_step = v1.train.get_or_create_global_step()
            batch_x = _augment(tf, tf.gather(x_all, index), cfg, seed, global_step)
            images = v1.placeholder_with_default(batch_x, [None, h, w, c], name="images")
            labels = v1.placeholder_with_default(tf.gather(y_all, index), [None], name="labels")
        with v1.variable_scope("model"):
            try:
                logits = model.build(images, num_classes=num_classes, hparams=dict(hparams),
                                     training=training)
            except Exception as e:
                raise PluginError(
                    f"model {model.name!r} ({model.plugin}): the builder raised "
                    f"{type(e).__name__}: {e}") from e
        _check_logits(model, logits, num_classes, tf)
        trainable = v1.trainable_variables()
        if not trainable:
            raise PluginError(f"model {model.name!r} ({model.plugin}): the builder created no "
                              "trainable variables")
        params = int(sum(np.prod(v.shape.as_list()) for v in trainable))

        with v1.name_scope("loss"):
            example_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            if cfg["label_smoothing"]:
                onehot = tf.one_hot(labels, num_classes)
                data_loss = v1.losses.softmax_cross_entropy(
                    onehot, logits, label_smoothing=cfg["label_smoothing"])
            else:
                data_loss = tf.reduce_mean(example_losses)
            loss = data_loss + v1.losses.get_regularization_loss()
            if cfg["weight_decay"]:
                kernels = [v for v in trainable if v.shape.ndims and v.shape.ndims > 1]
                loss += cfg["weight_decay"] * tf.add_n([tf.nn.l2_loss(v) for v in kernels])
            predictions = tf.argmax(logits, axis=1, output_type=tf.int32)
            accuracy = tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))

        with v1.name_scope("train"):
            lr = _learning_rate(tf, cfg, global_step, cfg["epochs"] * steps_per_epoch)
            optimizer = v1.train.AdamOptimizer(lr)
            grads, variables = zip(*optimizer.compute_gradients(loss, var_list=trainable))
            if cfg["clip_norm"]:
                grads, _ = tf.clip_by_global_norm(grads, cfg["clip_norm"])
            with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
                train_op = optimizer.apply_gradients(zip(grads, variables), global_step=global_step)

        saver = v1.train.Saver(var_list=v1.global_variables(), max_to_keep=None)
        init = v1.global_variables_initializer()
        data_init = tf.group(x_all.initializer, y_all.initializer)
    graph.finalize()
    return ModelGraph(graph, images, labels, index, training, logits, predictions, example_losses,
                      loss, accuracy, train_op, lr, global_step, saver, init, data_init,
                      (x_feed, y_feed), params)


def _check_logits(model: ModelSpec, logits, num_classes: int, tf) -> None:
    where = f"model {model.name!r} ({model.plugin})"
    if not isinstance(logits, tf.Tensor):
        raise PluginError(f"{where}: the builder must return a logits tensor, got "
                          f"{type(logits).__name__}")
    if logits.dtype != tf.float32:
        raise PluginError(f"{where}: logits must be float32, got {logits.dtype.name}")
    shape = logits.shape.as_list() if logits.shape.ndims is not None else None
    if shape is None or len(shape) != 2 or shape[1] != num_classes:
        raise PluginError(f"{where}: logits must have shape [batch, {num_classes}], got {shape}")


def _learning_rate(tf, cfg: dict, step, total_steps: int):
    base = tf.constant(cfg["lr"], tf.float32)
    progress = tf.cast(step, tf.float32) / float(max(total_steps, 1))
    if cfg["lr_schedule"] == "cosine":
        return base * 0.5 * (1.0 + tf.cos(math.pi * tf.minimum(progress, 1.0)))
    if cfg["lr_schedule"] == "step":
        drops = tf.cast(progress >= 0.5, tf.float32) + tf.cast(progress >= 0.75, tf.float32)
        return base * tf.pow(0.1, drops)
    return base


def _augment(tf, images, cfg: dict, seed: int, step):
    """Random shifts and horizontal flips of training batches, on the fly.

    Stateless random ops keyed by (seed, global step): the same step always sees the
    same augmentation, so a resumed run replays exactly.
    """
    shift, flip = cfg["augment_shift"], cfg["augment_flip"]
    if not shift and not flip:
        return images
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
    return images


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX-BF16; Linux only).

    Without them oneDNN would emulate bfloat16, slower than float32, so ``bf16`` then
    trains in float32.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def session_config(tf, cfg: dict | None = None):
    """Session options from the trainer settings: threads per op, XLA, bfloat16.

    ``bf16`` takes effect only where :func:`cpu_has_bf16`; elsewhere it trains in float32.

    ``threads`` 0 keeps TensorFlow's defaults (all cores per op, and as many ops at
    once), which measured as fast as any fixed choice for the zoo's models
    (docs/performance.md).
    """
    cfg = cfg or {}
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=cfg.get("threads") or 0,
        inter_op_parallelism_threads=cfg.get("threads") or 0,
        allow_soft_placement=True,
    )
    if cfg.get("xla"):
        config.graph_options.optimizer_options.global_jit_level = tf.compat.v1.OptimizerOptions.ON_1
    if cfg.get("bf16") and cpu_has_bf16():
        from tensorflow.core.protobuf import rewriter_config_pb2

        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON)
    return config


def train(model: ModelSpec, hparams: dict, cfg: dict, data: Data, seed: int, run_dir: Path,
          progress: Progress | None = None, resume: bool = False) -> TrainResult:
    """Train, select the best epoch on the validation split, evaluate the test split once.

    Args:
        model: the registered model.
        hparams: its merged hyperparameters.
        cfg: the merged trainer settings.
        data: the loaded splits.
        seed: the run's seed (graph seed, batch order, augmentation).
        run_dir: where checkpoints go (``ckpt/``, and ``checkpoint.json`` naming them).
        progress: receives per-step and per-epoch progress.
        resume: continue from the last completed epoch saved in ``run_dir``. Batch
            order and augmentation depend only on (seed, epoch, step), so a resumed
            run ends where an uninterrupted one would (dropout inside a model is
            TensorFlow's stateful randomness and is not replayed exactly).

    Raises:
        TrainingError: the loss became NaN or infinite, or there is nothing to resume.
        KeyboardInterrupt: passed through; the best and last checkpoints are kept.
    """
    tf = import_tf()
    progress = progress or Progress()
    n = len(data.y_train)
    batch = min(cfg["batch_size"], n)
    steps = math.ceil(n / batch)
    g = build_graph(model, hparams, cfg, data.x_train.shape[1:], data.num_classes, seed, n, steps)
    state = TrainState()
    with tf.compat.v1.Session(graph=g.graph, config=session_config(tf, cfg)) as sess:
        sess.run(g.init)
        if resume:
            state = restore_last(sess, g, run_dir)
        sess.run(g.data_init, {g.data_feed[0]: data.x_train, g.data_feed[1]: data.y_train})
        for epoch in range(len(state.epochs) + 1, cfg["epochs"] + 1):
            if cfg["patience"] and state.since_best >= cfg["patience"]:
                state.stopped_early = True
                break
            progress.epoch_start(epoch, cfg["epochs"], steps)
            order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)
            loss_sum = acc_sum = 0.0
            lr = cfg["lr"]
            start = time.perf_counter()
            for s in range(steps):
                idx = order[s * batch:(s + 1) * batch]
                _, loss, acc, lr = sess.run([g.train_op, g.loss, g.accuracy, g.learning_rate],
                                            {g.index: idx, g.training: True})
                if not math.isfinite(loss):
                    raise TrainingError(
                        f"the loss became {loss} at epoch {epoch}, step {s + 1}: try a lower "
                        f"learning rate (--lr {cfg['lr'] / 10:g}) or --set clip_norm=1.0")
                loss_sum += float(loss) * len(idx)
                acc_sum += float(acc) * len(idx)
                progress.step(float(loss), float(acc))
            seconds = time.perf_counter() - start
            val = evaluator.evaluate(sess, g, data.x_val, data.y_val, data.num_classes)
            record = {"epoch": epoch, "train_loss": loss_sum / n, "train_accuracy": acc_sum / n,
                      "val_loss": val.loss, "val_accuracy": val.accuracy, "lr": float(lr),
                      "seconds": seconds}
            state.add(record, n / seconds)
            save_checkpoint(sess, g, run_dir, state)
            if record["best"]:
                progress.checkpoint(epoch, state.best_prefix)
            progress.epoch_end(record)
        if not state.best_prefix:
            raise TrainingError(f"{run_dir}: no epoch finished, so there is nothing to evaluate")
        g.saver.restore(sess, str(run_dir / state.best_prefix))
        test = evaluator.evaluate(sess, g, data.x_test, data.y_test, data.num_classes)
    return TrainResult(
        epochs=state.epochs, best_epoch=state.best_epoch, val_accuracy=state.best_acc, test=test,
        params=g.params, train_seconds=state.train_seconds,
        examples_per_sec=float(np.median(state.rates)), checkpoint=state.best_prefix,
        stopped_early=state.stopped_early,
    )


@dataclass
class TrainState:
    """What a run has done so far; saved with every checkpoint so a run can resume."""

    epochs: list[dict] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0
    best_prefix: str = ""
    last_prefix: str = ""
    since_best: int = 0
    train_seconds: float = 0.0
    rates: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def add(self, record: dict, rate: float) -> None:
        epoch = record["epoch"]
        record["best"] = record["val_accuracy"] > self.best_acc
        if record["best"]:
            self.best_acc, self.best_epoch, self.since_best = record["val_accuracy"], epoch, 0
            self.best_prefix = f"ckpt/best-{epoch}"
        else:
            self.since_best += 1
        self.last_prefix = f"ckpt/last-{epoch}"
        self.epochs.append(record)
        self.train_seconds += record["seconds"]
        self.rates.append(rate)


CHECKPOINT_INDEX = "checkpoint.json"


def save_checkpoint(sess, g: ModelGraph, run_dir: Path, state: TrainState) -> None:
    """Save the epoch's variables, then point ``checkpoint.json`` at them atomically.

    ``last-E`` holds every variable (weights, Adam's slots, the step) for resuming;
    ``best-E`` the best epoch on validation. A crash while saving leaves the previous
    checkpoints and their index intact: older files are removed only after the index
    moved on.
    """
    tf = import_tf()
    previous = read_checkpoint_index(run_dir) or {}
    try:
        (run_dir / "ckpt").mkdir(parents=True, exist_ok=True)
        g.saver.save(sess, str(run_dir / state.last_prefix), write_meta_graph=False,
                     write_state=False)
        if state.best_prefix != previous.get("prefix"):
            g.saver.save(sess, str(run_dir / state.best_prefix), write_meta_graph=False,
                         write_state=False)
        write_json_atomic(run_dir / CHECKPOINT_INDEX, {
            "prefix": state.best_prefix, "epoch": state.best_epoch, "last": state.last_prefix,
            "state": {k: v for k, v in state.__dict__.items()},
        })
    except (OSError, tf.errors.OpError) as e:
        reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
        raise TrainingError(
            f"cannot save the checkpoint of epoch {state.epochs[-1]['epoch']} in {run_dir} "
            f"({reason.splitlines()[0] if reason else type(e).__name__}); the previous "
            "checkpoint is intact: free some disk space, then continue with zoo run --resume"
        ) from None
    for key, keep in (("prefix", state.best_prefix), ("last", state.last_prefix)):
        old = previous.get(key)
        if old and old != keep:
            for f in (run_dir / "ckpt").glob(Path(old).name + ".*"):
                f.unlink(missing_ok=True)


def restore_last(sess, g: ModelGraph, run_dir: Path) -> TrainState:
    """Restore the last completed epoch's variables and the run's progress."""
    index = read_checkpoint_index(run_dir)
    if not index or not index.get("last"):
        raise TrainingError(f"{run_dir}: no checkpoint to resume from (the run ended before its "
                            "first epoch finished); start it again with zoo run")
    g.saver.restore(sess, str(run_dir / index["last"]))
    return TrainState(**index["state"])


def read_checkpoint_index(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / CHECKPOINT_INDEX).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def evaluate_checkpoint(model: ModelSpec, hparams: dict, cfg: dict, run_dir: Path,
                        images: np.ndarray, labels: np.ndarray, num_classes: int,
                        seed: int = 0) -> evaluator.Metrics:
    """Rebuild a run's graph, restore its best checkpoint and evaluate a split."""
    tf = import_tf()
    index = read_checkpoint_index(run_dir)
    if index is None:
        raise TrainingError(f"{run_dir} has no checkpoint (the run ended before its first epoch)")
    g = build_graph(model, hparams, cfg, images.shape[1:], num_classes, seed)
    with tf.compat.v1.Session(graph=g.graph, config=session_config(tf, cfg)) as sess:
        g.saver.restore(sess, str(run_dir / index["prefix"]))
        return evaluator.evaluate(sess, g, images, labels, num_classes)
