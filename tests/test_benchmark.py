"""The throughput benchmark runs end to end and its arithmetic is right. Its figures are for
docs/performance.md and are not asserted here: timed assertions flake on shared machines."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def throughput():
    path = ROOT / "benchmarks" / "throughput.py"
    spec = importlib.util.spec_from_file_location("throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_median_and_iqr_of_per_round_ratios(throughput):
    # the machine drifts between rounds (100 -> 200 -> 80 ex/s); the ratios within a round do not
    zoo = [100, 200, 150, 120, 80]
    tf1 = [90, 190, 160, 100, 80]
    ratios = throughput.round_ratios(zoo, tf1)
    assert ratios == pytest.approx([100 / 90, 200 / 190, 150 / 160, 1.2, 1.0])
    q = throughput.quartiles(ratios)
    # sorted: 0.9375, 1.0, 1.0526, 1.1111, 1.2; n=5, so q1, median, q3 are order statistics 2, 3, 4
    assert (q["median"], q["q1"], q["q3"], q["n"]) == pytest.approx((200 / 190, 1.0, 100 / 90, 5))
    # an even count interpolates: positions 0.75, 1.5, 2.25 of 1, 2, 3, 4
    q = throughput.quartiles([4, 1, 3, 2])
    assert (q["q1"], q["median"], q["q3"]) == pytest.approx((1.75, 2.5, 3.25))
    assert throughput.quartiles([]) is None
    assert throughput.quartiles([7.0]) == {"median": 7.0, "q1": 7.0, "q3": 7.0, "n": 1}
    # a round where either was not measured (failed: None) gives no ratio
    assert throughput.round_ratios([10, None, 30, 5], [5, 10, 0, None]) == [2.0]


def test_goal_status_says_how_far(throughput):
    status = throughput.goal_status
    assert status({"median": 1.4, "q1": 1.35, "q3": 1.5}, 1.3) == "met"
    assert "IQR reaches below" in status({"median": 1.32, "q1": 1.2, "q3": 1.4}, 1.3)
    assert status({"median": 1.17, "q1": 1.1, "q3": 1.2}, 1.3) == "missed by 10%"
    assert "IQR reaches it" in status({"median": 1.2, "q1": 1.1, "q3": 1.31}, 1.3)


def test_the_benchmark_runs_and_writes_json(tmp_path):
    out_file = tmp_path / "bench.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick",
         "--impls", "zoo", "tf1", "--json", str(out_file),
         "--rss-examples", "256"],  # memory runs of 256 images, not 2,560: their RSS is > 100 MB
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "issue #17 goals" in out.stdout and "float32 GEMM peak" in out.stdout
    result = json.loads(out_file.read_text())
    assert {"command", "machine", "versions", "method", "gemm", "models", "goals",
            "processes"} <= set(result)
    assert result["machine"]["model"] and result["machine"]["cores"] >= 1
    assert result["versions"]["tensorflow"]
    rounds = result["method"]["rounds"]
    assert rounds == 2 and len(result["gemm"]["per_round"]) == rounds
    assert result["gemm"]["median"] > 0
    rnn = result["models"]["rnn"]
    assert set(rnn) >= {"zoo", "tf1"}
    assert rnn["zoo"]["params"] == rnn["tf1"]["params"]  # the same architecture
    for impl in ("zoo", "tf1"):
        e = rnn[impl]
        assert e["precision"] == "float32"
        assert len(e["rates"]) == rounds and all(r > 0 for r in e["rates"])
        assert len(e["vs_tf1"]["per_round"]) == rounds
        assert all(r > 0 for r in e["vs_tf1"]["per_round"]) and e["vs_tf1"]["median"] > 0
        assert e["vs_tf1"]["q1"] <= e["vs_tf1"]["median"] <= e["vs_tf1"]["q3"]
        assert e["gemm_fraction"]["median"] > 0
        assert e["peak_rss_mb"] > 100
    assert rnn["tf1"]["vs_tf1"]["median"] == 1.0
    goals = {g["goal"]: g for g in result["goals"]}
    rnn_goal = goals["rnn float32: >= 1.3x the plain TF1 loop"]
    assert rnn_goal["measured"] == rnn["zoo"]["vs_tf1"]["median"]
    assert any(g.startswith("rnn memory") and g_["measured"] > 0 for g, g_ in goals.items())
    # the saved run prints the same tables again
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"),
                            "--report", str(out_file)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout.strip() == out.stdout.strip()


def test_memory_only_skips_the_timed_rounds(tmp_path):
    """docs/performance.md's memory figures come from ``--memory-only`` (any machine, busy
    or not): the peak-memory run alone, no rounds."""
    out_file = tmp_path / "memory.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--quick", "--memory-only",
         "--impls", "zoo", "--json", str(out_file), "--rss-examples", "256"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no timed rounds" in out.stdout and "ex/s" not in out.stdout
    result = json.loads(out_file.read_text())
    assert result["method"]["rounds"] == 0
    assert result["models"]["rnn"]["zoo"]["rates"] == []
    assert result["models"]["rnn"]["zoo"]["peak_rss_mb"] > 100


@pytest.mark.parametrize("has_bf16", [True, False], ids=["cpu-with-bf16", "cpu-without"])
def test_speed_settings_reach_the_session(monkeypatch, has_bf16):
    from zoo_core import settings
    from zoo_core._tf import tf as import_tf
    from zoo_core.settings import TrainerSettings
    from zoo_core.train.graph import session_config

    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: has_bf16)  # both CPUs, on any CPU

    tf = import_tf()
    default = session_config(TrainerSettings(threads=0, precision="float32"))
    assert default.intra_op_parallelism_threads == 0 and default.inter_op_parallelism_threads == 0
    tuned = session_config(TrainerSettings(threads=1, precision="bfloat16"))
    assert tuned.intra_op_parallelism_threads == 1 and tuned.inter_op_parallelism_threads == 1
    # xla was removed (it did nothing on CPU): nothing sets a JIT level
    assert tuned.graph_options.optimizer_options.global_jit_level == tf.compat.v1.OptimizerOptions.DEFAULT
    expected = 1 if has_bf16 else 0
    assert tuned.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == expected


def test_bf16_falls_back_to_float32_on_cpus_without_it(monkeypatch):
    from zoo_core import settings
    from zoo_core.settings import TrainerSettings
    from zoo_core.train import graph

    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: False)
    for precision in ("bfloat16", "auto"):
        config = graph.session_config(TrainerSettings(precision=precision))
        assert config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 0


def test_zoo_trains_the_peers_architecture_not_the_tuned_defaults(throughput):
    """registry.toml's rnn is two bidirectional layers with a cosine schedule; the peers
    build the plugin's default (one layer, one way) with Adam at 1e-3, and so must zoo."""
    import zoo_rnn
    from zoo_core.testing import defaults

    spec, hparams, cfg = throughput.zoo_settings("rnn")
    assert spec.name == "rnn" and hparams == defaults(zoo_rnn.HPARAMS)
    assert (cfg.lr, cfg.lr_schedule, cfg.clip_norm, cfg.label_smoothing) == \
        (1e-3, "constant", 0.0, 0.0)
    assert (cfg.epochs, cfg.batch_size) == (1, 128)
    _, hparams, cfg = throughput.zoo_settings("rnn", ["hidden=64", "threads=1"])
    assert hparams["hidden"] == 64 and cfg.threads == 1


