"""Training throughput of zoo's trainer against its peers, measured so that drift can't fool it.

    python benchmarks/throughput.py                          # every model and peer, 11 rounds
    python benchmarks/throughput.py --models lstm --rounds 11 --json lstm.json
    python benchmarks/throughput.py --quick                  # a smoke test: rnn, 2 rounds of 1 s
    python benchmarks/throughput.py --report lstm.json       # print a saved run's tables again

For each model (rnn, lstm, cnn): the plugin's default architecture, batch 128, Adam at 1e-3,
float32, real Fashion-MNIST images, trained by

  zoo       zoo's trainer as a user gets it: zoo_core.train.loop.train itself (build_graph,
            the session loop, K steps per Session.run where the trainer has steps_per_call),
            the plugin's default hyperparameters, and registry.toml's speed settings
  zoo-seq   the same with the plugin's sequence kernel (kernel=sequence), for the models
            whose plugin has one and does not use it by default
  zoo-bf16  the same as zoo with the trainer's bfloat16 setting (on CPUs with native bfloat16)
  tf1       the reference: a plain hand-written TF1 loop (placeholders, feed_dict, a default
            Session) around the plugin's original graph
  keras     Keras 3 ``fit`` with the same layers, in a sibling process (Keras 3 cannot share a
            process with the legacy Keras that tf.compat.v1.layers needs)
  torch     PyTorch with the same layers (nn.RNN, nn.LSTM, Conv2d), in a sibling process, when
            it is installed, with its default threads (one per core)
  torch-1t  the same with one thread, in a process of its own: on a loaded machine PyTorch's
            OpenMP threads can be many times slower than one thread, and the goals compare
            zoo with the faster of the two in each round

How it measures, on a machine whose speed drifts by tens of percent from minute to minute:

- Every implementation lives in a long-lived process, all started at once: zoo, zoo-seq,
  zoo-bf16 and tf1 share one (separate graphs and sessions); keras, torch and torch-1t
  have one each. Each implementation trains on its own thread and waits between turns.
- This process hands out the turns, by a pipe handshake: one implementation trains for one
  chunk (--chunk seconds) while every other one waits, blocked on its pipe or its thread's
  event. So only one computes at a time.
- Round 0 warms every implementation up (not timed). Then --rounds rounds, each giving every
  implementation one chunk, in an order that rotates from round to round (models too), as
  two halves: the round's order forwards, then backwards (A B B A), so that a drift within
  the round weighs on every implementation alike. The GEMM peak (numpy, and TensorFlow's
  matmul beside it) is one more chunk. Time between an epoch's last step and the next
  one's first (zoo's per-epoch evaluation and checkpoint) is not counted.
- Each round gives each implementation an examples/s. Ratios are taken within a round, so
  drift between rounds cancels; the tables give the median of the per-round ratios and
  their inter-quartile range (q1-q3, linear interpolation).
- Peak memory: after the rounds, each implementation once more in a fresh process of its
  own, holding the whole training split: zoo a whole one-epoch run of loop.train (its
  evaluations included; its peak before the first evaluation too), the others 100
  training steps; VmHWM.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import queue
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

MODELS = ("rnn", "lstm", "cnn")
IMPLS = ("zoo", "zoo-seq", "zoo-bf16", "tf1", "keras", "torch", "torch-1t")
HOST = {"zoo": "tf", "zoo-seq": "tf", "zoo-bf16": "tf", "tf1": "tf", "keras": "keras",
        "torch": "torch", "torch-1t": "torch-1t"}
TORCH = ("torch", "torch-1t")  # "vs torch" is against the faster of these in each round
PRECISION = {"zoo-bf16": "bfloat16"}  # every other implementation: float32
BATCH = 128
LR = 1e-3
REFERENCE = "tf1"

# Trainer settings (and model hyperparameters) that change how fast, not what, a model
# trains; zoo takes these from registry.toml like a user's run, and nothing else from there.
SPEED = ("threads", "xla", "bf16", "precision", "steps_per_call", "kernel")

# issue #17's goals: (model, implementation, against, at least, what it says)
GOALS = (
    ("rnn", "zoo", "tf1", 1.3, "rnn float32: >= 1.3x the plain TF1 loop"),
    ("rnn", "zoo-bf16", "tf1", 1.6, "rnn bfloat16: >= 1.6x the plain TF1 loop (float32)"),
    ("lstm", "zoo", "torch", 1.0, "lstm float32: >= 1.0x PyTorch nn.LSTM"),
    ("lstm", "zoo-bf16", "torch", 1.3, "lstm bfloat16: >= 1.3x PyTorch nn.LSTM (float32)"),
    ("cnn", "zoo", "gemm", 0.9, "cnn float32: >= 90% of the measured GEMM peak"),
    ("cnn", "zoo-bf16", "tf1", 1.5, "cnn bfloat16: >= 1.5x the plain TF1 loop (float32)"),
)
MEMORY_GOAL = 0.05  # zoo's peak RSS at most the plain TF1 loop's + 5 %


# ----------------------------------------------------------------- statistics

def quartiles(values) -> dict | None:
    """Median, first and third quartile of ``values`` (linear interpolation between order
    statistics, numpy's default), or None when there are none."""
    v = sorted(values)
    if not v:
        return None

    def at(p: float) -> float:
        pos = (len(v) - 1) * p
        lo, hi = math.floor(pos), math.ceil(pos)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return {"median": at(0.5), "q1": at(0.25), "q3": at(0.75), "n": len(v)}


def round_ratios(rates, reference) -> list[float]:
    """``rates[r] / reference[r]`` for every round r in which both were measured."""
    return [a / b for a, b in zip(rates, reference) if a and b]


# ----------------------------------------------------------------- turns

class Stopped(Exception):
    """The coordinator ended the measurement; the implementation's thread unwinds."""


class Clock:
    """One implementation's turns: its thread trains only between :meth:`begin` or the end
    of a chunk and the end of the next chunk, and waits otherwise.

    The implementation calls :meth:`begin` once built (ready; wait for the first turn),
    :meth:`tick` after each call that trained (ends the chunk when its time is up) and
    :meth:`pause` where time should not count (an epoch's end). The worker's main thread
    calls :meth:`give_turn` and :meth:`stop`.
    """

    def __init__(self):
        self._go = threading.Event()
        self.results: queue.Queue = queue.Queue()
        self.seconds, self.min_steps = 1.0, 1
        self.stopping = self.begun = self.dead = False

    # the worker's main thread
    def give_turn(self, seconds: float, min_steps: int) -> dict:
        if self.dead:
            return {"error": "failed earlier"}
        self.seconds, self.min_steps = seconds, min_steps
        self._go.set()
        reply = self.results.get()
        self.dead = "error" in reply
        return reply

    def stop(self) -> None:
        self.stopping = True
        self._go.set()

    # the implementation's thread
    def begin(self) -> None:
        self.begun = True
        self.results.put({"ready": True})
        self._wait()

    def tick(self, examples: int, steps: int = 1) -> None:
        now = time.perf_counter()
        self.examples += examples
        self.steps += steps
        self.calls += 1
        self.last = now
        busy = now - self.start - self.excluded
        if busy >= self.seconds and self.steps >= self.min_steps:
            self.results.put({"examples": self.examples, "seconds": busy, "steps": self.steps,
                              "calls": self.calls})
            self._wait()

    def pause(self) -> None:
        now = time.perf_counter()
        self.excluded += now - self.last
        self.last = now

    def _wait(self) -> None:
        self._go.wait()
        self._go.clear()
        if self.stopping:
            raise Stopped
        self.examples = self.steps = self.calls = 0
        self.excluded = 0.0
        self.start = self.last = time.perf_counter()


class OneEpoch(Clock):
    """For the memory runs: no turns; stops after ``steps`` steps."""

    def __init__(self, steps: int):
        super().__init__()
        self.total, self.done = steps, 0

    def begin(self) -> None:
        self.begun = True

    def tick(self, examples: int, steps: int = 1) -> None:
        self.done += steps
        if self.done >= self.total:
            raise Stopped

    def pause(self) -> None:
        pass


# ----------------------------------------------------------------- implementations
#
# Each trains ``model`` on ``x``, ``y`` for ever, calling the clock, after filling ``note``
# (parameter count, what exactly it trains) and before its first step.

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


def floats(images):
    """A peer's training images: float32 in [0, 1], held whole, as a hand-written loop
    holds them (``x / 255``). zoo's trainer gets the loader's uint8 images and scales each
    batch in its graph: that is part of what its memory figure measures."""
    import numpy as np

    return np.multiply(images, np.float32(1.0 / 255.0), dtype=np.float32)


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


def _train(impl: str, model, arrays, n, clock, note, settings=()) -> None:
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


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: getrusage's ru_maxrss is carried across
    exec on Linux, so a child would report at least its parent's size)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _versions(host: str) -> dict:
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


# ----------------------------------------------------------------- worker processes

def _protocol_out():
    """A private copy of stdout for the protocol; file descriptor 1 goes to stderr, so that
    nothing a library prints can garble it."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


def _quiet_imports(host: str) -> None:
    """Import the host's framework with fd 2 silenced (absl writes before any log level
    applies)."""
    if host == "tf":
        from zoo_core._tf import tf as import_tf

        import_tf()
    elif host == "keras":
        devnull, saved = os.open(os.devnull, os.O_WRONLY), os.dup(2)
        os.dup2(devnull, 2)
        try:
            import keras  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def serve(args) -> None:
    """A worker: build every (model, implementation) it hosts, each on its own thread, then
    train whichever the coordinator names, for one chunk at a time."""
    out = _protocol_out()
    import numpy as np

    _quiet_imports(args.serve)
    arrays = dict(np.load(args.data))
    info = {"versions": _versions(args.serve), "impls": {}, "flops": {}}
    if args.serve == "tf":
        info["flops"] = {m: training_flops(m) for m in args.models}
    clocks, notes, threads = {}, {}, []
    for model in args.models:
        for impl in args.impls:
            clock, note = Clock(), {}
            key = f"{model}/{impl}"
            clocks[key], notes[key] = clock, note

            def run(impl=impl, model=model, clock=clock, note=note):
                try:
                    _train(impl, model, arrays, args.examples, clock, note, args.set)
                    clock.results.put({"error": "training ended"})
                except Stopped:
                    pass
                except NotApplicable as e:
                    clock.results.put({"skip": str(e)})
                except BaseException as e:  # noqa: BLE001 - reported to the coordinator
                    clock.results.put({"error": f"{type(e).__name__}: {e}",
                                       "traceback": traceback.format_exc()[-3000:]})

            thread = threading.Thread(target=run, name=key, daemon=True)
            thread.start()  # one at a time: graphs and sessions are built one after another
            first = clock.results.get()
            clock.dead = "error" in first or "skip" in first
            info["impls"][key] = {**note, **{k: first[k] for k in ("error", "skip") if k in first}}
            if clock.dead:
                print(first.get("traceback", ""), file=sys.stderr)
            threads.append(thread)
    out.write(json.dumps({"ready": info}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            reply = clocks[cmd["key"]].give_turn(cmd["seconds"], cmd["min_steps"])
            out.write(json.dumps(reply) + "\n")
        elif cmd["cmd"] == "stop":
            break
    for clock in clocks.values():
        clock.stop()
    for thread in threads:
        thread.join(timeout=30)
    seen = {k: {"steps_per_call_seen": v["steps_per_call_seen"]}
            for k, v in notes.items() if "steps_per_call_seen" in v}
    out.write(json.dumps({"stopped": {"peak_rss_mb": peak_rss_mb(), "notes": seen}}) + "\n")


# A memory run of a peer trains this many steps at most (holding the whole training split):
# its memory is all there after the first step; zoo's runs a whole epoch and evaluates.
RSS_PEER_STEPS = 100


def rss_run(args) -> None:
    """A memory run: one implementation alone in this fresh process, holding the whole
    training split; prints its peak resident memory."""
    out = _protocol_out()
    import numpy as np

    impl, model = args.rss, args.model
    start, note = time.perf_counter(), {}
    if impl == "tf-floor":  # the runtimes' own floor, before any model
        from zoo_core._tf import tf as import_tf

        tf = import_tf()
        tf.compat.v1.disable_eager_execution()
        tf.compat.v1.Session().run(tf.constant(1.0))
    elif impl == "torch-floor":
        import torch

        torch.ones(1) + 1
    else:
        _quiet_imports(HOST[impl])
        arrays = dict(np.load(args.data))
        n = args.examples or len(arrays["y_train"])
        arrays = {**arrays, "x_train": arrays["x_train"][:n], "y_train": arrays["y_train"][:n]}
        if impl.startswith("zoo"):  # a real one-epoch run: steps, evaluations, checkpoint
            precision, settings = zoo_variant(impl, model, args.set)
            train_zoo(model, arrays, None, OneEpoch(10**9), note, precision, settings, epochs=1)
        else:
            try:
                _train(impl, model, arrays, n, OneEpoch(min(n // BATCH, RSS_PEER_STEPS)), note)
            except Stopped:
                pass
        args.examples = n
    out.write(json.dumps({"peak_rss_mb": peak_rss_mb(), "seconds": time.perf_counter() - start,
                          "examples": args.examples, "steps_rss_mb": note.get("steps_rss_mb")})
              + "\n")


# ----------------------------------------------------------------- the coordinator

def _env(host: str) -> dict:
    env = dict(os.environ)
    if host != "tf":
        env.pop("TF_USE_LEGACY_KERAS", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


class Worker:
    """A worker process and its pipes; replies are read by a thread into a queue."""

    def __init__(self, host: str, argv: list[str], log_dir: str):
        self.host = host
        self.log = Path(log_dir) / f"{host}.log"
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log.open("w"), text=True, env=_env(host))
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.alive = True

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.replies.put(json.loads(line))
        self.replies.put(None)

    def ask(self, cmd: dict | None, timeout: float) -> dict:
        if not self.alive:
            return {"error": f"the {self.host} process has stopped"}
        if cmd is not None:
            try:
                self.proc.stdin.write(json.dumps(cmd) + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            reply = None
        if reply is None:
            self.alive = False
            self.proc.kill()
            tail = self.log.read_text(errors="replace")[-2000:]
            return {"error": f"the {self.host} process died or hung:\n{tail}"}
        return reply


class TfGemm:
    """The same matmul through TensorFlow (oneDNN), in this process: a second reference,
    since numpy's BLAS may not use every instruction the CPU has."""

    def __init__(self, size: int = 2048):
        from zoo_core._tf import tf as import_tf

        tf = import_tf()
        self.size, graph = size, tf.Graph()
        with graph.as_default():
            a = tf.random.stateless_uniform([size, size], seed=[0, 1])
            b = tf.random.stateless_uniform([size, size], seed=[0, 2])
            x, y = tf.compat.v1.Variable(a), tf.compat.v1.Variable(b)
            self.op = tf.matmul(x, y).op  # run, not fetched: no copy of the product
            init = tf.compat.v1.global_variables_initializer()
        self.sess = tf.compat.v1.Session(graph=graph)
        self.sess.run(init)

    def rate(self, budget: float) -> float:
        times, start = [], time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < budget:
            t = time.perf_counter()
            self.sess.run(self.op)
            times.append(time.perf_counter() - t)
        return 2 * self.size**3 / statistics.median(times) / 1e9


