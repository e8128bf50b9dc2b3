"""Training: one ``tf.Graph`` and ``Session`` loop shared by every model.

- ``graph.py``: a fresh graph around a plugin's builder: inputs (the training data held
  in the graph, batches gathered by index), the forward pass, the loss and the optimizer.
- ``forward.py``: the one place the zoo calls a builder, and the check of what it returns.
- ``step.py``: one step's pieces (loss, learning rate, optimizer, update, augmentation).
- ``steploop.py``: K such steps in one ``Session.run`` (a ``while_loop`` built from
  step.py's pieces), for models where that computes exactly what single steps do.
- ``loop.py``: the ``Session`` loop: epochs, steps (one or K per call), progress, early
  stopping, the final test evaluation of the best checkpoint.
- ``checkpoints.py``: saving each epoch atomically, resuming, the run folder's JSON files.
- ``evaluate.py``: a split's loss, accuracy and confusion on a live session or a checkpoint.
- ``metrics.py``: what is measured (no TensorFlow).

The settings these take are :class:`zoo_core.settings.TrainerSettings`. The trainer reads
no command-line flags and prints nothing: progress goes to a :class:`loop.Progress`.
"""
