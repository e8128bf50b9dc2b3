"""Random search without pruning against TPE with pruning (issue 29, part 6), at the same
number of trials, on the real Fashion-MNIST with short multi-epoch trials on a --limit subset.

    python benchmarks/search.py                 # 3 repetitions of 2 x 16 trials of 4 epochs
                                                # on 6,000 images: about an hour of 2 quiet cores
    python benchmarks/search.py --quick         # a smoke test: 1 repetition of 2 x 3 tiny trials
    python benchmarks/search.py --json benchmarks/search-DATE.json

What is measured, and how:

- each arm is one `zoo sweep MODEL --search ... --trials N --engine local:W` in a fresh
  ZOO_HOME (SQLite store), on the model's declared search space (`zoo list MODEL
  --details`) with the same fixed settings: `random` without pruning, `tpe --prune median`;
- repetition r uses `--seed r` for both arms (the sampler's seed and the trials' training
  seed), and the arms alternate which goes first (interleaved: the machine's drift between
  rounds falls on both);
- per arm: the best validation accuracy any completed trial reached (the search's
  objective; never the test set), the training seconds spent (every epoch of every trial,
  pruned ones included, from the store's epoch rows), the wall time of the whole search, and
  how many trials were pruned;
- per repetition: TPE's best minus random's (points of accuracy) and TPE's training seconds
  as a fraction of random's. Goal: at least the same best accuracy for at most 60 % of the
  compute (medians over the repetitions).

The machine should be quiet: the seconds are wall times on shared cores.
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

FULL = dict(repeats=3, trials=16, args=["--epochs", "4", "--limit", "6000"])
QUICK = dict(repeats=1, trials=3, args=["--epochs", "2", "--limit", "512"])
# the plain cnn (no batch norm): the fast one, so that trials are short
FIXED = ["--set", "batch_norm=false"]
ARMS = {"random": ["--search", "random"], "tpe+median": ["--search", "tpe", "--prune", "median"]}
GOAL_COMPUTE = 0.60


def run_arm(model: str, arm: str, trials: int, seed: int, args: list[str], workers: int) -> dict:
    """One search in a fresh ZOO_HOME; its best validation accuracy and what it cost."""
    from zoo_core.store import open_store

    with tempfile.TemporaryDirectory(prefix="zoo-search-bench-") as home:
        env = {**os.environ, "ZOO_HOME": home}
        env.pop("ZOO_STORE", None)
        command = [sys.executable, "-m", "zoo_core", "sweep", model, *ARMS[arm], "--trials",
                   str(trials), "--seed", str(seed), *FIXED, *args,
                   "--engine", f"local:{workers}", "--json"]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        out = json.loads(done.stdout)
        with open_store(Path(home) / "zoo.db") as store:
            seconds = sum(e["seconds"] or 0.0 for t in out["trials"]
                          for e in store.epochs(t["run_id"]))
    best = out["search"]["best"]
    return {"arm": arm, "seed": seed, "best_val_accuracy": best and best["value"],
            "best_params": best and best["params"], "train_seconds": seconds,
            "wall_seconds": wall, "pruned": out["counts"].get("pruned", 0),
            "completed": out["counts"].get("completed", 0), "sweep_id": out["sweep"]["sweep_id"]}


def compare(rows: list[dict]) -> dict:
    """Per repetition: TPE's best minus random's, and its compute as a fraction of
    random's; their medians, and whether the goal is met."""
    by_seed: dict[int, dict[str, dict]] = {}
    for row in rows:
        by_seed.setdefault(row["seed"], {})[row["arm"]] = row
    gains, fractions = [], []
    for pair in by_seed.values():
        rnd, tpe = pair["random"], pair["tpe+median"]
        if rnd["best_val_accuracy"] is not None and tpe["best_val_accuracy"] is not None:
            gains.append(tpe["best_val_accuracy"] - rnd["best_val_accuracy"])
        if rnd["train_seconds"]:
            fractions.append(tpe["train_seconds"] / rnd["train_seconds"])
    gain = statistics.median(gains) if gains else None
    fraction = statistics.median(fractions) if fractions else None
    return {"gains": gains, "compute_fractions": fractions, "median_gain": gain,
            "median_compute_fraction": fraction,
            "goal_met": gain is not None and fraction is not None
            and gain >= 0 and fraction <= GOAL_COMPUTE}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny trials")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--workers", type=int, default=2, help="local:N workers per search")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    opts = parser.parse_args(argv)
    plan = QUICK if opts.quick else FULL
    repeats, trials = opts.repeats or plan["repeats"], opts.trials or plan["trials"]
    print(f"search benchmark: {opts.model} {' '.join(FIXED + plan['args'])}, {trials} trials "
          f"per search, {repeats} repetition(s), local:{opts.workers}", flush=True)
    rows = []
    for seed in range(repeats):
        order = list(ARMS) if seed % 2 == 0 else list(reversed(ARMS))
        for arm in order:
            row = run_arm(opts.model, arm, trials, seed, plan["args"], opts.workers)
            rows.append(row)
            best = row["best_val_accuracy"]
            print(f"  seed {seed}  {arm:<11} best val {100 * best:6.2f} %  train "
                  f"{row['train_seconds']:7.1f} s  wall {row['wall_seconds']:7.1f} s  "
                  f"{row['completed']} completed, {row['pruned']} pruned", flush=True)
    result = {"model": opts.model, "trials": trials, "repeats": repeats,
              "args": FIXED + plan["args"], "workers": opts.workers, "rows": rows,
              "comparison": compare(rows)}
    c = result["comparison"]
    if c["median_gain"] is not None and c["median_compute_fraction"] is not None:
        print(f"TPE + median pruning vs random: best val {100 * c['median_gain']:+.2f} points, "
              f"{100 * c['median_compute_fraction']:.0f} % of the training seconds (medians; "
              f"goal: >= +0.00 points at <= {100 * GOAL_COMPUTE:.0f} %: "
              f"{'met' if c['goal_met'] else 'not met'})")
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
