"""What SQLite's ``quick_check`` costs the first write of a process (issue 19, case 11).

    python benchmarks/store_check.py                 # 10,000 runs of 10 epochs, 15 rounds
    python benchmarks/store_check.py --runs 1000 --rounds 5

It builds a SQLite results store of ``--runs`` completed runs (each with ``--epochs``
epochs and a realistic settings dict), then times, in alternating order over ``--rounds``
rounds, a fresh process's way into the store for a write:

  open           open the file (schema version read, WAL on), as before the check existed
  open+check     the same, then ``PRAGMA quick_check``, as ``Store.check()`` and the first
                 write of each process now do

Each measurement is a new ``SQLiteStore`` (a new connection), with the page cache of the
operating system warm (as for a store used every day); it prints the median and range of
each, in milliseconds, and the file's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo_core.store import sqlite  # noqa: E402
from zoo_core.store.records import COLUMNS, RunRecord, utc_now  # noqa: E402
from zoo_core.store.sql import encode  # noqa: E402
from zoo_core.store.sqlite import SQLiteStore  # noqa: E402

CONFIG = {"epochs": 10, "batch_size": 128, "lr": 0.002, "lr_schedule": "cosine", "dropout": 0.3,
          "filters": 32, "blocks": 2, "dense": 128, "patience": 0, "limit": None}


def build(path: Path, runs: int, epochs: int) -> None:
    store = SQLiteStore(path)
    conn = store._connection()
    conn.execute("BEGIN")
    for i in range(runs):
        record = RunRecord(
            run_id=f"cnn-fashion-s{i}-20261129-000000-{i:04x}", model="cnn", dataset="fashion",
            plugin="zoo-cnn", plugin_version="0.1.0", zoo_version="0.1.0", tf_version="2.16.1",
            config={**CONFIG, "seed_note": i}, seed=i,
            data_checksums={k: "ab" * 32 for k in ("train_images", "train_labels",
                                                   "test_images", "test_labels")},
            split_sizes={"train": 55000, "val": 5000, "test": 10000}, status="completed",
            test_accuracy=0.9, val_accuracy=0.9, finished_at=utc_now(), epochs_run=epochs)
        conn.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(COLUMNS))})",
                     [encode(name, getattr(record, name)) for name in COLUMNS])
        conn.executemany(
            "INSERT INTO epochs (run_id, epoch, train_loss, train_accuracy, val_loss, "
            "val_accuracy, lr, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(record.run_id, e, 1 / e, 0.8, 1.1 / e, 0.85, 0.002, 30.0)
             for e in range(1, epochs + 1)])
    conn.execute("COMMIT")
    store.close()


def measure(path: Path, check: bool) -> float:
    sqlite._INTACT.clear()
    start = time.perf_counter()
    store = SQLiteStore(path)
    if check:
        store.check()
    else:
        store._connection()
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "zoo.db"
        build(path, args.runs, args.epochs)
        times: dict[str, list[float]] = {"open": [], "open+check": []}
        measure(path, True)  # warm the page cache
        for i in range(args.rounds):
            order = [False, True] if i % 2 == 0 else [True, False]
            for check in order:
                times["open+check" if check else "open"].append(measure(path, check))
        size = path.stat().st_size
    print(f"store: {args.runs} runs x {args.epochs} epochs, {size / 2**20:.1f} MiB; "
          f"{args.rounds} rounds, alternating")
    for name, values in times.items():
        print(f"{name:<11} median {statistics.median(values):7.2f} ms  "
              f"(range {min(values):.2f}-{max(values):.2f})")
    extra = statistics.median(times["open+check"]) - statistics.median(times["open"])
    print(f"quick_check adds {extra:.2f} ms, once per process and store")


if __name__ == "__main__":
    main()
