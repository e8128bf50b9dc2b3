"""Executing a plan: for each run, load, train, evaluate and record, whatever happens.

This module owns a run's folder and its row in the store, so that whatever happens
(success, a NaN, Ctrl-C, SIGTERM) the run is recorded with the right status and nothing
half-written is left behind. :func:`execute_plan` runs a :class:`~zoo_core.runs.plan.RunPlan`
in this process, one run after another; :func:`resume` continues an interrupted run.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from zoo_core import __version__, data, paths
from zoo_core.paths import RunFiles
from zoo_core._tf import tf as import_tf
from zoo_core.catalogue import Zoo
from zoo_core.catalogue.plugins import call_each
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.data import Data, DownloadProgress
from zoo_core.errors import (DataError, PluginError, RunInterrupted, StoreError, TrialPruned,
                             UsageError, ZooError, first_line, location, render, setting)
from zoo_core.store import liveness
from zoo_core.results import evidence, plots, predictions
from zoo_core.runs import signals
from zoo_core.results.tensorboard import EventWriter
from zoo_core.runs.plan import PlannedRun, RunPlan
from zoo_core.runs.recorder import Recorder, RunTakenOver

_Recorder = Recorder  # its name before it had a module of its own (tests, fault_child.py)
from zoo_core.store.records import RunRecord, new_run_id, utc_now
from zoo_core.store import Store
from zoo_core.settings import RunSettings
from zoo_core.train import checkpoints, loop
from zoo_core.train.cost import model_cost
from zoo_core.train.metrics import EPOCH_METRICS, Metrics, train_loss_terms


class Events(loop.Progress):
    """What a batch of runs reports as it goes (and each run's progress); the default is silent."""

    def skipped(self, run: PlannedRun) -> None:
        """``run`` is left out: the store has it done (``run.done``)."""

    def starting(self, run: PlannedRun, data: Data) -> None:
        """``run`` is about to train on ``data``."""

    def finished(self, record: RunRecord) -> None:
        """A run completed."""

    def failed(self, run: PlannedRun, error: BaseException) -> None:
        """A run failed (recorded as failed); the batch goes on with the next one."""

    def describe(self, error: BaseException) -> str:
        """The words a failed run is recorded with: what the user is shown of ``error``
        (a front end names settings its own way; see :func:`zoo_core.errors.render`)."""
        return describe_failure(error)


def describe_failure(error: BaseException) -> str:
    """A failure in one line (a paragraph for a plugin's graph error), the library's words."""
    if isinstance(error, ZooError):
        return str(error)
    return f"{type(error).__name__}: {first_line(error)}{location(error)}"


@dataclass
class BatchResult:
    """What a batch ended with: completed (or skipped as done) runs, and failures."""

    records: list[RunRecord] = field(default_factory=list)
    failures: list[tuple[PlannedRun, BaseException]] = field(default_factory=list)


def execute_plan(zoo: Zoo, plan: RunPlan, store: Store, *, data_dir=None,
                 events: Events | None = None,
                 download: DownloadProgress | None = None) -> BatchResult:
    """Run every run of ``plan`` that is not done, in this process, in order.

    The dataset is loaded once for the whole batch. A run that fails is recorded as
    failed and the batch goes on, unless the plan has a single run (its error is raised)
    or the error is the store's or the data's (every other run would fail too).

    Raises:
        RunInterrupted: Ctrl-C or SIGTERM; that run is recorded as interrupted.
        StoreError, DataError: the batch stops at once.
    """
    events = events or Events()
    result = BatchResult()
    todo = plan.todo
    loaded = data.load(plan.dataset, data_dir, plan.limit, progress=download) if todo else None
    for run in plan.runs:
        if run.done is not None:
            events.skipped(run)
            result.records.append(run.done)
            continue
        events.starting(run, loaded)
        try:
            record = execute(zoo, run, store, loaded, events)
        except (StoreError, DataError):
            raise
        except Exception as e:
            if len(plan.runs) == 1:
                raise
            result.failures.append((run, e))  # recorded as failed; the others still run
            events.failed(run, e)
            continue
        result.records.append(record)
        events.finished(record)
    return result


def execute(zoo: Zoo, run: PlannedRun, store: Store, loaded: Data,
            progress: loop.Progress | None = None) -> RunRecord:
    """Train and evaluate one planned run on ``loaded`` data, recording everything.

    Returns:
        the completed run's record.

    Raises:
        ZooError: the run folder cannot be made (nothing recorded), or training failed
            (recorded as ``failed``).
        RunInterrupted: Ctrl-C or SIGTERM; recorded as ``interrupted``, checkpoints kept.
    """
    tf = import_tf()
    run_id = new_run_id(run.model.name, run.dataset.name, run.seed)
    run_dir = _new_run_dir(run_id)
    record = RunRecord(
        run_id=run_id, model=run.model.name, dataset=run.dataset.name, plugin=run.model.plugin,
        plugin_version=run.model.plugin_version, zoo_version=__version__,
        tf_version=tf.__version__, config=run.settings.config, seed=run.seed,
        data_checksums=loaded.checksums, split_sizes=loaded.split_sizes, run_dir=str(run_dir),
        **liveness.owner(),
    )
    try:
        _write_config(run_dir, run_id, run, loaded)
        with signals.held():  # the row is written whole, or not at all
            store.create_run(record)
    except BaseException:  # not recorded: leave no folder behind
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return _train_and_record(zoo, store, record, run.model, run.settings, loaded, progress,
                             resume=False)


def execute_claimed(zoo: Zoo, run: PlannedRun, store: Store, record: RunRecord, loaded: Data,
                    progress: loop.Progress | None = None, *, threads: int = 0) -> RunRecord:
    """Train a queued run that this process claimed (``record``: running, owned by this
    process; ``run``: its settings, planned again here), recording everything as
    :func:`execute` does. A run that has a checkpoint (its earlier owner died) continues from
    its last one; else it starts from its seed, in its folder under ``paths.runs_dir()``.

    Args:
        threads: the most threads per op (and ops at once) this process may use, 0 for no
            limit: its share of the machine's cores. Not part of the run's settings.
    """
    run_dir = Path(record.run_dir) if record.run_dir else paths.runs_dir() / record.run_id
    if checkpoints.read_index(run_dir):
        record = store.get(record.run_id)
        _check_same_data(record, loaded)
        return _continue(zoo, store, record, run.model, run.settings, loaded, progress, threads)
    paths.ensure_dir(run_dir, "the run folder", StoreError)
    config = run_dir / f".{RunFiles.CONFIG}.{os.getpid()}"  # renamed into place while ours
    _write_config(run_dir, record.run_id, run, loaded, config)
    try:
        ours = store.update_run(record.run_id, run_dir=str(run_dir),
                                data_checksums=loaded.checksums, split_sizes=loaded.split_sizes,
                                expect=liveness.mine(),
                                publish=lambda: config.replace(run_dir / RunFiles.CONFIG))
    finally:
        config.unlink(missing_ok=True)
    if not ours:
        raise RunTakenOver(f"run {record.run_id} was taken over by another process before "
                           "this one started it: see `zoo runs`")
    return _train_and_record(zoo, store, store.get(record.run_id), run.model, run.settings,
                             loaded, progress, resume=False, threads=threads)


def _write_config(run_dir: Path, run_id: str, run: PlannedRun, loaded: Data,
                  path: Path | None = None) -> None:
    """The run folder's config.json (or ``path``): settings, their sources, the data, the
    versions."""
    tf = import_tf()
    checkpoints.write_json_atomic(path or run_dir / RunFiles.CONFIG, {
        "run_id": run_id, "model": run.model.name, "dataset": run.dataset.name,
        "seed": run.seed, "config": run.settings.config, "speed": run.settings.speed,
        "sources": dict(run.settings.sources),
        "data": {"source": render(loaded.source), "checksums": loaded.checksums,
                 "splits": loaded.split_sizes},
        "versions": {"zoo-core": __version__, run.model.plugin: run.model.plugin_version,
                     "tensorflow": tf.__version__, "python": platform.python_version()},
        "environment": evidence.environment(),  # cpu, cores, command, git (docs/results.md)
    })


def _new_run_dir(run_id: str) -> Path:
    run_dir = paths.ensure_dir(paths.runs_dir(), "the runs folder", StoreError) / run_id
    try:
        run_dir.mkdir()
    except OSError as e:
        raise StoreError(f"cannot create the run folder {run_dir}: {paths.why_not(e, run_dir)}; "
                         f"{paths.remedy(e)}") from None
    return run_dir


def resume(zoo: Zoo, run_id: str, store: Store, *, data_dir=None,
           progress: loop.Progress | None = None,
           download: DownloadProgress | None = None) -> RunRecord:
    """Continue an interrupted (or failed) run from its last completed epoch.

    The run keeps its id, settings and seed; the data must be the same files
    (checksums are compared). Returns the completed run's record.
    """
    record = liveness.fail_stale(store, store.get(run_id))  # its process gone: interrupted
    if liveness.owner_unseen(record):
        raise UsageError(f"{liveness.unseen_owner_hint(record)}; only interrupted or failed runs "
                         "can be resumed")
    if record.status not in ("interrupted", "failed"):
        held = f" ({liveness.owner_text(record)})" if record.status == "running" else ""
        raise UsageError(f"run {record.run_id} is {record.status}{held}; only interrupted or "
                         "failed runs can be resumed")
    if not record.split_sizes:  # a sweep's trial that ended (cancelled) before it started
        raise UsageError(f"run {record.run_id} never started training ({record.error}): "
                         "there is nothing to resume; submit its sweep again with --skip-done")
    spec = zoo.model(record.model)
    settings = evidence.recorded_settings(record, spec.hparams)
    loaded = data.load(zoo.dataset(record.dataset), data_dir, settings.limit, progress=download)
    _check_same_data(record, loaded)
    if liveness.take_over(store, record) is None:
        now = store.get(record.run_id)
        raise ZooError(f"run {record.run_id} was taken by another process meanwhile (now "
                       f"{liveness.shown_status(now)}, {liveness.owner_text(now)}): see `zoo runs`")
    return _continue(zoo, store, record, spec, settings, loaded, progress)


def _check_same_data(record: RunRecord, loaded: Data) -> None:
    """A run continues only on the files it was trained on (their checksums)."""
    if loaded.checksums != record.data_checksums:
        raise DataError(f"the {record.dataset} files found now ({loaded.source}) differ from the "
                        f"ones run {record.run_id} was trained on; point {setting('data_dir')} "
                        "at the original files")


def _continue(zoo: Zoo, store: Store, record: RunRecord, spec: ModelSpec, settings: RunSettings,
              loaded: Data, progress, threads: int = 0) -> RunRecord:
    """Train a run this process owns on from its last checkpoint: the epochs saved there but
    not yet stored first (an epoch saved but not stored when its process stopped)."""
    saved = (checkpoints.read_index(Path(record.run_dir)) or {}).get("state", {})
    for epoch in saved.get("epochs", []):
        if not store.add_epoch(record.run_id, epoch["epoch"], expect=liveness.mine(),
                               **{k: epoch[k] for k in EPOCH_METRICS}):
            raise RunTakenOver(f"run {record.run_id} was taken over by another process as "
                               "this one resumed it: see `zoo runs`")
    return _train_and_record(zoo, store, record, spec, settings, loaded, progress, resume=True,
                             threads=threads)



def _train_and_record(zoo: Zoo, store: Store, record: RunRecord, model: ModelSpec,
                      settings: RunSettings, loaded: Data, progress, resume: bool,
                      threads: int = 0) -> RunRecord:
    """Train, then record the result before anything optional (plots), so that a signal or
    a fault at any point leaves a true record: completed with its metrics, or interrupted
    or failed with the reason (docs/reliability.md). ``threads`` caps the trainer's threads
    (a worker's share of the cores) without changing the run's settings."""
    run_id, run_dir = record.run_id, Path(record.run_dir)
    trainer = settings.trainer
    if threads:
        trainer = dataclasses.replace(trainer, threads=min(trainer.threads or threads, threads))
    # what runs, on this CPU (while the run is this process's, as every write of it)
    store.update_run(run_id, precision=trainer.effective_precision, expect=liveness.mine())
    now = store.get(run_id)
    recorder = Recorder(store, now, progress, EventWriter(run_dir),
                         done=now.epochs_run if resume else 0)
    recorded = False
    try:
        with signals.interrupts():
            cost = _cost(model, settings, loaded)
            result = loop.train(model, settings.hparams, trainer, loaded, record.seed,
                                run_dir, recorder, resume=resume)
            with signals.held():  # a signal now waits until the result is recorded whole
                _record_result(store, record, result, loaded, cost, recorder)
                recorded = True
    except KeyboardInterrupt:
        if not recorded:
            with signals.held():
                store.finish_run(run_id, status="interrupted", finished_at=utc_now(),
                                 error=f"interrupted after {recorder.epochs} epoch(s)",
                                 expect=recorder.owner, **recorder.best())
        _finished(zoo, store, run_id)
        raise RunInterrupted(run_id, recorder.epochs, completed=recorded) from None
    except RunTakenOver:  # the run is another process's now: nothing of it is ours to record
        raise
    except TrialPruned as e:  # a search's pruner stopped it: a decision, not a failure
        _record_pruned(zoo, store, run_id, e.reason, recorder)
        raise
    except (Exception, SystemExit) as e:  # recorded as failed, then passed on
        error = e
        if isinstance(e, SystemExit):  # plugin code called sys.exit(): the plugin's failure
            error = PluginError(f"model {model.name!r} ({model.plugin}) called "
                                f"sys.exit({e.code!r}) during the run{location(e)}")
        describe = getattr(progress, "describe", describe_failure)  # the front end's words
        with signals.held():
            store.finish_run(run_id, status="failed", finished_at=utc_now(),
                             error=describe(error), expect=recorder.owner)
        _finished(zoo, store, run_id)
        if error is e:
            raise
        raise error from None
    finally:
        recorder.events.close()
    done = _finished(zoo, store, run_id)
    try:
        with signals.interrupts():
            _draw_plots(record, result, loaded)
    except KeyboardInterrupt:
        raise RunInterrupted(run_id, recorder.epochs, completed=True) from None
    return done


def _record_pruned(zoo: Zoo, store: Store, run_id: str, reason: str, recorder: Recorder) -> None:
    """A trial its search's pruner stopped: status "pruned", the reason, its best epoch (a
    fenced write: nothing when the trial is another process's now)."""
    with signals.held():
        store.finish_run(run_id, status="pruned", finished_at=utc_now(), error=reason,
                         expect=recorder.owner, **recorder.best())
    _finished(zoo, store, run_id)


def _cost(model: ModelSpec, settings: RunSettings, loaded: Data) -> dict:
    """metrics.json's ``model`` (beside the parameters): MACs per example, counted from the
    forward graph (:mod:`zoo_core.train.cost`). Counting never fails a run: a graph it cannot count
    (or a builder that fails here, and will fail the run in training) has ``macs`` None and
    ``macs_note`` saying why."""
    try:
        found = model_cost(model, settings.hparams, loaded.x_train.shape[1:], loaded.num_classes)
    except Exception as e:  # noqa: BLE001 - the figure is optional, the run is not
        return {"macs": None, "macs_note": describe_failure(e)}
    return {"macs": found.macs,
            **({"macs_note": found.why} if found.why else {})}


def _record_result(store: Store, record: RunRecord, result: loop.TrainResult, loaded: Data,
                   cost: dict, recorder: Recorder):
    """The run's metrics.json, then its row completed with the result, in one fenced write
    (metrics.json is renamed into place inside it); a metrics.json that cannot be written
    fails the run (the message keeps the test accuracy)."""
    run_dir = Path(record.run_dir)
    metrics = run_dir / RunFiles.METRICS
    pending = metrics.with_name(f".{metrics.name}.{os.getpid()}")
    try:
        checkpoints.write_json_atomic(pending, {
            "epochs": result.epochs, "best_epoch": result.best_epoch,
            "val_accuracy": result.val_accuracy, "stopped_early": result.stopped_early,
            "test": result.test.to_dict(loaded.classes),
            "model": {"params": result.params, **cost},  # what it costs (results/evidence.py)
            # how the steps were dispatched (speed only; config.json has what was asked for)
            "speed": {"steps_per_call": result.steps_per_call,
                      **({"steps_note": result.steps_note} if result.steps_note else {})},
        })
    except OSError as e:
        pending.unlink(missing_ok=True)
        message = (f"cannot write the run's files in {run_dir} ({paths.why_not(e, run_dir)}); "
                   f"test accuracy was {100 * result.test.accuracy:.2f}%; {paths.remedy(e)}")
        store.finish_run(record.run_id, status="failed", finished_at=utc_now(), error=message,
                         expect=recorder.owner)
        raise StoreError(message) from None
    try:
        ours = store.finish_run(
            record.run_id, status="completed", finished_at=utc_now(), params=result.params,
            best_epoch=result.best_epoch, train_seconds=result.train_seconds,
            examples_per_sec=result.examples_per_sec, val_accuracy=result.val_accuracy,
            test_loss=result.test.loss, test_accuracy=result.test.accuracy, error=None,
            expect=recorder.owner, publish=lambda: os.replace(pending, metrics))
    finally:
        pending.unlink(missing_ok=True)
    if not ours:
        raise recorder.taken_over()
    _save_predictions(run_dir, result.test, loaded)  # optional, so after the row


def _save_predictions(run_dir: Path, test: Metrics, loaded: Data) -> None:
    """predictions.npz, what the predictions picture shows (``results/predictions.py``): like
    the picture, optional; a file that cannot be written is a warning."""
    if test.predicted is None:
        return
    try:
        chosen = predictions.sample(loaded.x_test, loaded.y_test, test.predicted,
                                    test.confidence, loaded.classes)
        predictions.save(run_dir, chosen, test.predicted, test.confidence)
    except Exception as e:  # noqa: BLE001 - never costs the run, which is recorded
        why = paths.why_not(e, run_dir) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
        warnings.warn(f"cannot write {RunFiles.TEST_PREDICTIONS} in {run_dir}: {why}; the run "
                      "is recorded all the same", stacklevel=2)


def _draw_plots(record: RunRecord, result: loop.TrainResult, loaded: Data) -> None:
    """The learning curves, the confusion matrix and the predictions picture: optional,
    drawn after the run is recorded (``zoo show`` draws them when they are missing)."""
    run_dir = Path(record.run_dir)
    plots.run_plots(run_dir, f"{record.model} on {record.dataset}, seed {record.seed}",
                    result.epochs, result.test.confusion, loaded.classes,
                    predictions.load(run_dir), train_loss_terms(record.config))


def _finished(zoo: Zoo, store: Store, run_id: str) -> RunRecord:
    """The run as stored, after telling the plugins' ``zoo_run_finished`` hooks."""
    record = store.get(run_id)
    manager = zoo.plugins.manager
    if manager is not None:  # a reporter that fails must not lose the run
        for name, e in call_each(manager, "zoo_run_finished", run=record):
            warnings.warn(f"plugin {name}'s zoo_run_finished hook failed: "
                          f"{type(e).__name__}: {first_line(e)}{location(e)}; the run is "
                          "recorded all the same", stacklevel=1)
    return record

