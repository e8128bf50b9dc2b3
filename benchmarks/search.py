"""Random search without pruning against TPE with pruning (issue 29, part 6), at the same
number of trials, on the real Fashion-MNIST with short multi-epoch trials on a --limit subset.

    python benchmarks/search.py                 # 3 repetitions of 2 x 16 trials of 4 epochs
                                                # on 6,000 images: about an hour of 2 quiet cores
    python benchmarks/search.py --quick         # a smoke test: 1 repetition of 2 x 3 tiny trials
    python benchmarks/search.py --repeats 3 --trials 12 --epochs 4 --limit 6000 \
        --json benchmarks/search-DATE.json      # a smaller size; --prune asha: the other pruner

What is measured, and how:

- each arm is one `zoo sweep MODEL --search ... --trials N --engine local:W` in a fresh
  ZOO_HOME (SQLite store), on the model's declared search space (`zoo list MODEL
  --details`) with the same fixed settings: `random` without pruning, `tpe --prune median`;
- repetition r uses `--seed r` for both arms (the sampler's seed and the trials' training
  seed), and the arms alternate which goes first (interleaved: the machine's drift between
  rounds falls on both);
- per arm: the best validation accuracy any completed trial reached (the search's
  objective; never the test set), the compute spent on training, every epoch of every
  trial, pruned ones included, from the store's epoch rows, three ways: the training
  seconds (the epoch rows' times), the epochs and examples trained, and the forward
  multiply-accumulates of those examples (each trial's MACs per example, counted from its
  graph as `zoo list --details` counts them, times its examples trained; a training step
  costs about three forward passes for every trial alike, so the ratio is that of the
  training arithmetic), the wall time of the whole search, and how many trials were pruned;
- per repetition: TPE's best minus random's (points of accuracy) and TPE's compute as a
  fraction of random's, for each measure. Goal: at least the same best accuracy for at most
  60 % of the compute (medians over the repetitions).

Seconds are wall times of epochs on cores other work may share, and the two workers of
`local:2` share them too: on a shared machine only the epochs, examples and MACs (which no
load changes) compare the arms. Validation is the full 5,000-image split whatever --limit
is, and is evaluated after every epoch in both arms (not counted as training).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(ROOT))

FULL = dict(repeats=3, trials=16, epochs=4, limit=6000)
QUICK = dict(repeats=1, trials=3, epochs=2, limit=512)
# the plain cnn (no batch norm): the fast one, so that trials are short
FIXED = ["--set", "batch_norm=false"]
GOAL_COMPUTE = 0.60
# how each arm's compute is counted (compare's keys): seconds depend on the machine's load,
# the others do not
MEASURES = ("train_seconds", "epochs_trained", "examples_trained", "train_macs")


def arms(prune: str = "median") -> dict[str, list[str]]:
    """The two searches compared: random without pruning, TPE with ``prune``."""
    return {"random": ["--search", "random"],
            f"tpe+{prune}": ["--search", "tpe", "--prune", prune]}


def run_arm(model: str, arm: str, search: list[str], trials: int, seed: int, args: list[str],
            workers: int) -> dict:
    """One search in a fresh ZOO_HOME; its best validation accuracy and what it cost."""
    from zoo_core.store import open_store

    with tempfile.TemporaryDirectory(prefix="zoo-search-bench-") as home:
        env = {**os.environ, "ZOO_HOME": home}
        env.pop("ZOO_STORE", None)
        command = [sys.executable, "-m", "zoo_core", "sweep", model, *search, "--trials",
                   str(trials), "--seed", str(seed), *FIXED, *args,
                   "--engine", f"local:{workers}", "--json"]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        out = json.loads(done.stdout)
        with open_store(Path(home) / "zoo.db") as store:
            spent = compute(store, [t["run_id"] for t in out["trials"]])
    best = out["search"]["best"]
    return {"arm": arm, "seed": seed, "best_val_accuracy": best and best["value"],
            "best_params": best and best["params"], **spent,
            "wall_seconds": wall, "pruned": out["counts"].get("pruned", 0),
            "completed": out["counts"].get("completed", 0), "sweep_id": out["sweep"]["sweep_id"]}


def compute(store, run_ids: list[str]) -> dict:
    """What training the trials ``run_ids`` cost, from the store: every epoch row's seconds,
    the epochs and examples trained, and those examples' forward MACs (each trial's MACs per
    example counted from its graph, :func:`zoo_core.train.cost.model_cost`)."""
    from zoo_core.catalogue import open_zoo
    from zoo_core.settings import RunSettings
    from zoo_core.train.cost import model_cost

    zoo = open_zoo()
    out = {"train_seconds": 0.0, "epochs_trained": 0, "examples_trained": 0, "train_macs": 0}
    for run_id in run_ids:
        record, epochs = store.get(run_id), store.epochs(run_id)
        spec, dataset = zoo.model(record.model), zoo.dataset(record.dataset)
        hparams = RunSettings.recorded(record.config, spec.hparams).hparams
        macs = model_cost(spec, hparams, dataset.image_shape, len(dataset.classes)).macs
        examples = len(epochs) * record.split_sizes.get("train", 0)
        out["train_seconds"] += sum(e["seconds"] or 0.0 for e in epochs)
        out["epochs_trained"] += len(epochs)
        out["examples_trained"] += examples
        out["train_macs"] += examples * macs
    return out


def compare(rows: list[dict]) -> dict:
    """Per repetition: TPE's best minus random's, and its compute as a fraction of
    random's by each of :data:`MEASURES` that the rows have; their medians, and whether the
    goal is met by each."""
    by_seed: dict[int, dict[str, dict]] = {}
    for row in rows:
        by_seed.setdefault(row["seed"], {})[row["arm"]] = row
    measures = [m for m in MEASURES if all(m in row for row in rows)]
    gains, fractions = [], {m: [] for m in measures}
    for pair in by_seed.values():
        rnd = pair["random"]
        tpe = next(row for arm, row in pair.items() if arm != "random")
        if rnd["best_val_accuracy"] is not None and tpe["best_val_accuracy"] is not None:
            gains.append(tpe["best_val_accuracy"] - rnd["best_val_accuracy"])
        for m in measures:
            if rnd[m]:
                fractions[m].append(tpe[m] / rnd[m])
    gain = statistics.median(gains) if gains else None
    medians = {m: statistics.median(f) if f else None for m, f in fractions.items()}
    return {"gains": gains, "compute_fractions": fractions, "median_gain": gain,
            "median_compute_fraction": medians,
            "goal_met": {m: gain is not None and f is not None and gain >= 0
                         and f <= GOAL_COMPUTE for m, f in medians.items()}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny trials")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--epochs", type=int, help="epochs per trial")
    parser.add_argument("--limit", type=int, help="training images per trial")
    parser.add_argument("--prune", choices=["median", "asha"], default="median",
                        help="the TPE arm's pruner (the random arm never prunes)")
    parser.add_argument("--workers", type=int, default=2, help="local:N workers per search")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    opts = parser.parse_args(argv)
    plan = QUICK if opts.quick else FULL
    repeats, trials = opts.repeats or plan["repeats"], opts.trials or plan["trials"]
    args = ["--epochs", str(opts.epochs or plan["epochs"]),
            "--limit", str(opts.limit or plan["limit"])]
    compared = arms(opts.prune)
    print(f"search benchmark: {opts.model} {' '.join(FIXED + args)}, {trials} trials per "
          f"search, {repeats} repetition(s), local:{opts.workers}, TPE with --prune "
          f"{opts.prune}", flush=True)
    rows = []
    for seed in range(repeats):
        order = list(compared) if seed % 2 == 0 else list(reversed(compared))
        for arm in order:
            load = os.getloadavg()[0]
            row = run_arm(opts.model, arm, compared[arm], trials, seed, args, opts.workers)
            row["load_before"], row["load_after"] = load, os.getloadavg()[0]
            rows.append(row)
            print(describe(row), flush=True)
    result = {"model": opts.model, "trials": trials, "repeats": repeats,
              "args": FIXED + args, "arms": compared, "workers": opts.workers,
              "cores": os.cpu_count(), "rows": rows, "comparison": compare(rows)}
    print(summary(result["comparison"], opts.prune))
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result


def describe(row: dict) -> str:
    """One arm's line: its best, its compute each way, the machine's load around it."""
    best = row["best_val_accuracy"]
    return (f"  seed {row['seed']}  {row['arm']:<11} best val "
            f"{'-' if best is None else f'{100 * best:6.2f} %'}  train "
            f"{row['train_seconds']:6.1f} s, {row['epochs_trained']:3d} epochs, "
            f"{row['examples_trained']:,} examples, {row['train_macs'] / 1e12:6.2f} T MACs  "
            f"wall {row['wall_seconds']:6.1f} s  {row['completed']} completed, "
            f"{row['pruned']} pruned  (load {row['load_before']:.1f} -> "
            f"{row['load_after']:.1f})")


def summary(c: dict, prune: str) -> str:
    """Per repetition and the medians: TPE's gain over random and its compute fractions."""
    lines = []
    for i, gain in enumerate(c["gains"]):
        parts = ", ".join(f"{m} {100 * c['compute_fractions'][m][i]:.0f} %"
                          for m in c["compute_fractions"])
        lines.append(f"  repetition {i}: TPE best - random best {100 * gain:+.2f} points; "
                     f"TPE compute / random's: {parts}")
    if c["median_gain"] is not None:
        parts = ", ".join(f"{m} {100 * f:.0f} % ({'met' if c['goal_met'][m] else 'not met'})"
                          for m, f in c["median_compute_fraction"].items() if f is not None)
        lines.append(f"TPE + {prune} pruning vs random (medians): best val "
                     f"{100 * c['median_gain']:+.2f} points; compute {parts}; goal: "
                     f">= +0.00 points at <= {100 * GOAL_COMPUTE:.0f} %")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
