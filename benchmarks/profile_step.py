"""Where a training step's time goes: TensorFlow's own step trace, by op type.

Builds the zoo's training graph (the model's registry.toml defaults, batch 128, the
precision given) exactly as ``zoo run`` does, holds the real Fashion-MNIST training split
in it, warms up, then traces single steps with ``RunOptions(trace_level=FULL_TRACE)`` and
sums each op's time (start to end, per op, on whichever thread ran it) by op type. It
prints, per model and precision:

- wall ms per step (untraced steps, median) and the ops' summed ms per step (traced):
  ops run on two threads at once, so the sum can exceed the wall time;
- the op types taking the most time, with their share of the summed op time, and how
  much of it is matrix work (MatMul, Conv2D and their gradients, oneDNN's fused forms)
  against everything else (element-wise, gathers, Adam's updates, casts);
- the gap: wall time the ops do not cover (Python, ``Session.run`` dispatch, waits).

A trace slows the ops it records a little; the shares, not the absolute times, are the
point. Run it on a quiet machine:

    python benchmarks/profile_step.py                          # rnn lstm cnn, float32
    python benchmarks/profile_step.py --models cnn --precision bfloat16
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import numpy as np

# matrix work: any kernel of these (oneDNN's _MklNativeFusedConv2D, _MklMatMul, gradients)
MATRIX = ("MatMul", "Conv2D", "Einsum")


def profile(model: str, precision: str, steps: int, warmup: int) -> dict:
    from zoo_core import data
    from zoo_core._tf import tf as import_tf
    from zoo_core.catalogue import open_zoo
    from zoo_core.train.graph import build_graph, session_config

    tf = import_tf()
    zoo = open_zoo()
    r = zoo.resolve(model, "fashion", overrides={"precision": precision, "steps_per_call": 1})
    loaded = data.load(zoo.dataset("fashion"))
    n, batch = len(loaded.y_train), r.trainer.batch_size
    g = build_graph(r.model, r.hparams, r.trainer, loaded.x_train.shape[1:], loaded.num_classes,
                    0, n, n // batch, train_dtype=loaded.x_train.dtype)
    types = {op.name: op.type for op in g.graph.get_operations()}
    rng = np.random.default_rng(0)
    v1 = tf.compat.v1
    with v1.Session(graph=g.graph, config=session_config(r.trainer)) as sess:
        sess.run(g.init)
        g.hold(sess, loaded.x_train, loaded.y_train)

        def run(options=None, metadata=None):
            rows = rng.integers(0, n, batch).astype(np.int32)
            sess.run([g.train_op, g.loss], {g.index: rows, g.training: True},
                     options=options, run_metadata=metadata)

        for _ in range(warmup):
            run()
        walls = []
        for _ in range(steps):
            start = time.perf_counter()
            run()
            walls.append(time.perf_counter() - start)
        by_type: collections.Counter = collections.Counter()
        options = v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE)
        for _ in range(steps):
            meta = v1.RunMetadata()
            run(options, meta)
            for dev in meta.step_stats.dev_stats:
                for node in dev.node_stats:
                    name = node.node_name.split(":")[0]
                    # the label names the kernel that ran (a fused one, under the name
                    # of the last op it replaced), the graph the op that was built
                    kind = _label_type(node.timeline_label) or types.get(name) or name
                    by_type[kind] += node.op_end_rel_micros - node.op_start_rel_micros
    total = sum(by_type.values()) / steps / 1000
    wall = float(np.median(walls)) * 1000
    matrix = sum(v for k, v in by_type.items() if any(m in k for m in MATRIX)) / steps / 1000
    top = [(k, v / steps / 1000) for k, v in by_type.most_common(8)]
    return {"model": model, "precision": r.trainer.effective_precision, "wall_ms": wall,
            "ops_ms": total, "matrix_ms": matrix, "top": top,
            "examples_per_s": batch / (wall / 1000)}


def _label_type(label: str) -> str:
    """``name = Type(inputs)`` in a timeline label: the op's type."""
    if " = " in label and "(" in label:
        return label.split(" = ", 1)[1].split("(", 1)[0]
    return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["rnn", "lstm", "cnn"])
    p.add_argument("--precision", nargs="+", default=["float32"],
                   choices=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=20, help="traced steps (and untraced ones)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args()
    results = []
    for model in args.models:
        for precision in args.precision:
            r = profile(model, precision, args.steps, args.warmup)
            results.append(r)
            print(f"{model} {r['precision']}: wall {r['wall_ms']:.1f} ms/step "
                  f"({r['examples_per_s']:,.0f} ex/s); ops {r['ops_ms']:.1f} ms summed, "
                  f"matrix work {r['matrix_ms'] / r['ops_ms']:.0%} of it; "
                  f"wall not covered by ops ~{max(r['wall_ms'] - r['ops_ms'] / 2, 0):.1f} ms "
                  "(if both threads were busy throughout)")
            for kind, ms in r["top"]:
                print(f"    {kind:<34} {ms:7.2f} ms  {ms / r['ops_ms']:5.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
