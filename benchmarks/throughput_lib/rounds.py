"""The coordinator: the workers started together, the warm-up, the timed rounds and the GEMM
peak beside them, then the memory runs."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from throughput_lib.common import BATCH, HOST, LR, REFERENCE, SCRIPT, TORCH, quartiles
from throughput_lib.summary import summarize
from throughput_lib.trainers import precision_settings
from throughput_lib.workers import Worker, worker_env


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
    from zoo_core.settings import cpu_has_bf16

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
        if args.memory_only:
            result["method"]["rounds"] = 0
            rates = {(m, i): [] for m in args.models for i in impls}
        else:
            rates = timed_rounds(args, impls, path, tmp, result)
        memory_runs(args, impls, path, result)
    summarize(args, impls, rates, result)
    return result


def timed_rounds(args, impls, path, tmp, result) -> dict:
    """Start the workers together, warm up, run the rounds; per-round rates."""
    hosts = {}
    for impl in impls:
        hosts.setdefault(HOST[impl], []).append(impl)
    workers = {
        host: Worker(host, [sys.executable, str(SCRIPT), "--serve", host, "--data", path,
                            "--examples", str(args.examples), "--models", *args.models,
                            "--impls", *hosted, *[f"--set={kv}" for kv in args.set]], tmp)
        for host, hosted in hosts.items()}
    tf_gemm = TfGemm()  # while the workers build theirs
    turns = Turns(workers, _ready(args, workers, hosts, result), result,
                  timeout=max(120.0, 30 * args.chunk))
    rates = {(m, i): [] for m in args.models for i in impls}
    gemm, gemm_parts = [], []
    for model in args.models:  # round 0: warm-up, not timed
        for impl in impls:
            turns.turn(model, impl, max(args.chunk, 1.0), args.warmup, "warm-up")
    gemm_chunk(0.6, tf_gemm=tf_gemm)
    for r in range(args.rounds):
        halves = _round(args, impls, r, turns, tf_gemm, rates)
        gemm.append(statistics.mean(h["peak"] for h in halves))
        gemm_parts.append({k: statistics.mean(h[k] for h in halves) for k in halves[0]})
        print(f"  round {r + 1}/{args.rounds}  gemm {gemm[-1]:.0f} GFLOP/s | "
              + _round_line(args, impls, rates, result), file=sys.stderr)
    _stop(args, workers, hosts, result)
    tf_rates = [p["tensorflow"] for p in gemm_parts if "tensorflow" in p]
    tf_gemm.sess.close()
    result["gemm_tensorflow"] = {"per_round": tf_rates, **(quartiles(tf_rates) or {}),
                                 "how": "tf.matmul 2048x2048 float32 in a default Session "
                                        "(oneDNN), median time within each round's chunk"}
    result["gemm"] = {"per_round": gemm, **(quartiles(gemm) or {}), "parts": gemm_parts,
                      "how": "numpy float32 2048x2048 matmul, median time within each round's "
                             "chunk, the faster of numpy's default threads and one thread"}
    result["failed"] = turns.failed
    return rates


def _ready(args, workers: dict, hosts: dict, result: dict) -> dict:
    """Wait for every worker to have built its implementations; what each says of them goes
    into ``result``. Returns the implementations that failed (``model/impl``: why)."""
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
    return failed


class Turns:
    """Hands out the turns: one chunk of one implementation at a time."""

    def __init__(self, workers: dict, failed: dict, result: dict, timeout: float):
        self.workers, self.failed, self.result, self.timeout = workers, failed, result, timeout

    def turn(self, model, impl, seconds, min_steps, label):
        """One chunk: (examples, seconds), or None when it failed (now or before)."""
        key = f"{model}/{impl}"
        if key in self.failed or key in self.result["skipped"]:
            return None
        reply = self.workers[HOST[impl]].ask({"cmd": "run", "key": key, "seconds": seconds,
                                              "min_steps": min_steps}, self.timeout)
        if "error" in reply:
            self.failed[key] = reply["error"]
            print(f"  {label} {key}: failed: {reply['error'][:300]}", file=sys.stderr)
            return None
        return reply["examples"], reply["seconds"]


def _round(args, impls, r: int, turns: Turns, tf_gemm, rates: dict) -> list[dict]:
    """Round ``r``: every implementation (and the GEMM peak) once, in an order that rotates
    with ``r``; each one's examples/s added to ``rates``. Returns the GEMM halves."""
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
        got = turns.turn(model, impl, args.chunk / 2, 2, f"round {r + 1}")
        if got is None:
            done[(model, impl)] = None
        elif done.get((model, impl), ()) is not None:
            ex, sec = done.get((model, impl), (0, 0.0))
            done[(model, impl)] = (ex + got[0], sec + got[1])
    for key in rates:
        got = done.get(key)
        rates[key].append(got[0] / got[1] if got else None)
    return halves


def _round_line(args, impls, rates: dict, result: dict) -> str:
    """The last round's rates, per model, as the progress line shows them."""
    line = []
    for m in args.models:
        ref = rates[(m, REFERENCE)][-1] if REFERENCE in impls else None
        parts = [f"{i} {rates[(m, i)][-1] or 0:,.0f}" for i in impls
                 if f"{m}/{i}" not in result["skipped"]]
        if ref:
            parts.append(f"zoo/tf1 {(rates[(m, 'zoo')][-1] or 0) / ref:.2f}"
                         if "zoo" in impls else "")
        line.append(f"{m}: " + ", ".join(p for p in parts if p))
    return " | ".join(line)


def _stop(args, workers: dict, hosts: dict, result: dict) -> None:
    """Stop the workers; their peak memory and last notes go into ``result``."""
    for host, w in workers.items():
        reply = w.ask({"cmd": "stop"}, timeout=120)
        stopped = reply.get("stopped", {})
        result["processes"][host] = {"impls": hosts[host], "models": list(args.models),
                                     "peak_rss_mb": stopped.get("peak_rss_mb")}
        for key, note in stopped.get("notes", {}).items():
            model, impl = key.split("/", 1)
            result["models"][model][impl].update(note)
        w.proc.wait(timeout=60)


def memory_runs(args, impls, path, result) -> None:
    """Each implementation alone in a fresh process, one epoch: its peak RSS (several at a
    time, after the timed rounds: memory does not depend on speed)."""
    runs = [(m, i) for m in args.models for i in impls if f"{m}/{i}" not in result["skipped"]]
    if not args.quick:
        runs += [("-", "tf-floor")] + ([("-", "torch-floor")] if set(TORCH) & set(impls) else [])
    script = str(SCRIPT)
    pending, active, out = list(runs), [], {}
    at_once = 6 if args.quick else 3  # peak memory does not depend on speed; time does
    while pending or active:
        while pending and len(active) < at_once:
            model, impl = pending.pop(0)
            host = HOST.get(impl, impl.split("-")[0])
            argv = [sys.executable, script, "--rss", impl, "--model", model, "--data", path,
                    "--examples", str(args.rss_examples or 0), *[f"--set={kv}" for kv in args.set]]
            active.append(((model, impl), subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=worker_env(host))))
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


