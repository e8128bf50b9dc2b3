"""One optimizer step's pieces: the loss (:class:`Loss`), the learning rate and its schedule
(:func:`learning_rate`, read through :class:`Rate`), the optimizer (:func:`new_optimizer`),
its update (:func:`train_step`) and the training batch's augmentation (:func:`augment`).

The single step (:mod:`zoo_core.train.graph`) and the loop body of K steps
(:mod:`zoo_core.train.steploop`) are built from these same pieces, so that looping changes
how steps are dispatched, never what they compute.
"""

from __future__ import annotations

import math

from zoo_core.settings import TrainerSettings
from zoo_core.train.ema import Ema
from zoo_core.train.forward import Forward


class Loss:
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


class Rate:
    """The optimizer's learning rate, read each time gradients are applied: the single
    step's tensor, then the loop body's (v1 optimizers call a callable learning rate)."""

    def __init__(self, value):
        self.value = value

    def __call__(self):
        return self.value


def new_optimizer(tf, settings: TrainerSettings, rate):
    """Adam (the default), or SGD with Nesterov momentum (``optimizer=nesterov``)."""
    v1 = tf.compat.v1
    if settings.optimizer == "nesterov":
        return v1.train.MomentumOptimizer(rate, settings.momentum, use_nesterov=True)
    return v1.train.AdamOptimizer(rate)


def train_step(tf, optimizer, loss, trainable, settings: TrainerSettings, global_step, update_ops,
              ema: Ema | None = None):
    """The optimizer's step, with optional gradient clipping, after the model's
    ``update_ops``; then, with ``ema``, the update of the averages."""
    grads, variables = zip(*optimizer.compute_gradients(loss, var_list=trainable))
    if settings.clip_norm:
        grads, _ = tf.clip_by_global_norm(grads, settings.clip_norm)
    with tf.control_dependencies(update_ops):
        step = optimizer.apply_gradients(zip(grads, variables), global_step=global_step)
    return ema.update(tf, step) if ema is not None else step


def learning_rate(tf, settings: TrainerSettings, step, total_steps: int):
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


def augment(tf, images, settings: TrainerSettings, seed: int, step):
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
