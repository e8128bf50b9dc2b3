"""Results: what a recorded run shows, read by the command line, the web pages and ``zoo site``
alike, so that every front end shows what the same library call computes.

- ``leaderboard.py``: completed runs aggregated per model, dataset and settings, rendered.
- ``evidence.py``: a run's model card: the machine and process facts recorded at its start,
  and reading them back (``zoo leaderboard --details``).
- ``costplot.py``: the leaderboard's accuracy against cost, the Pareto front (``--plot``).
- ``plots.py``: a run's learning curves, confusion matrix and predictions picture as PNG files;
  ``predictions.py``: a run's test predictions kept beside it, and the examples shown.
- ``tensorboard.py``: a run's per-epoch TensorBoard event files.

They read the store (:mod:`zoo_core.store`) and run folders, never the code that runs
(:mod:`zoo_core.runs`). Nothing here imports click; the leaderboard imports no TensorFlow,
numpy or matplotlib (plots import them when drawing).
"""
