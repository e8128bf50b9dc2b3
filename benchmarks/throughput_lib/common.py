"""What every part of the benchmark shares: the implementations and models, the method's
constants, issue #17's goals, and the statistics (medians and IQRs of per-round ratios)."""

from __future__ import annotations

import math
from pathlib import Path

# the script the worker processes run (with --serve or --rss): the benchmark's command
SCRIPT = Path(__file__).resolve().parents[1] / "throughput.py"

MODELS = ("rnn", "lstm", "cnn")
IMPLS = ("zoo", "zoo-seq", "zoo-bf16", "tf1", "keras", "torch", "torch-1t")
HOST = {"zoo": "tf", "zoo-seq": "tf", "zoo-bf16": "tf", "tf1": "tf", "keras": "keras",
        "torch": "torch", "torch-1t": "torch-1t"}
TORCH = ("torch", "torch-1t")  # "vs torch" is against the faster of these in each round
PRECISION = {"zoo-bf16": "bfloat16"}  # every other implementation: float32
BATCH = 128
LR = 1e-3
REFERENCE = "tf1"

# Trainer settings (and model hyperparameters) that change how fast, not what, a model
# trains; zoo takes these from registry.toml like a user's run, and nothing else from there.
SPEED = ("threads", "xla", "bf16", "precision", "steps_per_call", "kernel")

# issue #17's goals: (model, implementation, against, at least, what it says)
GOALS = (
    ("rnn", "zoo", "tf1", 1.3, "rnn float32: >= 1.3x the plain TF1 loop"),
    ("rnn", "zoo-bf16", "tf1", 1.6, "rnn bfloat16: >= 1.6x the plain TF1 loop (float32)"),
    ("lstm", "zoo", "torch", 1.0, "lstm float32: >= 1.0x PyTorch nn.LSTM"),
    ("lstm", "zoo-bf16", "torch", 1.3, "lstm bfloat16: >= 1.3x PyTorch nn.LSTM (float32)"),
    ("cnn", "zoo", "gemm", 0.9, "cnn float32: >= 90% of the measured GEMM peak"),
    ("cnn", "zoo-bf16", "tf1", 1.5, "cnn bfloat16: >= 1.5x the plain TF1 loop (float32)"),
)
MEMORY_GOAL = 0.05  # zoo's peak RSS at most the plain TF1 loop's + 5 %

# A memory run of a peer trains this many steps at most (holding the whole training split):
# its memory is all there after the first step; zoo's runs a whole epoch and evaluates.
RSS_PEER_STEPS = 100


def quartiles(values) -> dict | None:
    """Median, first and third quartile of ``values`` (linear interpolation between order
    statistics, numpy's default), or None when there are none."""
    v = sorted(values)
    if not v:
        return None

    def at(p: float) -> float:
        pos = (len(v) - 1) * p
        lo, hi = math.floor(pos), math.ceil(pos)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return {"median": at(0.5), "q1": at(0.25), "q3": at(0.75), "n": len(v)}


def round_ratios(rates, reference) -> list[float]:
    """``rates[r] / reference[r]`` for every round r in which both were measured."""
    return [a / b for a, b in zip(rates, reference) if a and b]


def floats(images):
    """A peer's training images: float32 in [0, 1], held whole, as a hand-written loop
    holds them (``x / 255``). zoo's trainer gets the loader's uint8 images and scales each
    batch in its graph: that is part of what its memory figure measures."""
    import numpy as np

    return np.multiply(images, np.float32(1.0 / 255.0), dtype=np.float32)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: getrusage's ru_maxrss is carried across
    exec on Linux, so a child would report at least its parent's size)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