def test_precision_rows_use_the_trainers_setting(throughput):
    fields = {f.name for f in dataclasses.fields(throughput.zoo_settings("rnn")[2])}
    _, _, fp32 = throughput.zoo_settings("rnn", precision="float32")
    _, _, bf16 = throughput.zoo_settings("rnn", precision="bfloat16")
    if "precision" in fields:
        assert (fp32.precision, bf16.precision) == ("float32", "bfloat16")
    else:
        assert (fp32.bf16, bf16.bf16) == (False, True)


def test_the_reference_loop_builds_the_original_graph(throughput):
    """Where a plugin offers kernels, the plain TF1 loop builds ``kernel=basic``."""
    import zoo_cnn
    import zoo_lstm

    hparams = throughput.reference_hparams(zoo_lstm)
    if "kernel" in zoo_lstm.HPARAMS:
        assert hparams["kernel"] == "basic"
    cnn_defaults = {k: p.default for k, p in zoo_cnn.HPARAMS.items()}
    assert throughput.reference_hparams(zoo_cnn) == cnn_defaults


# -- benchmarks/sweep.py (issue 31): no tests or pytest needed, rounds and their arithmetic ------

def test_the_sweep_benchmark_needs_neither_the_tests_nor_pytest():
    code = ("import sys; sys.modules['pytest'] = None; sys.path.insert(0, 'benchmarks'); "
            "import sweep; from zoo_core.testing import postgresql; "
            "print(sweep.postgresql.__module__, postgresql.throwaway_postgresql.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "conftest" not in (ROOT / "benchmarks" / "sweep.py").read_text()


def test_the_sweep_rounds_rotate_and_ratios_are_per_round(tmp_path):
    spec = importlib.util.spec_from_file_location("sweep", ROOT / "benchmarks" / "sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    names = ["sequential", "local:2", "ray"]
    assert [sweep.order(i, names) for i in range(4)] == [
        names, ["local:2", "ray", "sequential"], ["ray", "sequential", "local:2"], names]
    # the machine slows down between rounds; each round's ratio does not
    rounds = [{"sequential": 40.0, "local:2": 20.0}, {"sequential": 80.0, "local:2": 50.0},
              {"sequential": 60.0, "local:2": 30.0}]
    found = sweep.ratios(rounds, "local:2")
    assert found == {"median": 2.0, "q1": 1.8, "q3": 2.0, "n": 3}
    assert sweep.ratios([{"sequential": 1.0}], "ray") is None
    results = sweep.Results(tmp_path / "s.json", sweep.TINY)
    results.put("ratios", {"local:2": found})  # written at once, as each figure comes
    assert json.loads((tmp_path / "s.json").read_text())["ratios"]["local:2"]["median"] == 2.0


# -- benchmarks/kernels.py: kernel=sequence against kernel=basic, in one process -------------

@pytest.mark.slow
def test_the_kernel_benchmark_reports_a_single_round(capsys):
    spec = importlib.util.spec_from_file_location("kernels", ROOT / "benchmarks" / "kernels.py")
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    kernels.main(["--rounds", "1", "--seconds", "0.05", "--n-train", "512"])
    out = capsys.readouterr().out
    assert "round 1: basic" in out
    assert "over 1 rounds" in out and out.count("sequence/basic by") == 2
    with pytest.raises(SystemExit):
        kernels.main(["--rounds", "0"])