def gemm_chunk(seconds: float, size: int = 2048, tf_gemm: TfGemm | None = None) -> dict:
    """float32 GEMM throughput (GFLOP/s): numpy ``size``² matmuls for ``seconds``, the median
    time of each half, one half with numpy's default threads and one with a single thread
    (with threadpoolctl; under load, BLAS threads that wait for each other can be slower
    than one). The peak is the faster half."""
    import numpy as np

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)

    def rate(budget: float) -> float:
        times, start = [], time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < budget:
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        return 2 * size**3 / statistics.median(times) / 1e9

    out = {}
    if tf_gemm is not None:
        out["tensorflow"] = tf_gemm.rate(seconds / 3)
        seconds -= seconds / 3
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        out["default"] = out["peak"] = rate(seconds)
        return out
    out["default"] = rate(seconds / 2)
    with threadpool_limits(1, user_api="blas"):
        out["one_thread"] = rate(seconds / 2)
    return {**out, "peak": max(out["default"], out["one_thread"])}


def rotate(items: list, k: int) -> list:
    k %= max(len(items), 1)
    return items[k:] + items[:k]


def cpu_info() -> dict:
    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "logical_cpus": os.cpu_count(),
            "native_bf16": sorted({"avx512_bf16", "amx_bf16"} & set(flags)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def measure(args, command: str) -> dict:
    import numpy as np

    from zoo_core.catalogue import open_zoo
    from zoo_core.data import load
    try:
        from zoo_core.settings import cpu_has_bf16
    except ImportError:  # before the precision setting
        from zoo_core.train.graph import cpu_has_bf16

    impls = list(args.impls)
    skipped = {}
    if set(TORCH) & set(impls) and subprocess.run([sys.executable, "-c", "import torch"],
                                                  capture_output=True).returncode:
        for impl in set(TORCH) & set(impls):
            impls.remove(impl)
            skipped[impl] = "not installed"
    if "zoo-bf16" in impls and (precision_settings("bfloat16") is None or not cpu_has_bf16()):
        impls.remove("zoo-bf16")
        skipped["zoo-bf16"] = ("this CPU has no native bfloat16" if not cpu_has_bf16()
                               else "the trainer has no bfloat16 setting")
    data = load(open_zoo().dataset("fashion"))
    result = {
        "command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "machine": cpu_info(), "python": platform.python_version(),
        "method": {"rounds": args.rounds, "chunk_seconds": args.chunk, "batch": BATCH,
                   "optimizer": f"Adam lr {LR:g}", "timed_examples": args.examples,
                   "rss_examples": args.rss_examples or len(data.y_train),
                   "data": f"Fashion-MNIST ({data.source})",
                   "hosts": {h: [i for i in impls if HOST[i] == h]
                             for h in dict.fromkeys(HOST[i] for i in impls)},
                   "turns": "pipe handshake: one implementation trains at a time",
                   "ratios": "median of per-round ratios, IQR q1-q3"},
        "skipped": skipped, "versions": {}, "gemm": {}, "models": {}, "processes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, x_train=data.x_train, y_train=data.y_train, x_val=data.x_val,
                 y_val=data.y_val, x_test=data.x_test, y_test=data.y_test)
        del data
        rates = _rounds(args, impls, path, tmp, result)
        _memory(args, impls, path, result)
    _summarize(args, impls, rates, result)
    return result


def _rounds(args, impls, path, tmp, result) -> dict:
    """Start the workers together, warm up, run the rounds; per-round rates."""
    script = os.path.abspath(__file__)
    hosts = {}
    for impl in impls:
        hosts.setdefault(HOST[impl], []).append(impl)
    workers = {
        host: Worker(host, [sys.executable, script, "--serve", host, "--data", path,
                            "--examples", str(args.examples), "--models", *args.models,
                            "--impls", *hosted, *[f"--set={kv}" for kv in args.set]], tmp)
        for host, hosted in hosts.items()}
    tf_gemm = TfGemm()  # while the workers build theirs
    failed = {}
    for host, w in workers.items():
        ready = w.ask(None, timeout=900)
        if "error" in ready:
            print(f"  {host}: {ready['error']}", file=sys.stderr)
            failed.update({f"{m}/{i}": ready["error"] for m in args.models for i in hosts[host]})
            continue
        info = ready["ready"]
        result["versions"].update(info["versions"])
        result["flops"] = {**result.get("flops", {}), **info["flops"]}
        for key, note in info["impls"].items():
            model, impl = key.split("/", 1)
            if "skip" in note:
                result["skipped"][key] = note["skip"]
                continue
            result["models"].setdefault(model, {}).setdefault(impl, {}).update(note)
            if "error" in note:
                failed[key] = note["error"]
    rates = {(m, i): [] for m in args.models for i in impls}
    gemm, gemm_parts = [], []
    timeout = max(120.0, 30 * args.chunk)

    def turn(model, impl, seconds, min_steps, label):
        """One chunk: (examples, seconds), or None when it failed (now or before)."""
        key = f"{model}/{impl}"
        if key in failed or key in result["skipped"]:
            return None
        reply = workers[HOST[impl]].ask({"cmd": "run", "key": key, "seconds": seconds,
                                         "min_steps": min_steps}, timeout)
        if "error" in reply:
            failed[key] = reply["error"]
            print(f"  {label} {key}: failed: {reply['error'][:300]}", file=sys.stderr)
            return None
        return reply["examples"], reply["seconds"]

    for model in args.models:  # round 0: warm-up, not timed
        for impl in impls:
            turn(model, impl, max(args.chunk, 1.0), args.warmup, "warm-up")
    gemm_chunk(0.6, tf_gemm=tf_gemm)
    for r in range(args.rounds):
        tasks = [(m, i) for m in rotate(list(args.models), r) for i in rotate(list(impls), r)]
        tasks.insert(r % (len(tasks) + 1), ("gemm", "numpy"))
        # forwards, then backwards (A B B A): a drift linear in time within the round
        # weighs on every implementation alike; each half is half a chunk
        done: dict = {}
        halves = []
        for model, impl in tasks + tasks[::-1]:
            if model == "gemm":
                halves.append(gemm_chunk(min(args.chunk, 2.0) / 2, tf_gemm=tf_gemm))
                continue
            got = turn(model, impl, args.chunk / 2, 2, f"round {r + 1}")
            if got is None:
                done[(model, impl)] = None
            elif done.get((model, impl), ()) is not None:
                ex, sec = done.get((model, impl), (0, 0.0))
                done[(model, impl)] = (ex + got[0], sec + got[1])
        for key in rates:
            got = done.get(key)
            rates[key].append(got[0] / got[1] if got else None)
        gemm.append(statistics.mean(h["peak"] for h in halves))
        gemm_parts.append({k: statistics.mean(h[k] for h in halves) for k in halves[0]})
        line = []
        for m in args.models:
            ref = rates[(m, REFERENCE)][-1] if REFERENCE in impls else None
            parts = [f"{i} {rates[(m, i)][-1] or 0:,.0f}" for i in impls
                     if f"{m}/{i}" not in result["skipped"]]
            if ref:
                parts.append(f"zoo/tf1 {(rates[(m, 'zoo')][-1] or 0) / ref:.2f}"
                             if "zoo" in impls else "")
            line.append(f"{m}: " + ", ".join(p for p in parts if p))
        print(f"  round {r + 1}/{args.rounds}  gemm {gemm[-1]:.0f} GFLOP/s | " + " | ".join(line),
              file=sys.stderr)
    for host, w in workers.items():
        reply = w.ask({"cmd": "stop"}, timeout=120)
        stopped = reply.get("stopped", {})
        result["processes"][host] = {"impls": hosts[host], "models": list(args.models),
                                     "peak_rss_mb": stopped.get("peak_rss_mb")}
        for key, note in stopped.get("notes", {}).items():
            model, impl = key.split("/", 1)
            result["models"][model][impl].update(note)
        w.proc.wait(timeout=60)
    tf_rates = [p["tensorflow"] for p in gemm_parts if "tensorflow" in p]
    tf_gemm.sess.close()
    result["gemm_tensorflow"] = {"per_round": tf_rates, **(quartiles(tf_rates) or {}),
                                 "how": "tf.matmul 2048x2048 float32 in a default Session "
                                        "(oneDNN), median time within each round's chunk"}
    result["gemm"] = {"per_round": gemm, **(quartiles(gemm) or {}), "parts": gemm_parts,
                      "how": "numpy float32 2048x2048 matmul, median time within each round's "
                             "chunk, the faster of numpy's default threads and one thread"}
    result["failed"] = failed
    return rates


def _memory(args, impls, path, result) -> None:
    """Each implementation alone in a fresh process, one epoch: its peak RSS (several at a
    time, after the timed rounds: memory does not depend on speed)."""
    runs = [(m, i) for m in args.models for i in impls if f"{m}/{i}" not in result["skipped"]]
    if not args.quick:
        runs += [("-", "tf-floor")] + ([("-", "torch-floor")] if set(TORCH) & set(impls) else [])
    script = os.path.abspath(__file__)
    pending, active, out = list(runs), [], {}
    at_once = 6 if args.quick else 3  # peak memory does not depend on speed; time does
    while pending or active:
        while pending and len(active) < at_once:
            model, impl = pending.pop(0)
            host = HOST.get(impl, impl.split("-")[0])
            argv = [sys.executable, script, "--rss", impl, "--model", model, "--data", path,
                    "--examples", str(args.rss_examples or 0), *[f"--set={kv}" for kv in args.set]]
            active.append(((model, impl), subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(host))))
        (key, proc), active = active[0], active[1:]
        stdout, stderr = proc.communicate(timeout=1800)
        if proc.returncode:
            print(f"  memory run {key[0]}/{key[1]} failed:\n{stderr[-1500:]}", file=sys.stderr)
            continue
        out[key] = json.loads(stdout.strip().splitlines()[-1])
        print(f"  memory {key[0]:<5} {key[1]:<11} {out[key]['peak_rss_mb']:,.0f} MB "
              f"({out[key]['seconds']:.0f} s)", file=sys.stderr)
    for (model, impl), r in out.items():
        if model == "-":
            result.setdefault("floors", {})[impl] = r["peak_rss_mb"]
        else:
            result["models"].setdefault(model, {}).setdefault(impl, {}).update(
                peak_rss_mb=r["peak_rss_mb"], rss_run_seconds=r["seconds"],
                **({"steps_rss_mb": r["steps_rss_mb"]} if r.get("steps_rss_mb") else {}))
            result["method"]["rss_examples"] = r["examples"]
            result["method"]["rss_whole_split"] = not args.rss_examples


