"""The implementations: each trains ``model`` on ``x``, ``y`` for ever, calling the clock,
after filling ``note`` (parameter count, what exactly it trains) and before its first step."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from throughput_lib.common import BATCH, LR, PRECISION, SPEED, floats, peak_rss_mb


def precision_settings(precision: str) -> dict | None:
    """The trainer settings that select ``precision``: the trainer's ``precision`` setting
    where it has one, else its ``bf16`` switch; None when it has no way to."""
    from zoo_core.settings import TRAINER_HPARAMS

    if "precision" in TRAINER_HPARAMS:
        return {"precision": precision}
    if "bf16" in TRAINER_HPARAMS:
        return {"bf16": precision == "bfloat16"}
    return {} if precision == "float32" else None


def zoo_settings(model: str, settings=(), precision: str = "float32") -> tuple:
    """What zoo's trainer trains here: the peers' architecture and optimizer.

    The plugin's default architecture and the trainer's defaults (Adam at 1e-3, no
    schedule, clipping or smoothing), like the peers; from registry.toml only the
    model's speed settings (SPEED: threads, steps per call; the model's speed-only
    hyperparameters, such as a kernel choice), the
    ``precision``, and any ``--set`` on top. registry.toml's quality settings (e.g. the
    rnn's two bidirectional layers) would train another model.

    Returns:
        (model spec, hyperparameters, trainer settings).
    """
    from zoo_core.catalogue import open_zoo
    from zoo_core.cli.common import parse_set_options
    from zoo_core.settings import TRAINER_HPARAMS, TrainerSettings

    raw = parse_set_options(settings)
    r = open_zoo().resolve(model, "fashion", raw_overrides=raw)
    hparams = {k: r.hparams[k] if k in raw or getattr(p, "speed_only", False)
               or (k in SPEED and _is_kernel_choice(k, p)) else p.default
               for k, p in r.model.hparams.items()}
    chosen = {k: getattr(r.trainer, k) for k in TRAINER_HPARAMS if k in raw or k in SPEED}
    chosen.update({k: v for k, v in (precision_settings(precision) or {}).items() if k not in raw})
    return r.model, hparams, TrainerSettings(**{**chosen, "epochs": 1, "batch_size": BATCH})


def _is_kernel_choice(name: str, hparam) -> bool:
    """Whether a model's hyperparameter chooses how its graph computes the same function
    (``kernel``, one of basic|...), not what it computes (the cnn's ``kernel`` is a size)."""
    return name != "kernel" or "basic" in (hparam.choices or ())


def reference_hparams(plugin) -> dict:
    """The plain loop's model: the plugin's defaults, and its original graph where the
    plugin offers other kernels (``kernel=basic``), as a hand-written loop would build it."""
    from zoo_core.settings import as_hparam

    declared = {k: as_hparam(k, v) for k, v in plugin.HPARAMS.items()}
    hparams = {k: p.default for k, p in declared.items()}
    if "kernel" in declared and "basic" in (declared["kernel"].choices or ()):
        hparams["kernel"] = "basic"
    return hparams


def _zoo_data(classes, arrays, n: int | None):
    """The splits zoo's trainer gets: ``n`` training examples (None: all) and small
    validation and test splits for timing, the whole splits for a memory run."""
    from zoo_core.data import Data

    x, y = arrays["x_train"], arrays["y_train"]
    if n is None:
        return Data(classes, x, y, arrays["x_val"], arrays["y_val"], arrays["x_test"],
                    arrays["y_test"])
    xv, yv = arrays["x_val"][:512], arrays["y_val"][:512]
    return Data(classes, x[:n], y[:n], xv, yv, xv, yv)


def train_zoo(model, arrays, n, clock, note, precision="float32", settings=(),
              epochs: int = 10_000):
    """zoo_core.train.loop.train, clocked through its Progress."""
    from zoo_core.catalogue import open_zoo
    from zoo_core.train import loop

    spec, hparams, cfg = zoo_settings(model, settings, precision)
    cfg = dataclasses.replace(cfg, epochs=epochs)
    note.update(params=zoo_params(spec, hparams), hparams=hparams,
                trainer={k: v for k, v in cfg.to_dict().items() if k in SPEED})
    data = _zoo_data(open_zoo().dataset("fashion").classes, arrays, n)
    per_call: dict[int, int] = {}
    epoch = {"steps": 0, "done": 0}

    class Ticks(loop.Progress):
        def epoch_start(self, number, epochs, steps):
            epoch.update(steps=steps, done=0)
            clock.pause() if clock.begun else clock.begin()

        def step(self, loss, accuracy):
            self.steps(1, loss, accuracy)

        def steps(self, count, loss, accuracy):  # K steps in one call (when the trainer can)
            per_call[count] = per_call.get(count, 0) + 1
            epoch["done"] += count
            if epoch["done"] >= epoch["steps"] and "steps_rss_mb" not in note:
                note["steps_rss_mb"] = peak_rss_mb()  # before the first evaluation
            clock.tick(BATCH * count, count)

    note["steps_per_call_seen"] = per_call
    with tempfile.TemporaryDirectory() as run_dir:
        loop.train(spec, hparams, cfg, data, 0, Path(run_dir), Ticks())


def zoo_params(spec, hparams) -> int:
    """Trainable parameters of the model zoo trains (its forward pass, counted by zoo)."""
    from zoo_core._tf import tf as import_tf
    from zoo_core.train.forward import forward

    tf = import_tf()
    with tf.Graph().as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1])
        return forward(spec, images, tf.constant(False), num_classes=10, hparams=hparams).params


