"""The report: a measurement's tables as text (what the benchmark prints, and
docs/performance.md quotes)."""

from __future__ import annotations

from throughput_lib.common import IMPLS, REFERENCE, RSS_PEER_STEPS


def _q(q: dict | None) -> str:
    """A ratio's median and IQR: ``1.11x (1.05-1.15)``."""
    if not q or "median" not in q:
        return "-"
    return f"{q['median']:.2f}x ({q['q1']:.2f}-{q['q3']:.2f})"


def _pct(q: dict | None) -> str:
    if not q or "median" not in q:
        return "-"
    return f"{q['median']:.0%} ({q['q1']:.0%}-{q['q3']:.0%})"


def _mb(value) -> str:
    return f"{value:,.0f}" if value else "-"


def report(result: dict) -> str:
    """The tables, as text: what the script prints, and docs/performance.md quotes."""
    if not result["method"]["rounds"]:  # --memory-only
        return "\n".join([*_method(result)[:4], "method: --memory-only: no timed rounds",
                          *_memory(result), *_goals(result)])
    return "\n".join([*_method(result), *_rates(result), *_details(result), *_memory(result),
                      *_goals(result)])


def _method(result: dict) -> list[str]:
    """The command, the machine, the versions, the method, and the GEMM peaks."""
    m, meth = result["machine"], result["method"]
    lines = [
        f"command: {result['command']}",
        f"date: {result['date']}",
        f"machine: {m['model']}, {m['cores']} cores, {m['memory_gb']} GiB, native bfloat16: "
        f"{', '.join(m['native_bf16']) or 'no'}",
        "versions: " + ", ".join([*(f"{k} {v}" for k, v in sorted(result["versions"].items())),
                                  f"python {result['python']}"]),
        f"method: {meth['rounds']} rounds after a warm-up round; each round gives every "
        f"implementation one {meth['chunk_seconds']:g} s chunk, one at a time (pipe handshake), "
        "in an order that rotates every round, as two halves (the order forwards, then "
        "backwards)",
        "processes: " + "; ".join(f"{h}: {', '.join(i)}" for h, i in meth["hosts"].items()),
        f"batch {meth['batch']}, {meth['optimizer']}, float32 unless marked, {meth['data']}, "
        f"cycling through {meth['timed_examples']:,} training examples",
    ]
    for key, what in (("gemm", "numpy 2048x2048 matmul, the faster of its default threads and "
                               "one thread"),
                      ("gemm_tensorflow", "tf.matmul 2048x2048, oneDNN")):
        g = result.get(key, {})
        if g.get("median"):
            label = "float32 GEMM peak" if key == "gemm" else "TensorFlow matmul"
            lines.append(f"{label}: {g['median']:.0f} GFLOP/s (IQR {g['q1']:.0f}-{g['q3']:.0f}; "
                         f"{what}; one chunk per round)")
    lines += ["", "ex/s: median over rounds (IQR). vs tf1, vs torch: median of per-round ratios "
                  "(IQR); torch is the faster torch row of each round.",
              "GEMM peak: training FLOPs/s over the same round's numpy GEMM peak; TF matmul: "
              "over TensorFlow's. peak RSS: see below.", ""]
    return lines


def _rates(result: dict) -> list[str]:
    """The throughput table: a row per model and implementation."""
    lines = []
    header = (f"{'model':<6}{'impl':<10}{'precision':<10}{'params':>8}{'ex/s':>8}{'(IQR)':>14}"
              f"{'vs tf1':>21}{'vs torch':>21}{'GEMM peak':>17}{'TF matmul':>15}{'RSS MB':>8}")
    lines += [header, "-" * len(header)]
    for model, entries in result["models"].items():
        for impl, e in entries.items():
            if impl.startswith("_") or not e.get("rate"):
                continue
            rate = e["rate"]
            iqr = f"{rate['q1']:,.0f}-{rate['q3']:,.0f}" if rate else "-"
            lines.append(
                f"{model:<6}{impl:<10}{e['precision']:<10}{e.get('params', 0):>8,}"
                f"{rate.get('median', 0):>8,.0f}{iqr:>14}{_q(e.get('vs_tf1')):>21}"
                f"{_q(e.get('vs_torch')):>21}{_pct(e.get('gemm_fraction')):>17}"
                f"{_pct(e.get('tf_gemm_fraction')):>15}{_mb(e.get('peak_rss_mb')):>8}")
        if entries.get("_flops_per_example"):
            lines.append(f"{'':<6}({entries['_flops_per_example'] / 1e6:.1f} MFLOP per training "
                         "example: 3x the forward pass, TensorFlow's profiler)")
    return lines