def _summarize(args, impls, rates, result) -> None:
    """Per-round ratios and their quartiles, the GEMM fractions, and the goals."""
    gemm = {"gemm": result["gemm"].get("per_round", []),
            "tf_gemm": result.get("gemm_tensorflow", {}).get("per_round", [])}
    for model in args.models:
        entries = result["models"].setdefault(model, {})
        flops = result.get("flops", {}).get(model)
        references = {}
        if REFERENCE in impls:
            references[REFERENCE] = rates[(model, REFERENCE)]
        torches = [rates[(model, i)] for i in TORCH if i in impls]
        if torches:  # the faster torch of each round
            references["torch"] = [max((r for r in rs if r), default=None) for rs in zip(*torches)]
        for impl in impls:
            if f"{model}/{impl}" in result["skipped"]:
                continue
            e = entries.setdefault(impl, {})
            rs = rates[(model, impl)]
            e["precision"] = PRECISION.get(impl, "float32")
            e["rates"] = rs
            e["rate"] = quartiles([r for r in rs if r])
            for ref, ref_rates in references.items():
                ratio = round_ratios(rs, ref_rates)
                e[f"vs_{ref}"] = {**(quartiles(ratio) or {}), "per_round": ratio}
            for name, peaks in gemm.items():
                if flops and peaks:
                    frac = round_ratios([r * flops / 1e9 if r else None for r in rs], peaks)
                    e[f"{name}_fraction"] = {**(quartiles(frac) or {}), "per_round": frac}
        if flops:
            entries["_flops_per_example"] = flops
    goals = []
    for model, impl, against, target, text in GOALS:
        e = result["models"].get(model, {}).get(impl, {})
        q = e.get("gemm_fraction" if against == "gemm" else f"vs_{against}")
        if not q or "median" not in q:
            goals.append({"goal": text, "target": target, "measured": None,
                          "status": "not measured"})
            continue
        goals.append({"goal": text, "target": target, "measured": q["median"], "q1": q["q1"],
                      "q3": q["q3"], "met": q["median"] >= target, "status": _status(q, target)})
    for model in args.models:
        zoo = result["models"].get(model, {}).get("zoo", {})
        ref = result["models"].get(model, {}).get(REFERENCE, {}).get("peak_rss_mb")
        if zoo.get("peak_rss_mb") and ref:
            ratio, limit = zoo["peak_rss_mb"] / ref, 1 + MEMORY_GOAL
            goals.append({
                "goal": f"{model} memory: zoo's peak RSS <= the plain TF1 loop's + 5%",
                "target": limit, "measured": ratio, "met": ratio <= limit,
                "steps_only": zoo["steps_rss_mb"] / ref if zoo.get("steps_rss_mb") else None,
                "status": "met" if ratio <= limit else
                          f"missed: {zoo['peak_rss_mb'] - ref * limit:,.0f} MB over"})
    result["goals"] = goals


