"""Serving: trained models leave the run folder.

- ``inference.py``: a run's graph rebuilt for inference (uint8 or float images in,
  probabilities and class ids out), its best checkpoint restored (``Classifier``), and which
  run ``zoo predict MODEL`` uses (``resolve_model_run``).
- ``images.py``: image files (PNG, JPEG, ... through Pillow), ``.npy`` arrays and IDX files
  read and converted to a dataset's image shape, one clear problem per bad file.
- ``export.py``: a run as a TensorFlow SavedModel (for TF Serving) or a TensorFlow Lite
  flatbuffer, written whole or not at all.
- ``packs.py``: a completed run in one verified file (``zoo pack``), imported into any store
  as a run of its own (``zoo unpack``).
- ``weights.py``: published weights, declared per model and dataset in registry.toml or a
  plugin's registration, fetched and imported (``zoo pull``, :func:`weights.ensure_weights`).

Nothing here imports click; TensorFlow and Pillow are imported when a run is loaded, a
checkpoint rewritten or a file decoded, never on import.
"""