def _details(result: dict) -> list[str]:
    """What each row trained: its trainer settings, steps per call, kernel, threads."""
    lines = []
    lines.append("")
    for model, entries in result["models"].items():
        for impl, e in entries.items():
            if impl.startswith("_"):
                continue
            details = []
            if e.get("trainer"):
                details.append("trainer " + ", ".join(f"{k}={v}" for k, v in e["trainer"].items()))
            if e.get("steps_per_call_seen"):
                seen = sorted(e["steps_per_call_seen"].items(), key=lambda kv: int(kv[0]))
                details.append("steps per Session.run: " + ", ".join(
                    f"{k} ({v} calls)" for k, v in seen))
            if isinstance((e.get("hparams") or {}).get("kernel"), str):
                details.append(f"kernel={e['hparams']['kernel']}")
            if e.get("threads"):
                details.append(f"{e['threads']} threads")
            if details:
                lines.append(f"{model} {impl}: " + "; ".join(details))
    return lines


def _memory(result: dict) -> list[str]:
    """The peak-memory table, the runtimes' floors and the timing processes' memory."""
    meth, lines = result["method"], []
    held = (f"the whole training split ({meth['rss_examples']:,} images)"
            if meth.get("rss_whole_split") else f"{meth['rss_examples']:,} training images")
    lines += ["", f"peak RSS (MB, VmHWM): each implementation alone in a fresh process training "
                  f"on {held}; zoo: a whole "
                  f"one-epoch loop.train run with its evaluations (and, as 'steps', its peak "
                  f"after the epoch's steps, before evaluating); the others: "
                  f"{RSS_PEER_STEPS} training steps"]
    impls = [i for i in IMPLS if any(i in e for e in result["models"].values())]
    header = f"{'model':<6}{'zoo steps':>10}" + "".join(f"{i:>10}" for i in impls) + \
        f"{'zoo/tf1 steps':>15}{'whole run':>11}"
    lines += [header, "-" * len(header)]
    for model, entries in result["models"].items():
        zoo, ref = entries.get("zoo", {}), entries.get(REFERENCE, {}).get("peak_rss_mb")
        row = f"{model:<6}{_mb(zoo.get('steps_rss_mb')):>10}" + "".join(
            f"{_mb(entries.get(i, {}).get('peak_rss_mb')):>10}" for i in impls)
        steps = f"{zoo['steps_rss_mb'] / ref - 1:+.1%}" if ref and zoo.get("steps_rss_mb") else "-"
        whole = f"{zoo['peak_rss_mb'] / ref - 1:+.1%}" if ref and zoo.get("peak_rss_mb") else "-"
        lines.append(row + f"{steps:>15}{whole:>11}")
    floors = result.get("floors", {})
    if floors:
        lines.append("runtime floor (import, one op): " + ", ".join(
            f"{k.split('-')[0]} {v:,.0f} MB" for k, v in floors.items()))
    if result.get("processes"):
        lines.append("the timing processes (all models, shared): " + ", ".join(
            f"{h} ({', '.join(p['impls'])}) {_mb(p['peak_rss_mb'])} MB"
            for h, p in result["processes"].items()))
    return lines


def _goals(result: dict) -> list[str]:
    """Issue #17's goals, what was not measured and what failed."""
    lines = []
    lines += ["", "issue #17 goals (median of per-round ratios, IQR):"]
    for goal in result.get("goals", []):
        text = f"  {goal['goal']:<58}"
        if goal["measured"] is None:
            lines.append(text + "not measured")
        elif "memory" in goal["goal"]:
            steps = (f" (steps only {goal['steps_only'] - 1:+.1%})"
                     if goal.get("steps_only") else "")
            lines.append(text + f"{goal['measured'] - 1:+.1%}{steps}  {goal['status']}")
        else:
            q = {"median": goal["measured"], "q1": goal["q1"], "q3": goal["q3"]}
            lines.append(text + f"{_pct(q) if 'GEMM' in goal['goal'] else _q(q)}  {goal['status']}")
    if result.get("skipped"):
        lines.append("not measured: " + ", ".join(f"{k} ({v})"
                                                  for k, v in result["skipped"].items()))
    if result.get("failed"):
        lines.append("failed: " + "; ".join(f"{k}: {v.splitlines()[0][:200]}"
                                            for k, v in result["failed"].items()))
    return lines
