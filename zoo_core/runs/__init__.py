"""Runs: plan and execute a batch of runs, record them in the results store, compare them.

- ``plan.py``, ``execute.py``: plan and execute a batch of runs (which model, dataset, seed and
  settings; what is already done), the same plan for every engine.
- ``records.py``: ``RunRecord`` (a run as stored and as hooks receive it), its statuses, the
  rules every store backend applies to it, and ``run_files()`` (what its folder holds).
- ``store.py``: the ``Store`` protocol the rest of the zoo uses (create, epochs, finish, get,
  query, and the queue sweeps claim runs from) and ``open_store()``.
- ``sqlite.py``: ``SQLiteStore``, the embedded default backend (one file, WAL, migrations).
- ``leaderboard.py``: completed runs aggregated per model, dataset and settings, rendered.
- ``plots.py``: a run's learning curves and confusion matrix as PNG files.

Nothing here imports click; the store and the leaderboard import no TensorFlow.
"""
