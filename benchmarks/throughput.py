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

The parts, in benchmarks/throughput_lib/: common.py (the implementations, constants, goals and
statistics), turns.py (the clock that gives an implementation its turns), trainers.py (the
implementations), workers.py (the worker processes and their pipes), rounds.py (the
coordinator: the rounds and the memory runs), summary.py (ratios, quartiles, goals) and
report.py (the tables).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # throughput_lib, when imported

from throughput_lib import rounds, workers  # noqa: E402
from throughput_lib.common import HOST, IMPLS, MODELS  # noqa: E402
from throughput_lib.report import report  # noqa: E402

# what tests/test_benchmark.py reads of the benchmark, from the script it runs
from throughput_lib.common import quartiles, round_ratios  # noqa: E402,F401
from throughput_lib.summary import goal_status  # noqa: E402,F401
from throughput_lib.trainers import reference_hparams, zoo_settings  # noqa: E402,F401


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
    p.add_argument("--memory-only", action="store_true",
                   help="only the peak-memory runs, no timed rounds (memory does not depend "
                        "on speed: it may run on a busy machine)")
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
        return workers.serve(args)
    if args.rss:
        args.examples = args.examples or None
        return workers.rss_run(args)
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
    result = rounds.measure(args, command)
    text = report(result)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
