"""One step per ``Session.run`` against K steps per call (``steps_per_call``), in ONE process.

Builds the zoo's training graph once (the model's registry.toml defaults on
Fashion-MNIST, batch 128) with its step loop, picks K as the trainer does when
``steps_per_call`` is 0 (about 50 ms per call, at most 64), then alternates timed chunks
of single steps and of K-step calls, swapping which goes first each round. Both run the
same graph in the same session, so the shared machine's slow phases hit both; the
ratio of each round is reported as the median and inter-quartile range over rounds, of
examples per second (wall clock) and, less disturbed by other processes on a shared
machine, of examples per CPU second of this process.

    python benchmarks/steps_per_call.py                  # rnn, 7 rounds of ~2 s chunks
    python benchmarks/steps_per_call.py --model cnn --rounds 9 --seconds 3
    python benchmarks/steps_per_call.py --set layers=1 --set bidirectional=false   # plain rnn
    python benchmarks/steps_per_call.py --k 16           # K given, not chosen
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def main() -> None:
    args = _arguments()
    from zoo_core._tf import tf as import_tf
    from zoo_core.train.graph import session_config

    tf = import_tf()
    r, loaded, g = _graph(args)
    n, batch = len(loaded.y_train), r.trainer.batch_size
    rng = np.random.default_rng(0)
    with tf.compat.v1.Session(graph=g.graph, config=session_config(r.trainer)) as sess:
        sess.run(g.init)
        g.hold(sess, loaded.x_train, loaded.y_train)

        def single(steps: int) -> None:
            for rows in rng.integers(0, n, (steps, batch), dtype=np.int32):
                sess.run([g.train_op, g.loss, g.accuracy], {g.index: rows, g.training: True})

        def calls(steps: int, k: int) -> None:
            for _ in range(steps // k):
                sess.run(g.steps.outputs,
                         {g.steps.indices: rng.integers(0, n, (k, batch), dtype=np.int32)})

        k, per_step = _choose_k(args, single, calls)
        steps = max(k, math.ceil(args.seconds / per_step / k) * k)
        ratios, cpu_ratios = _rounds(args, single, calls, k, steps, batch)
    print(f"{args.model} {' '.join(args.settings)}, batch {batch}, K={k} (single step "
          f"{1000 * per_step:.1f} ms), {steps} steps per chunk, {args.rounds} rounds, "
          "K steps per call / 1 step per call (median; IQR):")
    for name, values in (("examples/s", ratios), ("examples per CPU second", cpu_ratios)):
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        print(f"  {name}: {median:.3f}x ({q1:.3f}-{q3:.3f})")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rnn")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each timed chunk")
    parser.add_argument("--k", type=int, default=0, help="steps per call (0: chosen as the "
                                                          "trainer does)")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE", help="a setting over the registry's, as zoo run")
    return parser.parse_args()


def _graph(args):
    """The model as resolved, Fashion-MNIST, and the trainer's graph with its step loop."""
    from zoo_core import data
    from zoo_core.catalogue import open_zoo
    from zoo_core.cli.common import parse_set_options
    from zoo_core.train.graph import build_graph

    zoo = open_zoo()
    r = zoo.resolve(args.model, "fashion", raw_overrides=parse_set_options(args.settings))
    loaded = data.load(zoo.dataset("fashion"))
    n, batch = len(loaded.y_train), r.trainer.batch_size
    g = build_graph(r.model, r.hparams, r.trainer, loaded.x_train.shape[1:], loaded.num_classes,
                    0, n, n // batch, step_loop=True,
                    train_dtype=loaded.x_train.dtype)
    if g.steps is None:
        raise SystemExit(f"{args.model} trains one step per call: {g.steps_problem}")
    return r, loaded, g


def _choose_k(args, single, calls) -> tuple[int, float]:
    """K (given, or chosen as the trainer does from a single step's median time) and that
    time, after warming both up."""
    from zoo_core.train import loop

    single(3)  # warm-up: the first call optimizes the graph
    times = []
    for _ in range(loop.PROBE_STEPS):
        start = time.perf_counter()
        single(1)
        times.append(time.perf_counter() - start)
    per_step = float(np.median(times))
    k = args.k or max(1, min(loop.MAX_STEPS_PER_CALL, round(loop.CALL_SECONDS / per_step)))
    calls(k, k)  # warm-up of the loop
    return k, per_step


def _rounds(args, single, calls, k: int, steps: int, batch: int):
    """The rounds: each a chunk of single steps and one of K-step calls, the first of them
    swapped every round; the ratios K/1 of examples per second and per CPU second."""

    def rate(work) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        return (steps * batch / (time.perf_counter() - wall),
                steps * batch / (time.process_time() - cpu))

    ratios, cpu_ratios = [], []
    for i in range(args.rounds):
        order = [("1", lambda: single(steps)), ("K", lambda: calls(steps, k))]
        measured = dict((name, rate(work)) for name, work in (order if i % 2 == 0
                                                              else order[::-1]))
        ratios.append(measured["K"][0] / measured["1"][0])
        cpu_ratios.append(measured["K"][1] / measured["1"][1])
        print(f"round {i + 1}: 1 step/call {measured['1'][0]:8,.0f} ex/s   "
              f"{k} steps/call {measured['K'][0]:8,.0f} ex/s   ratio {ratios[-1]:.3f}   "
              f"per CPU second {cpu_ratios[-1]:.3f}", flush=True)
    return ratios, cpu_ratios


if __name__ == "__main__":
    main()
