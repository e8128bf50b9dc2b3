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
    notes: list[str] = field(default_factory=list)


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
            batch_x = tf.gather(x_all, index)
            batch_x = _augment(tf, batch_x, cfg, seed)
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
            global_step = v1.train.get_or_create_global_step()
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


def _augment(tf, images, cfg: dict, seed: int):
    """Random shifts and horizontal flips of training batches, on the fly."""
    shift, flip = cfg["augment_shift"], cfg["augment_flip"]
    if not shift and not flip:
        return images
    batch = tf.shape(images)[0]
    if flip:
        mask = tf.random.uniform([batch], seed=seed + 1) < 0.5
        images = tf.where(mask[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if shift:
        d = tf.random.uniform([batch, 2], -shift, shift + 1, dtype=tf.int32, seed=seed + 2)
        d = tf.cast(d, tf.float32)
        ones, zeros = tf.ones([batch]), tf.zeros([batch])
        # output (x, y) reads input (x + dx, y + dy); outside the image is 0
        transforms = tf.stack([ones, zeros, d[:, 0], zeros, ones, d[:, 1], zeros, zeros], axis=1)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
            fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")
    return images


def session_config(tf):
    """Session threads: the machine's cores for ops, one op at a time."""
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=os.cpu_count() or 1,
        inter_op_parallelism_threads=1,
        allow_soft_placement=True,
    )


def train(model: ModelSpec, hparams: dict, cfg: dict, data: Data, seed: int, run_dir: Path,
          progress: Progress | None = None) -> TrainResult:
    """Train, select the best epoch on the validation split, evaluate the test split once.

    Args:
        model: the registered model.
        hparams: its merged hyperparameters.
        cfg: the merged trainer settings.
        data: the loaded splits.
        seed: the run's seed (graph seed and batch order).
        run_dir: where checkpoints go (``ckpt/``, and ``checkpoint.json`` naming the best).
        progress: receives per-step and per-epoch progress.

    Raises:
        TrainingError: the loss became NaN or infinite.
        KeyboardInterrupt: passed through; the best checkpoint so far is kept.
    """
    tf = import_tf()
    progress = progress or Progress()
    n = len(data.y_train)
    batch = min(cfg["batch_size"], n)
    steps = math.ceil(n / batch)
    g = build_graph(model, hparams, cfg, data.x_train.shape[1:], data.num_classes, seed, n, steps)
    rng = np.random.default_rng(seed)
    epochs: list[dict] = []
    best_acc, best_epoch, best_prefix, since_best = -1.0, 0, "", 0
    train_seconds, rates = 0.0, []
    stopped_early = False
    with tf.compat.v1.Session(graph=g.graph, config=session_config(tf)) as sess:
        sess.run(g.init)
        sess.run(g.data_init, {g.data_feed[0]: data.x_train, g.data_feed[1]: data.y_train})
        for epoch in range(1, cfg["epochs"] + 1):
            progress.epoch_start(epoch, cfg["epochs"], steps)
            order = rng.permutation(n).astype(np.int32)
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
            train_seconds += seconds
            rates.append(n / seconds)
            val = evaluator.evaluate(sess, g, data.x_val, data.y_val, data.num_classes)
            record = {"epoch": epoch, "train_loss": loss_sum / n, "train_accuracy": acc_sum / n,
                      "val_loss": val.loss, "val_accuracy": val.accuracy, "lr": float(lr),
                      "seconds": seconds}
            epochs.append(record)
            if val.accuracy > best_acc:
                best_acc, best_epoch, since_best = val.accuracy, epoch, 0
                best_prefix = save_checkpoint(sess, g, run_dir, epoch)
                progress.checkpoint(epoch, best_prefix)
            else:
                since_best += 1
            record["best"] = best_epoch == epoch
            progress.epoch_end(record)
            if cfg["patience"] and since_best >= cfg["patience"]:
                stopped_early = True
                break
        g.saver.restore(sess, str(run_dir / best_prefix))
        test = evaluator.evaluate(sess, g, data.x_test, data.y_test, data.num_classes)
    return TrainResult(
        epochs=epochs, best_epoch=best_epoch, val_accuracy=best_acc, test=test, params=g.params,
        train_seconds=train_seconds, examples_per_sec=float(np.median(rates)),
        checkpoint=best_prefix, stopped_early=stopped_early,
    )


CHECKPOINT_INDEX = "checkpoint.json"


def save_checkpoint(sess, g: ModelGraph, run_dir: Path, epoch: int) -> str:
    """Save the variables, then point ``checkpoint.json`` at them atomically.

    A crash while saving leaves the previous checkpoint and its index intact; the
    older checkpoint's files are removed only after the index moved on.
    """
    folder = run_dir / "ckpt"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"ckpt/epoch-{epoch}"
    g.saver.save(sess, str(run_dir / prefix), write_meta_graph=False, write_state=False)
    previous = read_checkpoint_index(run_dir)
    write_json_atomic(run_dir / CHECKPOINT_INDEX, {"prefix": prefix, "epoch": epoch})
    if previous and previous["prefix"] != prefix:
        for f in folder.glob(Path(previous["prefix"]).name + ".*"):
            f.unlink(missing_ok=True)
    return prefix


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
    with tf.compat.v1.Session(graph=g.graph, config=session_config(tf)) as sess:
        g.saver.restore(sess, str(run_dir / index["prefix"]))
        return evaluator.evaluate(sess, g, images, labels, num_classes)
