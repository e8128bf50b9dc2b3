"""kernel=sequence against kernel=basic: the zoo's training step, in ONE process, interleaved.

    python benchmarks/kernels.py                          # registry's lstm, 9 rounds
    python benchmarks/kernels.py --model lstm-stack --rounds 7
    python benchmarks/kernels.py --set bidirectional=false --set dropout=0
    python benchmarks/kernels.py --model rnn              # zoo-rnn's kernel likewise

Both graphs are the trainer's own (zoo_core.train.graph.build_graph: the training data held
in the graph, Adam, batch 128), with the model's settings as `zoo run MODEL --dataset fashion`
resolves them and only ``kernel`` differing. Each round times a chunk of about --seconds of
training steps of each kernel, in alternating order; the figure is the median over rounds
of the per-round ratio sequence/basic, with its inter-quartile range, so that drift in a
shared machine's speed moves both sides of a ratio alike. It also reports the ratio of
examples per CPU second of this process, which other processes move less. Figures are
indicative only.
"""

from __future__ import annotations

import argparse
import statistics
import time

BATCH = 128
KERNELS = ("basic", "sequence")


def build(model: str, kernel: str, overrides: dict, n_train: int, x, y):
    """A session with the trainer's graph for ``model`` with ``kernel``, data loaded."""
    from zoo_core._tf import tf as import_tf
    from zoo_core.catalogue import open_zoo
    from zoo_core.train.graph import build_graph, session_config

    tf = import_tf()
    r = open_zoo().resolve(model, "fashion", raw_overrides={**overrides, "kernel": kernel})
    trainer = r.settings.trainer
    g = build_graph(r.model, r.settings.hparams, trainer, x.shape[1:], 10, seed=0,
                    n_train=n_train, steps_per_epoch=n_train // BATCH, train_dtype=x.dtype)
    sess = tf.compat.v1.Session(graph=g.graph, config=session_config(trainer))
    sess.run(g.init)
    g.hold(sess, x[:n_train], y[:n_train])
    return r, g, sess


def chunk(g, sess, rng, seconds: float, n_train: int) -> tuple[float, float]:
    """Train for about ``seconds``: examples per second of wall time and of this process's
    CPU time (the second is less moved by other processes on a shared machine)."""
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        index = rng.integers(0, n_train, BATCH).astype("int32")
        sess.run(g.train_op, {g.index: index, g.training: True})
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * BATCH / elapsed, steps * BATCH / (time.process_time() - cpu)


def main(argv=None) -> None:
    import numpy as np

    from zoo_core.testing import real_images

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lstm",
                   help="a model with a kernel hyperparameter: lstm, lstm-stack, rnn")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another model setting for both kernels (as zoo run --set)")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seconds", type=float, default=2.0, help="per kernel per round")
    p.add_argument("--n-train", type=int, default=10_000, help="training images held in-graph")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds: at least 1")
    overrides = dict(s.split("=", 1) for s in args.set)

    x, y = real_images(args.n_train)  # the first Fashion-MNIST training images, float32
    built = {}
    for kernel in KERNELS:
        t0 = time.perf_counter()
        built[kernel] = build(args.model, kernel, overrides, args.n_train, x, y)
        print(f"{kernel}: graph built in {time.perf_counter() - t0:.1f}s")
    r = built["basic"][0]
    shown = {k: v for k, v in r.settings.hparams.items() if k != "kernel"}
    print(f"{args.model} {shown}, batch {BATCH}, {r.settings.trainer.lr_schedule} Adam "
          f"at lr {r.settings.trainer.lr}")
    rng = np.random.default_rng(0)
    for kernel in KERNELS:  # warm-up: first runs allocate and pick oneDNN primitives
        chunk(*built[kernel][1:], rng, 1.0, args.n_train)

    rates = {k: [] for k in KERNELS}  # (wall, cpu) examples per second, per round
    for n in range(args.rounds):
        order = KERNELS if n % 2 == 0 else KERNELS[::-1]
        for kernel in order:
            rates[kernel].append(chunk(*built[kernel][1:], rng, args.seconds, args.n_train))
        (bw, bc), (sw, sc) = rates["basic"][-1], rates["sequence"][-1]
        print(f"round {n + 1}: basic {bw:6.0f} ex/s, sequence {sw:6.0f} ex/s, ratio "
              f"{sw / bw:.3f}; per CPU second ratio {sc / bc:.3f}")
    for what, i in (("wall time", 0), ("CPU time", 1)):
        ratios = [s[i] / b[i] for s, b in zip(rates["sequence"], rates["basic"])]
        # quantiles() needs two points: one round's IQR is the ratio itself
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        print(f"sequence/basic by {what}: median {statistics.median(ratios):.3f} "
              f"(IQR {q1:.3f}-{q3:.3f}) over {args.rounds} rounds; median ex/s basic "
              f"{statistics.median(r[i] for r in rates['basic']):.0f}, sequence "
              f"{statistics.median(r[i] for r in rates['sequence']):.0f}")
    for _, _, sess in built.values():
        sess.close()


if __name__ == "__main__":
    main()
