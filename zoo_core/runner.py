"""One ``zoo run``: resolve, load, train, evaluate, record.

This is the library side of the ``run`` command: it owns the run folder and the
store row, so that whatever happens (success, a NaN, Ctrl-C, SIGTERM) the run is
recorded with the right status and nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import platform
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core import __version__, datasets, paths
from zoo_core.errors import DataError, RunInterrupted, StoreError, UsageError, ZooError
from zoo_core.registry import Zoo
from zoo_core.store import RunRecord, Store, utc_now


@dataclass
class RunRequest:
    """What the user asked for; settings are merged by :meth:`Zoo.resolve`."""

    model: str
    dataset: str
    seed: int = 0
    overrides: dict[str, Any] | None = None  # typed, e.g. {"epochs": 3}
    raw_overrides: dict[str, str] | None = None  # from --set key=value
    data_dir: str | None = None
    limit: int | None = None


def new_run_id(model: str, dataset: str, seed: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{model}-{dataset}-s{seed}-{stamp}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C while training, so the run is recorded as interrupted."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def recorded_config(resolved, limit: int | None) -> dict[str, Any]:
    """The settings a run records, and whose hash is its config id: the merged model and
    trainer settings, and the training-set limit (so limited runs never average with full
    ones)."""
    return {**resolved.config, "limit": limit}


def execute(zoo: Zoo, request: RunRequest, store: Store, progress=None, data=None) -> RunRecord:
    """Train and evaluate one model on one dataset, recording everything.

    Args:
        zoo: the registry and plugins.
        request: model, dataset, seed and overrides.
        store: where the run is recorded.
        progress: a :class:`zoo_core.trainer.Progress` (per-step and per-epoch reports).
        data: already loaded splits for this dataset and limit (``--all`` reuses them).

    Returns:
        the completed run's record.

    Raises:
        ZooError: bad settings, data or plugin (nothing is recorded for settings or
            data errors; a failure during training is recorded as ``failed``).
        RunInterrupted: Ctrl-C or SIGTERM (a KeyboardInterrupt); the run is recorded
            as ``interrupted`` and its best checkpoint so far kept.
    """
    from zoo_core import trainer
    from zoo_core._tf import tf as import_tf

    resolved = zoo.resolve(request.model, request.dataset, request.overrides, request.raw_overrides)
    if data is None:
        data = datasets.load(resolved.dataset, request.data_dir, request.limit)
    tf = import_tf()
    config = recorded_config(resolved, request.limit)
    run_id = new_run_id(request.model, request.dataset, request.seed)
    run_dir = paths.ensure_dir(paths.runs_dir(), "the runs folder", StoreError) / run_id
    try:
        run_dir.mkdir()
    except OSError as e:
        raise StoreError(f"cannot create the run folder {run_dir}: {paths.why_not(e, run_dir)}; "
                         f"{paths.remedy(e)}") from None
    record = RunRecord(
        run_id=run_id, model=request.model, dataset=request.dataset,
        plugin=resolved.model.plugin, plugin_version=resolved.model.plugin_version,
        zoo_version=__version__, tf_version=tf.__version__, config=config, seed=request.seed,
        data_checksums=data.checksums, split_sizes=data.split_sizes, run_dir=str(run_dir),
    )
    trainer.write_json_atomic(run_dir / "config.json", {
        "run_id": run_id, "model": request.model, "dataset": request.dataset,
        "seed": request.seed, "config": config, "sources": resolved.sources,
        "data": {"source": data.source, "checksums": data.checksums, "splits": data.split_sizes},
        "versions": {"zoo-core": __version__, resolved.model.plugin: resolved.model.plugin_version,
                     "tensorflow": tf.__version__, "python": platform.python_version()},
    })
    store.create_run(record)
    return _train_and_record(zoo, store, record, resolved.model, resolved.hparams,
                             resolved.trainer, data, progress, resume=False)


def resume(zoo: Zoo, run_id: str, store: Store, progress=None, data_dir=None) -> RunRecord:
    """Continue an interrupted run from its last completed epoch.

    The run keeps its id, settings and seed; the data must be the same files
    (checksums are compared). Returns the completed run's record.
    """
    record = store.get(run_id)
    if record.status not in ("interrupted", "failed"):
        raise UsageError(f"run {record.run_id} is {record.status}; only interrupted or failed "
                         "runs can be resumed")
    spec = zoo.model(record.model)
    hparams, cfg = recorded_settings(record, spec)
    data = datasets.load(zoo.dataset(record.dataset), data_dir, record.config.get("limit"))
    if data.checksums != record.data_checksums:
        raise DataError(f"the {record.dataset} files found now ({data.source}) differ from the ones "
                        f"run {record.run_id} was trained on; point --data-dir at the original files")
    from zoo_core import trainer

    saved = (trainer.read_checkpoint_index(Path(record.run_dir)) or {}).get("state", {})
    for epoch in saved.get("epochs", []):  # an epoch saved but not yet stored when interrupted
        store.add_epoch(record.run_id, epoch["epoch"], **{k: epoch[k] for k in EPOCH_KEYS})
    store.finish_run(record.run_id, status="running", error=None)
    return _train_and_record(zoo, store, record, spec, hparams, cfg, data, progress, resume=True)


def recorded_settings(record: RunRecord, spec) -> tuple[dict, dict]:
    """A run's model hyperparameters and trainer settings, as it recorded them.

    Settings added to the trainer after the run was made take their defaults.
    """
    from zoo_core.spec import TRAINER_HPARAMS

    hparams = {k: record.config.get(k, p.default) for k, p in spec.hparams.items()}
    cfg = {k: record.config.get(k, p.default) for k, p in TRAINER_HPARAMS.items()}
    return hparams, cfg


def _train_and_record(zoo, store, record, model, hparams, cfg, data, progress, resume) -> RunRecord:
    from zoo_core import plots, trainer

    run_id, run_dir = record.run_id, Path(record.run_dir)
    recorder = _Recorder(store, run_id, progress)
    try:
        with sigterm_as_interrupt():
            result = trainer.train(model, hparams, cfg, data, record.seed, run_dir, recorder,
                                   resume=resume)
    except KeyboardInterrupt:
        store.finish_run(run_id, status="interrupted", finished_at=utc_now(),
                         error=f"interrupted after {recorder.epochs} epoch(s)", **recorder.best())
        _finished(zoo, store, run_id)
        raise RunInterrupted(run_id, recorder.epochs) from None
    except Exception as e:  # recorded as failed, then passed on
        error = str(e) if isinstance(e, ZooError) else f"{type(e).__name__}: {e}"
        store.finish_run(run_id, status="failed", finished_at=utc_now(), error=error)
        _finished(zoo, store, run_id)
        raise
    try:
        trainer.write_json_atomic(run_dir / "metrics.json", {
            "epochs": result.epochs, "best_epoch": result.best_epoch,
            "val_accuracy": result.val_accuracy, "stopped_early": result.stopped_early,
            "test": result.test.to_dict(data.classes),
        })
        title = f"{record.model} on {record.dataset}, seed {record.seed}"
        plots.learning_curves(result.epochs, run_dir / "curves.png", title=title)
        plots.confusion_matrix(result.test.confusion, data.classes, run_dir / "confusion.png",
                               title=f"{title}: test split")
    except OSError as e:
        message = (f"cannot write the run's files in {run_dir} ({paths.why_not(e, run_dir)}); "
                   f"test accuracy was {100 * result.test.accuracy:.2f}%; {paths.remedy(e)}")
        store.finish_run(run_id, status="failed", finished_at=utc_now(), error=message)
        raise StoreError(message) from None
    store.finish_run(
        run_id, status="completed", finished_at=utc_now(), params=result.params,
        best_epoch=result.best_epoch, train_seconds=result.train_seconds,
        examples_per_sec=result.examples_per_sec, val_accuracy=result.val_accuracy,
        test_loss=result.test.loss, test_accuracy=result.test.accuracy, error=None,
    )
    return _finished(zoo, store, run_id)


EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")


class _Recorder:
    """Passes progress through and stores each epoch as it ends."""

    def __init__(self, store: Store, run_id: str, progress):
        self.store, self.run_id, self.progress = store, run_id, progress
        self.epochs = 0
        self.best_record: dict | None = None

    def __getattr__(self, name):  # epoch_start, step, checkpoint: pass through
        return getattr(self.progress, name) if self.progress else (lambda *a, **k: None)

    def epoch_end(self, record: dict) -> None:
        self.epochs = record["epoch"]
        if record.get("best"):
            self.best_record = record
        self.store.add_epoch(self.run_id, record["epoch"], **{k: record[k] for k in EPOCH_KEYS})
        if self.progress:
            self.progress.epoch_end(record)

    def best(self) -> dict:
        if not self.best_record:
            return {}
        return {"best_epoch": self.best_record["epoch"],
                "val_accuracy": self.best_record["val_accuracy"]}


def _finished(zoo: Zoo, store: Store, run_id: str) -> RunRecord:
    record = store.get(run_id)
    manager = zoo.plugins.manager
    if manager is not None:
        try:
            manager.hook.zoo_run_finished(run=record)
        except Exception as e:  # noqa: BLE001 - a reporter must not lose the run
            import warnings

            warnings.warn(f"a zoo_run_finished hook failed: {type(e).__name__}: {e}")
    return record


def run_files(record: RunRecord) -> dict[str, Path]:
    """The files a run leaves in its folder, those that exist."""
    folder = Path(record.run_dir)
    names = ["config.json", "metrics.json", "curves.png", "confusion.png", "checkpoint.json"]
    return {n: folder / n for n in names if (folder / n).exists()}
