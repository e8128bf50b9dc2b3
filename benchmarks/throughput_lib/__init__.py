"""The parts of benchmarks/throughput.py (its docstring says how it measures): common.py,
turns.py, trainers.py, workers.py, rounds.py, summary.py, report.py."""
