"""A run's per-epoch scalars as TensorBoard event files, in its folder.

Written with TensorFlow's own summary writer (``tf.compat.v1.summary.FileWriter``), one
event per metric and epoch, so ``tensorboard --logdir $ZOO_HOME/runs`` shows every run, named
by its id. The event files are a convenience beside the store (which stays the record): a
failure to write them warns once and never fails the run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from zoo_core._tf import tf as import_tf

# TensorBoard tag -> the epoch record's key (zoo_core.train.metrics.EPOCH_METRICS).
SCALARS = {
    "loss/train": "train_loss",
    "loss/validation": "val_loss",
    "accuracy/train": "train_accuracy",
    "accuracy/validation": "val_accuracy",
    "learning_rate": "lr",
    "seconds_per_epoch": "seconds",
}


class EventWriter:
    """Writes each finished epoch's scalars into ``run_dir`` (opened at the first epoch)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._writer = None
        self._broken = False

    def epoch(self, record: dict) -> None:
        """Write one epoch record's scalars at step ``record["epoch"]``."""
        if self._broken:
            return
        tf = import_tf()
        values = [tf.compat.v1.Summary.Value(tag=tag, simple_value=float(record[key]))
                  for tag, key in SCALARS.items() if record.get(key) is not None]
        try:
            if self._writer is None:
                with tf.Graph().as_default():  # FileWriter refuses to start in eager mode
                    self._writer = tf.compat.v1.summary.FileWriter(str(self.run_dir))
            self._writer.add_summary(tf.compat.v1.Summary(value=values), int(record["epoch"]))
            self._writer.flush()
        except Exception as e:  # noqa: BLE001 - the store has the epoch; this is a copy
            self._broken = True
            warnings.warn(f"cannot write TensorBoard events in {self.run_dir}: "
                          f"{type(e).__name__}: {e}")

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass
