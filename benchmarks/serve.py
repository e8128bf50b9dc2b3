"""How fast ``zoo serve`` answers (issue 28): the predict API against the floor, and the
leaderboard page on a big store.

    python benchmarks/serve.py                       # 15 rounds of 200 requests, 10,000 runs
    python benchmarks/serve.py --rounds 3 --requests 20 --runs 1000      # a quick check

It imports the cnn's shipped weights into a fresh store (``zoo pull cnn``, offline), exports
that run as a SavedModel (``zoo export``), builds a synthetic store of ``--runs`` completed
runs, and starts two real ``zoo serve`` processes on 127.0.0.1 (one per store). Then, in
rounds whose order is shuffled each time (so that load on the machine falls on every
measurement alike), it times:

  api-1, api-32     POST /v1/models/cnn:predict with 1 or 32 Fashion-MNIST test images,
                    TF Serving's JSON, one keep-alive connection (what a client sees)
  floor-1, floor-32 the exported SavedModel's serving_default called in this process with
                    the same images (no HTTP, no JSON): the floor the API is compared with
  leaderboard       GET /index.json and GET / on the synthetic store (the database reads the
                    runs in one query; the ranking is zoo leaderboard's)

and prints, per measurement, p50 and p99 latency in milliseconds and images (or pages) per
second. Goals (issue 28): api-1's p50 within 3 ms of floor-1's; the leaderboard page under
300 ms on 10,000 runs. Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo_core.store.records import COLUMNS, RunRecord, utc_now  # noqa: E402
from zoo_core.store.sql import encode  # noqa: E402
from zoo_core.store.sqlite import SQLiteStore  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
MODELS = ("cnn", "cnn-bn", "rnn", "lstm", "lstm-stack")


def zoo(home: Path, *args: str) -> str:
    env = {**os.environ, "ZOO_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "zoo_core", *args], env=env, check=True,
                          capture_output=True, text=True).stdout


def images(n: int):
    import numpy as np

    raw = gzip.decompress((FASHION / "t10k-images-idx3-ubyte.gz").read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16, count=n * 784).reshape(n, 28, 28, 1)


def synthetic_store(path: Path, runs: int) -> None:
    """``runs`` completed runs: 5 models x 20 configurations x seeds, each 10 epochs."""
    store = SQLiteStore(path)
    conn = store._connection()
    conn.execute("BEGIN")
    for i in range(runs):
        model, config = MODELS[i % 5], (i // 5) % 20
        record = RunRecord(
            run_id=f"{model}-fashion-s{i}-20261207-000000-{i:04x}", model=model,
            dataset="fashion", plugin="zoo-x", plugin_version="0.1.0", zoo_version="0.1.0",
            tf_version="2.21.0", config={"epochs": 10, "batch_size": 128, "lr": 0.001 * (1 + config),
                                         "dropout": 0.3, "limit": None},
            seed=i // 100, status="completed", test_accuracy=0.85 + (i % 97) / 1000,
            val_accuracy=0.86, test_loss=0.3, params=400000 + 1000 * config, epochs_run=10,
            train_seconds=60.0 + config, examples_per_sec=5000.0, finished_at=utc_now(),
            data_checksums={"train_images": "ab" * 32}, split_sizes={"train": 55000, "val": 5000,
                                                                    "test": 10000})
        conn.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(COLUMNS))})",
                     [encode(name, getattr(record, name)) for name in COLUMNS])
    conn.execute("COMMIT")
    store.close()


def serve(home: Path, store: Path | None = None) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ZOO_HOME": str(home)}
    store_args = ["--store", str(store)] if store else []
    proc = subprocess.Popen([sys.executable, "-m", "zoo_core", *store_args, "serve", "--port",
                             str(port)], env=env, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    raise SystemExit("zoo serve did not start")


def timed(call, requests: int) -> list[float]:
    out = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def http_call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None):
    def call():
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            answer = conn.getresponse()
        except (ConnectionError, http.client.HTTPException):  # idle past the keep-alive
            conn.close()
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            answer = conn.getresponse()
        data = answer.read()
        assert answer.status == 200, data[:200]
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=200, help="per measurement and round")
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the synthetic store")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="zoo-bench-serve-"))
    zoo(home, "pull", "cnn", "--dataset", "fashion")
    zoo(home, "export", "cnn", "-o", str(home / "exports"))
    big = home / "big.db"
    synthetic_store(big, args.runs)
    procs = [serve(home), serve(home, big)]
    try:
        results = measure(args, home, procs[0][1], procs[1][1])
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=30)
    report(results, args)


def measure(args, home: Path, port: int, big_port: int) -> dict[str, list[float]]:
    import tensorflow as tf

    saved = tf.saved_model.load(str(next((home / "exports" / "cnn").iterdir())))
    signature = saved.signatures["serving_default"]
    api, board = http.client.HTTPConnection("127.0.0.1", port), \
        http.client.HTTPConnection("127.0.0.1", big_port)
    calls = {}
    for n in (1, 32):
        x = images(n)
        body = json.dumps({"instances": x.tolist()}).encode()
        calls[f"api-{n}"] = (http_call(api, "POST", "/v1/models/cnn:predict", body), n)
        tensor = tf.constant(x)
        calls[f"floor-{n}"] = (lambda t=tensor: signature(images=t)["probabilities"].numpy(), n)
    calls["leaderboard-json"] = (http_call(board, "GET", "/index.json", None), 1)
    calls["leaderboard-page"] = (http_call(board, "GET", "/", None), 1)
    for call, _ in calls.values():  # warm up: models loaded, pages cached by the OS
        timed(call, 3)
    results: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(args.rounds):
        order = list(calls)
        random.shuffle(order)
        for name in order:
            requests = args.requests if not name.startswith("leaderboard") else \
                max(1, args.requests // 20)
            results[name] += timed(calls[name][0], requests)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    return {name: (times, calls[name][1]) for name, times in results.items()}


def report(results, args) -> None:
    print(f"{'measurement':<18} {'p50 ms':>9} {'p99 ms':>9} {'per second':>12}")
    for name, (times, n) in results.items():
        times = sorted(times)
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        unit = "images" if not name.startswith("leaderboard") else "pages"
        print(f"{name:<18} {1000 * p50:>9.2f} {1000 * p99:>9.2f} "
              f"{n / p50:>10,.0f} {unit}")
    api, floor = statistics.median(results["api-1"][0]), statistics.median(results["floor-1"][0])
    print(f"\napi-1 p50 - floor-1 p50: {1000 * (api - floor):.2f} ms (goal: within 3 ms); "
          f"leaderboard page on {args.runs:,} runs: "
          f"{1000 * statistics.median(results['leaderboard-page'][0]):.0f} ms (goal: < 300 ms)")


if __name__ == "__main__":
    main()
