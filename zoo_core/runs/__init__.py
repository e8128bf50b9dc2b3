"""Runs: plan a batch of runs and execute it, here or on workers.

- ``plan.py``: which model, dataset, seed and settings; what the store has done already. The
  same plan for every engine.
- ``execute.py``: each planned run, in this process: data, graph, training, evaluation, its
  record in the store and its folder (results written through :mod:`zoo_core.results`).
- ``sweep.py``: a sweep's trials: expanded, checked, queued in the store, planned again by
  a worker; its status; cancelling.
- ``worker.py``: the loop every engine runs: claim a trial, run it, release it.
- ``engines.py``: ``--engine local:N`` worker processes; ``ray_engine.py`` one Ray task per
  trial (the only module that imports ray).
- ``signals.py``: SIGTERM as Ctrl-C while a run trains; both held while its result is recorded.

The store is :mod:`zoo_core.store`; what runs show is :mod:`zoo_core.results`. Nothing here
imports click.
"""
