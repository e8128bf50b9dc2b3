"""Training throughput of zoo's trainer against peers, measured side by side.

    python benchmarks/throughput.py                  # all models, all peers, 3 repeats
    python benchmarks/throughput.py --models cnn --repeats 5

For each model (rnn, lstm, cnn) it trains the same architecture, batch 128, Adam,
on real Fashion-MNIST images, through:

  zoo      zoo's own trainer (zoo_core.train.loop.train), with the plugin's builder and
           default architecture, plain Adam like the peers, and registry.toml's speed
           settings (threads, precision) for the model; float32 unless those say bfloat16
  zoo-bf16 the same with --precision bfloat16: oneDNN bfloat16 mixed precision, on CPUs
           with AMX/AVX512-BF16 (the peers run float32; compare with care)
  tf1      a plain hand-written TF1 Session loop with feed_dict, the same builder
  keras    Keras 3 ``fit`` (a separate process without TF_USE_LEGACY_KERAS)
  torch    PyTorch, when it is installed

Every measurement is a fresh process (so its peak memory is its own), run in an
alternating order; the first steps of each are warm-up and not timed. It prints
the median examples/sec with the range over repeats, the ratio to the best peer,
the fraction of the machine's float32 GEMM peak (measured in the same run), and
the median peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("rnn", "lstm", "cnn")
IMPLS = ("zoo", "zoo-bf16", "tf1", "keras", "torch")
PEERS = ("tf1", "keras", "torch")
BATCH = 128


# ----------------------------------------------------------------- workers

def _timed_rate(stamps: list[float | None], warmup: int) -> float:
    """Examples/sec over the steps after ``warmup``; ``stamps[i]`` is when step i ended,
    None for a step whose call ran on (several steps per call end together)."""
    timed = [(i, t) for i, t in enumerate(stamps) if t is not None and i >= warmup]
    (first, start), (last, end) = timed[0], timed[-1]
    return (last - first) * BATCH / (end - start)


# Trainer settings that change speed, not the model or the optimizer.
SPEED = ("threads", "precision")


def zoo_settings(model: str, settings=()) -> tuple:
    """What zoo's trainer trains here: the peers' architecture and optimizer.

    The plugin's default architecture and the trainer's defaults (Adam at 1e-3, no
    schedule, clipping or smoothing), like the peers; from registry.toml only the
    model's speed settings (SPEED), and any ``--set`` on top. registry.toml's quality
    settings (e.g. the rnn's two bidirectional layers) would train another model.

    Returns:
        (model spec, hyperparameters, trainer settings).
    """
    from zoo_core.catalogue import open_zoo
    from zoo_core.cli.common import parse_set_options
    from zoo_core.settings import TRAINER_HPARAMS, TrainerSettings

    raw = parse_set_options(settings)
    r = open_zoo().resolve(model, "fashion", raw_overrides=raw)
    hparams = {k: r.hparams[k] if k in raw else p.default for k, p in r.model.hparams.items()}
    chosen = {k: getattr(r.trainer, k) for k in TRAINER_HPARAMS if k in raw or k in SPEED}
    return r.model, hparams, TrainerSettings(**{**chosen, "epochs": 1, "batch_size": BATCH})


def work_zoo(model: str, x, y, steps: int, warmup: int, settings=()) -> float:
    from zoo_core.catalogue import open_zoo
    from zoo_core.data import Data
    from zoo_core.train import loop

    spec, hparams, cfg = zoo_settings(model, settings)
    classes = open_zoo().dataset("fashion").classes
    n = BATCH * (steps + warmup)
    data = Data(classes, x[:n], y[:n], x[:BATCH], y[:BATCH], x[:BATCH], y[:BATCH])
    stamps = []

    class Clock(loop.Progress):
        def steps(self, count, loss, accuracy):  # K steps per call end at once
            stamps.extend([None] * (count - 1) + [time.perf_counter()])

    with tempfile.TemporaryDirectory() as run_dir:
        loop.train(spec, hparams, cfg, data, 0, Path(run_dir), Clock())
    return _timed_rate(stamps, warmup)


def work_tf1(model: str, x, y, steps: int, warmup: int) -> float:
    """The hand-written reference: placeholders, feed_dict, default session config."""
    import importlib

    import numpy as np

    from zoo_core._tf import tf as import_tf
    from zoo_core.testing import defaults

    tf = import_tf()
    plugin = importlib.import_module(f"zoo_{model}")
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        images = v1.placeholder(tf.float32, [None, 28, 28, 1])
        labels = v1.placeholder(tf.int32, [None])
        training = v1.placeholder_with_default(False, [])
        logits = plugin.build(images, num_classes=10, hparams=defaults(plugin.HPARAMS),
                              training=training)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                             logits=logits))
        train_op = v1.train.AdamOptimizer(1e-3).minimize(loss)
        init = v1.global_variables_initializer()
    stamps = []
    with v1.Session(graph=graph) as sess:
        sess.run(init)
        order = np.random.default_rng(0).permutation(len(y))
        for s in range(steps + warmup):
            idx = order[(s * BATCH) % (len(y) - BATCH):][:BATCH]
            sess.run([train_op, loss], {images: x[idx], labels: y[idx], training: True})
            stamps.append(time.perf_counter())
    return _timed_rate(stamps, warmup)


def work_keras(model: str, x, y, steps: int, warmup: int) -> float:
    """Keras 3 ``fit``; this process never imports zoo_core (no legacy-Keras switch)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
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
    net.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    n = BATCH * (steps + warmup)
    net.fit(x[:n], y[:n], batch_size=BATCH, epochs=1, shuffle=True, verbose=0, callbacks=[Clock()])
    return _timed_rate(stamps, warmup)


def work_torch(model: str, x, y, steps: int, warmup: int) -> float:
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    if model == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 128), nn.ReLU(), nn.Linear(128, 10))
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    else:
        rnn = nn.RNN(28, 128, batch_first=True) if model == "rnn" else nn.LSTM(28, 128, batch_first=True)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn, self.out = rnn, nn.Linear(128, 10)

            def forward(self, images):
                outputs, _ = self.rnn(images)
                return self.out(outputs[:, -1])
        net = Net()
        xt = torch.from_numpy(np.ascontiguousarray(x[..., 0]))
    yt = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(yt))
    stamps = []
    for s in range(steps + warmup):
        idx = order[(s * BATCH) % (len(yt) - BATCH):][:BATCH]
        opt.zero_grad()
        loss = loss_fn(net(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        stamps.append(time.perf_counter())
    return _timed_rate(stamps, warmup)


def worker(args) -> None:
    import numpy as np

    arrays = np.load(args.data)
    work = globals()[f"work_{args.impl.split('-')[0]}"]
    extra = {}
    if args.impl == "zoo":
        extra = {"settings": args.set}
    elif args.impl == "zoo-bf16":
        extra = {"settings": [*args.set, "precision=bfloat16"]}
    rate = work(args.model, arrays["x"], arrays["y"], args.steps, args.warmup, **extra)
    print(json.dumps({"rate": rate, "peak_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a
    worker would report at least its parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------- parent

def gemm_peak(size: int = 2048, repeats: int = 7) -> float:
    """Practical float32 GEMM throughput of this machine (GFLOP/s, median)."""
    import numpy as np

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * size**3 / statistics.median(times) / 1e9


def training_flops(model: str) -> float:
    """Floating-point operations per training example: 3x the forward pass."""
    import importlib

    from zoo_core._tf import tf as import_tf
    from zoo_core.testing import defaults

    tf = import_tf()
    plugin = importlib.import_module(f"zoo_{model}")
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, 28, 28, 1])
        plugin.build(images, num_classes=10, hparams=defaults(plugin.HPARAMS),
                     training=tf.constant(False))
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        forward = tf.compat.v1.profiler.profile(graph, options=opts).total_float_ops
    return 3.0 * forward


def available(impl: str) -> bool:
    if impl != "torch":
        return True
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0


def measure(impl: str, model: str, data: str, steps: int, warmup: int, settings=()) -> dict:
    env = dict(os.environ)
    if impl in ("keras", "torch"):
        env.pop("TF_USE_LEGACY_KERAS", None)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", impl, "--model", model, "--data", data,
         "--steps", str(steps), "--warmup", str(warmup),
         *[f"--set={kv}" for kv in (settings if impl.startswith("zoo") else ())]],
        capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{impl}/{model} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: per model)")
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting for zoo's trainer (e.g. threads=1), repeatable")
    p.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.impl = args.worker
        worker(args)
        return

    import numpy as np

    from zoo_core.data import load
    from zoo_core.catalogue import open_zoo

    impls = [i for i in args.impls if available(i)]
    skipped = sorted(set(args.impls) - set(impls))
    data = load(open_zoo().dataset("fashion"), limit=12_800)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, x=data.x_train, y=data.y_train)
        default_steps = {"rnn": 300, "lstm": 80, "cnn": 80}
        flops = {m: training_flops(m) for m in args.models}
        peaks, results = [], {(m, i): [] for m in args.models for i in impls}
        for rep in range(args.repeats):
            peaks.append(gemm_peak())
            for m in args.models:
                order = impls[rep % len(impls):] + impls[:rep % len(impls)]  # alternate
                for impl in order:
                    r = measure(impl, m, path, args.steps or default_steps[m], args.warmup,
                                args.set)
                    results[(m, impl)].append(r)
                    print(f"  repeat {rep + 1}/{args.repeats}  {m:<5} {impl:<6} "
                          f"{r['rate']:>9,.0f} ex/s  {r['peak_mb']:>6,.0f} MB", file=sys.stderr)
    peak = statistics.median(peaks)
    print(f"\nmachine: {os.cpu_count()} cores; float32 GEMM peak {peak:.0f} GFLOP/s "
          f"(numpy 2048x2048, median of {len(peaks)})")
    print(f"batch {BATCH}, Adam, median over {args.repeats} repeats (min-max), steady-state steps\n")
    header = f"{'model':<6}{'impl':<7}{'examples/s':>12}{'range':>20}{'vs best peer':>14}" \
             f"{'GEMM peak':>11}{'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for m in args.models:
        med = {i: statistics.median(r["rate"] for r in results[(m, i)]) for i in impls}
        best_peer = max((med[i] for i in impls if i in PEERS), default=float("nan"))
        for i in impls:
            rates = [r["rate"] for r in results[(m, i)]]
            mem = statistics.median(r["peak_mb"] for r in results[(m, i)])
            ratio = med[i] / best_peer
            frac = med[i] * flops[m] / (peak * 1e9)
            print(f"{m:<6}{i:<7}{med[i]:>12,.0f}{f'{min(rates):,.0f}-{max(rates):,.0f}':>20}"
                  f"{ratio:>13.2f}x{frac:>10.0%}{mem:>9,.0f}")
        print(f"{'':<6}({flops[m] / 1e6:.1f} MFLOP per training example)")
    if skipped:
        print(f"\nnot measured (not installed): {', '.join(skipped)}")


if __name__ == "__main__":
    main()
