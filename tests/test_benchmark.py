"""The throughput benchmark runs end to end (its figures are for docs/performance.md,
not asserted here: timed assertions flake on shared machines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_prints_its_table():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--models", "rnn",
         "--impls", "zoo", "tf1", "--repeats", "1", "--steps", "10", "--warmup", "3"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("machine: ") and "GEMM peak" in line for line in lines)
    rows = {line.split()[1]: line.split() for line in lines if line.startswith("rnn ")}
    assert set(rows) == {"zoo", "tf1"}
    assert rows["tf1"][4] == "1.00x"  # the best (only) peer is the reference
    assert float(rows["zoo"][2].replace(",", "")) > 0


def test_speed_settings_reach_the_session():
    from zoo_core._tf import tf as import_tf
    from zoo_core.settings import TrainerSettings
    from zoo_core.train import graph
    from zoo_core.train.graph import session_config

    tf = import_tf()
    default = session_config(TrainerSettings(threads=0, precision="float32"))
    assert default.intra_op_parallelism_threads == 0 and default.inter_op_parallelism_threads == 0
    tuned = session_config(TrainerSettings(threads=1, precision="bfloat16"))
    assert tuned.intra_op_parallelism_threads == 1 and tuned.inter_op_parallelism_threads == 1
    # xla was removed (it did nothing on CPU): nothing sets a JIT level
    assert tuned.graph_options.optimizer_options.global_jit_level == tf.compat.v1.OptimizerOptions.DEFAULT
    from zoo_core.settings import cpu_has_bf16

    expected = 1 if cpu_has_bf16() else 0
    assert tuned.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == expected


def test_bf16_falls_back_to_float32_on_cpus_without_it(monkeypatch):
    from zoo_core import settings
    from zoo_core.settings import TrainerSettings
    from zoo_core.train import graph

    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: False)
    for precision in ("bfloat16", "auto"):
        config = graph.session_config(TrainerSettings(precision=precision))
        assert config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 0


def test_zoo_trains_the_peers_architecture_not_the_tuned_defaults():
    """registry.toml's rnn is two bidirectional layers with a cosine schedule; the peers
    build the plugin's default (one layer, one way) with Adam at 1e-3, and so must zoo."""
    import importlib.util

    import zoo_rnn
    from zoo_core.testing import defaults

    path = ROOT / "benchmarks" / "throughput.py"
    module = importlib.util.spec_from_file_location("throughput", path)
    throughput = importlib.util.module_from_spec(module)
    module.loader.exec_module(throughput)
    spec, hparams, cfg = throughput.zoo_settings("rnn")
    assert spec.name == "rnn" and hparams == defaults(zoo_rnn.HPARAMS)
    assert (cfg.lr, cfg.lr_schedule, cfg.clip_norm, cfg.label_smoothing) == \
        (1e-3, "constant", 0.0, 0.0)
    assert (cfg.epochs, cfg.batch_size) == (1, 128)
    _, hparams, cfg = throughput.zoo_settings("rnn", ["hidden=64", "threads=1"])
    assert hparams["hidden"] == 64 and cfg.threads == 1
