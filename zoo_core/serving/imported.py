"""What an imported run's folder lacks, made on import: ``predictions.npz`` and the plots.

A pack made by this zoo carries ``predictions.npz``; older packs (and any pack whose run had
none) do not, so its run's best checkpoint is evaluated on the dataset's test split, exactly
as the run's own end of training did, and the predictions saved. The learning curves, the
confusion matrix and the predictions picture are then drawn from the stored epochs,
metrics.json and predictions.npz (:func:`zoo_core.results.plots.draw_missing`). None of it
costs the import: a dataset that cannot be loaded, say, is a note for the user.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core.catalogue import Zoo
from zoo_core.paths import RunFiles
from zoo_core.store.records import RunRecord
from zoo_core.store import Store


def complete(zoo: Zoo, store: Store, record: RunRecord, data_dir=None) -> str:
    """Make ``predictions.npz`` (when missing) and the missing plots of the imported run
    ``record``. Returns "" or a note saying what could not be made, and why."""
    from zoo_core.results import plots

    run_dir = Path(record.run_dir)
    note = ""
    if not (run_dir / RunFiles.TEST_PREDICTIONS).is_file():
        try:
            _predict_test_split(zoo, record, run_dir, data_dir)
        except Exception as e:  # noqa: BLE001 - the import stands without its predictions
            from zoo_core.errors import first_line

            note = (f"{RunFiles.TEST_PREDICTIONS} and {RunFiles.PREDICTIONS} not made "
                    f"({type(e).__name__}: {first_line(e)}); importing or pulling "
                    "it again tries again")
    plots.draw_missing(record, store.epochs(record.run_id))
    return note


def _predict_test_split(zoo: Zoo, record: RunRecord, run_dir: Path, data_dir) -> None:
    from zoo_core import data
    from zoo_core.results import predictions
    from zoo_core.settings import RunSettings
    from zoo_core.train.evaluate import evaluate_checkpoint

    model = zoo.model(record.model)
    settings = RunSettings.recorded(record.config, model.hparams)
    loaded = data.load(zoo.dataset(record.dataset), data_dir, settings.limit)
    test = evaluate_checkpoint(model, settings.hparams, settings.trainer, run_dir,
                               loaded.x_test, loaded.y_test, loaded.num_classes)
    chosen = predictions.sample(loaded.x_test, loaded.y_test, test.predicted, test.confidence,
                                loaded.classes)
    predictions.save(run_dir, chosen, test.predicted, test.confidence)
