"""Serving: trained models leave the run folder.

- ``packs.py``: a completed run in one verified file (``zoo pack``), imported into any store
  as a run of its own (``zoo unpack``).
- ``weights.py``: published weights, declared per model and dataset in registry.toml or a
  plugin's registration, fetched and imported (``zoo pull``, :func:`weights.ensure_weights`).

Nothing here imports click; TensorFlow only where a checkpoint is rewritten.
"""