def train_tf1(model, arrays, n, clock, note):
    """The hand-written reference: placeholders, feed_dict, a default session."""
    import importlib

    import numpy as np

    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    plugin = importlib.import_module(f"zoo_{model}")
    hparams = reference_hparams(plugin)
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        images = v1.placeholder(tf.float32, [None, 28, 28, 1])
        labels = v1.placeholder(tf.int32, [None])
        training = v1.placeholder_with_default(False, [])
        logits = plugin.build(images, num_classes=10, hparams=hparams, training=training)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                             logits=logits))
        train_op = v1.train.AdamOptimizer(LR).minimize(loss)
        init = v1.global_variables_initializer()
        note.update(params=int(sum(np.prod(v.shape.as_list()) for v in v1.trainable_variables())),
                    hparams=hparams)
    x, y = floats(arrays["x_train"][:n]), arrays["y_train"][:n]
    rng = np.random.default_rng(0)
    with v1.Session(graph=graph) as sess:
        sess.run(init)
        clock.begin()
        while True:
            order = rng.permutation(len(y))
            for s in range(len(y) // BATCH):
                idx = order[s * BATCH:(s + 1) * BATCH]
                sess.run([train_op, loss], {images: x[idx], labels: y[idx], training: True})
                clock.tick(BATCH)


def train_keras(model, arrays, n, clock, note):
    """Keras 3 ``fit``; its process never imports zoo_core (no legacy-Keras switch)."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    if model == "cnn":
        net = keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)])
    else:
        cell = layers.SimpleRNN(128) if model == "rnn" else layers.LSTM(128)
        net = keras.Sequential([keras.Input((28, 28, 1)), layers.Reshape((28, 28)), cell,
                                layers.Dense(10)])
    net.compile(optimizer=keras.optimizers.Adam(LR),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    note["params"] = int(net.count_params())

    class Ticks(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            clock.begin()

        def on_epoch_begin(self, epoch, logs=None):
            if epoch:
                clock.pause()

        def on_train_batch_end(self, batch, logs=None):
            clock.tick(BATCH)

    x, y = floats(arrays["x_train"][:n]), arrays["y_train"][:n]
    net.fit(x, y, batch_size=BATCH, epochs=10_000, shuffle=True, verbose=0, callbacks=[Ticks()])


def torch_net(model: str):
    """The peers' PyTorch model: the same layers and sizes as the zoo plugin's defaults.

    nn.RNN and nn.LSTM carry two bias vectors (input and recurrent, as cuDNN does) where
    BasicRNNCell and BasicLSTMCell carry one: the same function, 128 (rnn) or 512 (lstm)
    more parameters.
    """
    from torch import nn

    if model == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 128), nn.ReLU(), nn.Linear(128, 10))
    cell = nn.RNN if model == "rnn" else nn.LSTM
    rnn = cell(28, 128, batch_first=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.out = rnn, nn.Linear(128, 10)

        def forward(self, images):
            outputs, _ = self.rnn(images)
            return self.out(outputs[:, -1])

    return Net()


def train_torch(model, arrays, n, clock, note, threads: int = 0):
    """PyTorch, ``threads`` per op (0: its default, one per core)."""
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    net = torch_net(model)
    x = floats(arrays["x_train"][:n])
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if model == "cnn"
                                               else x[..., 0]))
    yt = torch.from_numpy(arrays["y_train"][:n].astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), LR)
    loss_fn = nn.CrossEntropyLoss()
    note.update(params=int(sum(p.numel() for p in net.parameters())),
                threads=torch.get_num_threads())
    clock.begin()
    while True:
        order = torch.randperm(len(yt))
        for s in range(len(yt) // BATCH):
            idx = order[s * BATCH:(s + 1) * BATCH]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            clock.tick(BATCH)


TRAIN = {"zoo": train_zoo, "zoo-seq": train_zoo, "zoo-bf16": train_zoo, "tf1": train_tf1,
         "keras": train_keras, "torch": train_torch, "torch-1t": train_torch}


class NotApplicable(Exception):
    """This implementation does not apply to this model (why)."""


def zoo_variant(impl: str, model: str, settings=()) -> tuple[str, list]:
    """The precision and ``--set`` options of a zoo row.

    Raises:
        NotApplicable: zoo-seq for a model whose plugin has no sequence kernel, or uses
            it already.
    """
    settings = list(settings)
    if impl == "zoo-seq":
        from zoo_core.catalogue import open_zoo

        declared = open_zoo().model(model).hparams.get("kernel")
        if declared is None or "sequence" not in (declared.choices or ()):
            raise NotApplicable("its plugin has no sequence kernel")
        if zoo_settings(model, settings)[1].get("kernel") == "sequence":
            raise NotApplicable("zoo uses the sequence kernel already")
        settings.append("kernel=sequence")
    return PRECISION.get(impl, "float32"), settings


def train_impl(impl: str, model, arrays, n, clock, note, settings=()) -> None:
    kwargs = {}
    if impl.startswith("zoo"):
        precision, settings = zoo_variant(impl, model, settings)
        kwargs = {"precision": precision, "settings": settings}
    elif impl == "torch-1t":
        kwargs = {"threads": 1}
    TRAIN[impl](model, arrays, n, clock, note, **kwargs)


def training_flops(model: str) -> float:
    """Floating-point operations per training example: 3x the forward pass as counted by
    TensorFlow's profiler (the plain graph, batch 1)."""
    import importlib

    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    plugin = importlib.import_module(f"zoo_{model}")
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, 28, 28, 1])
        plugin.build(images, num_classes=10, hparams=reference_hparams(plugin),
                     training=tf.constant(False))
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        forward = tf.compat.v1.profiler.profile(graph, options=opts).total_float_ops
    return 3.0 * forward


def versions(host: str) -> dict:
    import numpy as np

    out = {"numpy": np.__version__}
    if host == "tf":
        from zoo_core._tf import tf as import_tf

        out["tensorflow"] = import_tf().__version__
    elif host == "keras":
        import keras
        import tensorflow as tf

        out.update(keras=keras.__version__, keras_backend=keras.backend.backend(),
                   tensorflow=tf.__version__)
    elif host.startswith("torch"):
        import torch

        out["torch"] = torch.__version__
    return out
