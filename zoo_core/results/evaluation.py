"""``zoo evaluate``: a recorded run's best checkpoint evaluated again on a split, recording
nothing (the run's reported test accuracy stays the one measured when it finished).

TensorFlow and numpy are imported when a run is evaluated, not when this module is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.results.evidence import recorded_settings
from zoo_core.store import Store
from zoo_core.store.records import RunRecord

SPLITS = ("val", "test", "train")


@dataclass
class Evaluation:
    """What :func:`evaluate_run` measured: the run, the split, its metrics
    (:class:`zoo_core.train.evaluate.EvalResult`), the dataset's class names, and whether the
    dataset's files are the ones the run was trained on."""

    record: RunRecord
    split: str
    metrics: Any
    classes: list[str]
    same_data: bool

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.record.run_id, "split": self.split,
                **self.metrics.to_dict(self.classes)}


def evaluate_run(zoo, store: Store, run_id: str, split: str = "test", data_dir=None,
                 progress=None) -> Evaluation:
    """Evaluate run ``run_id``'s best checkpoint on ``split`` (one of :data:`SPLITS`) of its
    dataset, loaded as it was for the run (its ``limit``); ``zoo`` is the catalogue
    (:class:`~zoo_core.catalogue.Zoo`), ``progress`` a download progress.

    Raises:
        UnknownNameError: no such run; DataError: the dataset cannot be loaded.
    """
    # numpy and the graph code: kept out of the light commands
    from zoo_core.data import load
    from zoo_core.train.evaluate import evaluate_checkpoint

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    record = store.get(run_id)
    spec = zoo.model(record.model)
    settings = recorded_settings(record, spec.hparams, as_ran=True)
    data = load(zoo.dataset(record.dataset), data_dir, settings.limit, progress=progress)
    x, y = {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test),
            "train": (data.x_train, data.y_train)}[split]
    metrics = evaluate_checkpoint(spec, settings.hparams, settings.trainer, Path(record.run_dir),
                                  x, y, data.num_classes)
    return Evaluation(record, split, metrics, list(data.classes),
                      data.checksums == record.data_checksums)