def _status(q: dict, target: float) -> str:
    """Whether the median of per-round ratios meets ``target``, and how its IQR lies."""
    if q["median"] >= target:
        return "met" if q["q1"] >= target else "met by the median; the IQR reaches below"
    short = 1 - q["median"] / target
    return f"missed by {short:.0%}" + (" (the IQR reaches it)" if q["q3"] >= target else "")


# ----------------------------------------------------------------- the report

def _q(q: dict | None) -> str:
    """A ratio's median and IQR: ``1.11x (1.05-1.15)``."""
    if not q or "median" not in q:
        return "-"
    return f"{q['median']:.2f}x ({q['q1']:.2f}-{q['q3']:.2f})"


def _pct(q: dict | None) -> str:
    if not q or "median" not in q:
        return "-"
    return f"{q['median']:.0%} ({q['q1']:.0%}-{q['q3']:.0%})"


def _mb(value) -> str:
    return f"{value:,.0f}" if value else "-"


def report(result: dict) -> str:
    """The tables, as text: what the script prints, and docs/performance.md quotes."""
    m, meth = result["machine"], result["method"]
    lines = [
        f"command: {result['command']}",
        f"date: {result['date']}",
        f"machine: {m['model']}, {m['cores']} cores, {m['memory_gb']} GiB, native bfloat16: "
        f"{', '.join(m['native_bf16']) or 'no'}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(result["versions"].items()))
        + f", python {result['python']}",
        f"method: {meth['rounds']} rounds after a warm-up round; each round gives every "
        f"implementation one {meth['chunk_seconds']:g} s chunk, one at a time (pipe handshake), "
        "in an order that rotates every round, as two halves (the order forwards, then "
        "backwards)",
        "processes: " + "; ".join(f"{h}: {', '.join(i)}" for h, i in meth["hosts"].items()),
        f"batch {meth['batch']}, {meth['optimizer']}, float32 unless marked, {meth['data']}, "
        f"cycling through {meth['timed_examples']:,} training examples",
    ]
    for key, what in (("gemm", "numpy 2048x2048 matmul, the faster of its default threads and "
                               "one thread"),
                      ("gemm_tensorflow", "tf.matmul 2048x2048, oneDNN")):
        g = result.get(key, {})
        if g.get("median"):
            label = "float32 GEMM peak" if key == "gemm" else "TensorFlow matmul"
            lines.append(f"{label}: {g['median']:.0f} GFLOP/s (IQR {g['q1']:.0f}-{g['q3']:.0f}; "
                         f"{what}; one chunk per round)")
    lines += ["", "ex/s: median over rounds (IQR). vs tf1, vs torch: median of per-round ratios "
                  "(IQR); torch is the faster torch row of each round.",
              "GEMM peak: training FLOPs/s over the same round's numpy GEMM peak; TF matmul: "
              "over TensorFlow's. peak RSS: see below.", ""]
    header = (f"{'model':<6}{'impl':<10}{'precision':<10}{'params':>8}{'ex/s':>8}{'(IQR)':>14}"
              f"{'vs tf1':>21}{'vs torch':>21}{'GEMM peak':>17}{'TF matmul':>15}{'RSS MB':>8}")
    lines += [header, "-" * len(header)]
    for model, entries in result["models"].items():
        for impl, e in entries.items():
            if impl.startswith("_") or not e.get("rate"):
                continue
            rate = e["rate"]
            iqr = f"{rate['q1']:,.0f}-{rate['q3']:,.0f}" if rate else "-"
            lines.append(
                f"{model:<6}{impl:<10}{e['precision']:<10}{e.get('params', 0):>8,}"
                f"{rate.get('median', 0):>8,.0f}{iqr:>14}{_q(e.get('vs_tf1')):>21}"
                f"{_q(e.get('vs_torch')):>21}{_pct(e.get('gemm_fraction')):>17}"
                f"{_pct(e.get('tf_gemm_fraction')):>15}{_mb(e.get('peak_rss_mb')):>8}")
        if entries.get("_flops_per_example"):
            lines.append(f"{'':<6}({entries['_flops_per_example'] / 1e6:.1f} MFLOP per training "
                         "example: 3x the forward pass, TensorFlow's profiler)")
    lines.append("")
    for model, entries in result["models"].items():
        for impl, e in entries.items():
            if impl.startswith("_"):
                continue
            details = []
            if e.get("trainer"):
                details.append("trainer " + ", ".join(f"{k}={v}" for k, v in e["trainer"].items()))
            if e.get("steps_per_call_seen"):
                seen = sorted(e["steps_per_call_seen"].items(), key=lambda kv: int(kv[0]))
                details.append("steps per Session.run: " + ", ".join(
                    f"{k} ({v} calls)" for k, v in seen))
            if isinstance((e.get("hparams") or {}).get("kernel"), str):
                details.append(f"kernel={e['hparams']['kernel']}")
            if e.get("threads"):
                details.append(f"{e['threads']} threads")
            if details:
                lines.append(f"{model} {impl}: " + "; ".join(details))
    held = (f"the whole training split ({meth['rss_examples']:,} images)"
            if meth.get("rss_whole_split") else f"{meth['rss_examples']:,} training images")
    lines += ["", f"peak RSS (MB, VmHWM): each implementation alone in a fresh process training "
                  f"on {held}; zoo: a whole "
                  f"one-epoch loop.train run with its evaluations (and, as 'steps', its peak "
                  f"after the epoch's steps, before evaluating); the others: "
                  f"{RSS_PEER_STEPS} training steps"]
    impls = [i for i in IMPLS if any(i in e for e in result["models"].values())]
    header = f"{'model':<6}{'zoo steps':>10}" + "".join(f"{i:>10}" for i in impls) + \
        f"{'zoo/tf1 steps':>15}{'whole run':>11}"
    lines += [header, "-" * len(header)]
    for model, entries in result["models"].items():
        zoo, ref = entries.get("zoo", {}), entries.get(REFERENCE, {}).get("peak_rss_mb")
        row = f"{model:<6}{_mb(zoo.get('steps_rss_mb')):>10}" + "".join(
            f"{_mb(entries.get(i, {}).get('peak_rss_mb')):>10}" for i in impls)
        steps = f"{zoo['steps_rss_mb'] / ref - 1:+.1%}" if ref and zoo.get("steps_rss_mb") else "-"
        whole = f"{zoo['peak_rss_mb'] / ref - 1:+.1%}" if ref and zoo.get("peak_rss_mb") else "-"
        lines.append(row + f"{steps:>15}{whole:>11}")
    floors = result.get("floors", {})
    if floors:
        lines.append("runtime floor (import, one op): " + ", ".join(
            f"{k.split('-')[0]} {v:,.0f} MB" for k, v in floors.items()))
    if result.get("processes"):
        lines.append("the timing processes (all models, shared): " + ", ".join(
            f"{h} ({', '.join(p['impls'])}) {_mb(p['peak_rss_mb'])} MB"
            for h, p in result["processes"].items()))
    lines += ["", "issue #17 goals (median of per-round ratios, IQR):"]
    for goal in result.get("goals", []):
        text = f"  {goal['goal']:<58}"
        if goal["measured"] is None:
            lines.append(text + "not measured")
        elif "memory" in goal["goal"]:
            steps = (f" (steps only {goal['steps_only'] - 1:+.1%})"
                     if goal.get("steps_only") else "")
            lines.append(text + f"{goal['measured'] - 1:+.1%}{steps}  {goal['status']}")
        else:
            q = {"median": goal["measured"], "q1": goal["q1"], "q3": goal["q3"]}
            lines.append(text + f"{_pct(q) if 'GEMM' in goal['goal'] else _q(q)}  {goal['status']}")
    if result.get("skipped"):
        lines.append("not measured: " + ", ".join(f"{k} ({v})"
                                                  for k, v in result["skipped"].items()))
    if result.get("failed"):
        lines.append("failed: " + "; ".join(f"{k}: {v.splitlines()[0][:200]}"
                                            for k, v in result["failed"].items()))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None, choices=MODELS)
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 11; --quick 2)")
    p.add_argument("--chunk", type=float, default=None,
                   help="seconds per implementation per round (default 2; --quick 1)")
    p.add_argument("--warmup", type=int, default=10, help="steps at least in the warm-up round")
    p.add_argument("--examples", type=int, default=25_600,
                   help="training examples the timed runs cycle through")
    p.add_argument("--rss-examples", type=int, default=None,
                   help="training examples of the memory runs (default: the whole split)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: rnn only, 2 rounds of 1 s chunks, small memory runs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for zoo's trainer (e.g. steps_per_call=1), repeatable")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--report", metavar="FILE", help="print the tables of a saved JSON run")
    p.add_argument("--serve", choices=sorted(set(HOST.values())), help=argparse.SUPPRESS)
    p.add_argument("--rss", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return serve(args)
    if args.rss:
        args.examples = args.examples or None
        return rss_run(args)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return
    args.models = args.models or (["rnn"] if args.quick else list(MODELS))
    args.rounds = args.rounds or (2 if args.quick else 11)
    args.chunk = args.chunk or (1.0 if args.quick else 2.0)
    if args.quick:
        args.warmup = min(args.warmup, 5)
        args.examples = min(args.examples, 6_400)
        args.rss_examples = args.rss_examples or 2_560
    command = shlex.join(["python", "benchmarks/throughput.py", *sys.argv[1:]])
    result = measure(args, command)
    text = report(result)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
