"""``zoo run``: options in, a plan out, its runs executed with progress shown.

Planning (what to run, with which settings, what is already done) and execution
(training, recording) are the library's (:mod:`zoo_core.runs.plan`,
:mod:`zoo_core.runs.execute`); this module parses options and prints.
"""

from __future__ import annotations

import contextlib
import math
import sys

import click

from zoo_core.cli.common import (DownloadProgressBar, data_dir_option, echo_json, json_option,
                                 message, parse_set_options, store_location)
from zoo_core.cli.completion import complete_datasets, complete_models, complete_run_ids
from zoo_core.errors import RunInterrupted, UsageError, ZooError
from zoo_core.runs.plan import RunRequest, plan
from zoo_core.train.metrics import loss_note
from zoo_core.store import open_store
from zoo_core.store.liveness import as_shown
from zoo_core.settings import MAX_SEED, MAX_SEEDS


class ConsoleProgress:
    """What ``zoo run`` shows: a line per run, a progress bar per epoch with running loss
    and accuracy, then a line per epoch, and each run's result (the
    :class:`zoo_core.runs.execute.Events` a batch reports)."""

    def __init__(self, out, as_json: bool):
        self.out, self.as_json = out, as_json
        self.bar = None

    def skipped(self, run):
        previous = run.done
        click.echo(f"skipping {run.label}: done as {previous.run_id} (test accuracy "
                   f"{100 * previous.test_accuracy:.2f}%)", file=self.out)

    def starting(self, run, data):
        if not self.as_json:
            click.echo(f"training {run.model.name} on {run.dataset.name} (seed {run.seed}, "
                       f"{data.split_sizes['train']} training examples) ...", file=self.out)
            note = loss_note(run.settings.config)
            if note:
                click.echo(note, file=self.out)

    def finished(self, record):
        if not self.as_json:
            _print_result(record)

    def failed(self, run, error):
        self.close()
        click.echo(f"error: {run.label} failed: {_why(error)}", err=True)

    def describe(self, error):
        return _recorded(error)

    def epoch_start(self, epoch, epochs, steps):
        self.epoch, self.epochs = epoch, epochs
        self.loss = self.acc = 0.0
        self.seen = 0
        self.bar = click.progressbar(
            length=steps, label=f"epoch {epoch}/{epochs}", file=sys.stderr,
            hidden=not sys.stderr.isatty(), item_show_func=self._show, show_pos=True,
        )
        self.bar.__enter__()

    def _show(self, _item):
        if not self.seen:
            return ""
        return f"loss {self.loss / self.seen:.4f}  acc {100 * self.acc / self.seen:5.2f}%"

    def step(self, loss, accuracy):
        self.steps(1, loss, accuracy)

    def steps(self, count, loss, accuracy):
        """``count`` steps ran in one call, with these mean loss and accuracy."""
        self.seen += count
        self.loss += loss * count
        self.acc += accuracy * count
        self.bar.update(count)

    def epoch_end(self, r):
        self.close()
        mark = "  *best" if r.get("best") else ""
        click.echo(
            f"epoch {r['epoch']:>{len(str(self.epochs))}}/{self.epochs}  "
            f"train loss {r['train_loss']:.4f} acc {100 * r['train_accuracy']:5.2f}%  "
            f"val loss {r['val_loss']:.4f} acc {100 * r['val_accuracy']:5.2f}%  "
            f"{r['seconds']:.1f}s{mark}", file=self.out)

    def close(self):
        """End the epoch's bar, once (also on Ctrl-C or an error mid-epoch)."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _why(error: BaseException) -> str:
    return message(error) if isinstance(error, ZooError) else f"{type(error).__name__}: {error}"


def _recorded(error: BaseException) -> str:
    """A failed run's error as the store keeps it: worded as this command line shows it."""
    from zoo_core.runs.execute import describe_failure  # loaded by now: a run is executing

    return message(error) if isinstance(error, ZooError) else describe_failure(error)


def run_options(f):
    """The options that say what to train, shared by ``zoo run`` and ``zoo sweep`` (where
    ``--set`` takes lists: ``--set dropout=0,0.3``)."""
    for option in reversed([
        click.option("--dataset", "-d", default="fashion", show_default=True,
                     shell_complete=complete_datasets, help="Dataset to train on."),
        click.option("--epochs", type=click.IntRange(min=1), help="Passes over the training split."),
        click.option("--batch-size", type=click.IntRange(min=1), help="Examples per training step."),
        click.option("--lr", type=float, help="Learning rate of the optimizer."),
        click.option("--precision", type=click.Choice(["float32", "bfloat16", "auto"]),
                     help="Numeric precision: bfloat16 (or auto) on CPUs with bfloat16 "
                          "instructions, float32 elsewhere; recorded with the run."),
        click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0,
                     show_default=True,
                     help="Graph seed and batch order; the same seed gives the same result."),
        click.option("--seeds", type=click.IntRange(min=1, max=MAX_SEEDS), default=1,
                     show_default=True, help="Repeat with seeds SEED, SEED+1, ... (for mean "
                                             "and spread on the leaderboard)."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                     help="Set any declared hyperparameter (repeatable); see "
                          "`zoo list MODEL --details`."),
        data_dir_option,
        click.option("--limit", type=click.IntRange(min=1),
                     help="Train on the first N training examples only."),
        click.option("--skip-done", is_flag=True,
                     help="Skip seeds already completed with the same settings (to finish an "
                          "interrupted --all or --seeds, or re-submit a sweep)."),
    ]):
        f = option(f)
    return f


def overrides(epochs, batch_size, lr, precision) -> dict:
    """The trainer settings that have options of their own, checked, for a RunRequest."""
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise UsageError(f"--lr must be a positive finite number, got {lr}")
    return {"epochs": epochs, "batch_size": batch_size, "lr": lr, "precision": precision}


@click.command("run")
@click.argument("model", required=False, shell_complete=complete_models)
@click.option("--all", "all_models", is_flag=True, help="Train every installed model in turn.")
@run_options
@click.option("--resume", "resume_id", metavar="RUN_ID", shell_complete=complete_run_ids,
              help="Continue an interrupted run from its last completed epoch.")
@json_option
@click.pass_obj
def run(state, model, all_models, dataset, epochs, batch_size, lr, precision, seed, seeds,
        settings, data_dir, limit, skip_done, resume_id, as_json):
    """Train MODEL on a dataset, evaluate it once on the test split and record the run.

    The best epoch on the validation split is kept; its test accuracy is reported.
    Settings merge as: plugin defaults < registry.toml < these options.

    \b
    Examples:
      zoo run cnn --dataset fashion
      zoo run lstm --epochs 3 --limit 5000          a quick try
      zoo run cnn --set dropout=0.5 --seeds 3
      zoo run --all --seeds 3 --skip-done           fill the leaderboard
      zoo run --resume cnn-fashion-s0-20261121-2248      after Ctrl-C
    """
    from zoo_core.runs import execute  # imports numpy: kept out of the light commands

    trainer = overrides(epochs, batch_size, lr, precision)
    zoo = state.zoo()
    out = sys.stderr if as_json else sys.stdout
    progress = ConsoleProgress(out, as_json)
    if resume_id:
        given = [f"--{k.replace('_', '-')}" for k, v in dict(
            model=model, all=all_models, epochs=epochs, batch_size=batch_size, lr=lr,
            precision=precision, set=settings, limit=limit, skip_done=skip_done).items() if v]
        if given or seeds != 1 or seed != 0:
            raise UsageError("--resume continues a run with its own settings; drop "
                             + (", ".join(given) or "--seed/--seeds"))
        with open_store(store_location()) as store, _interruptible(progress, resume_id):
            record = execute.resume(zoo, resume_id, store, data_dir=data_dir, progress=progress,
                                    download=DownloadProgressBar())
        echo_json(as_shown(record)) if as_json else _print_result(record)
        return
    if all_models == bool(model):
        raise UsageError("give a MODEL or --all (see `zoo list`)")
    request = RunRequest(
        models=sorted(zoo.models) if all_models else [model], dataset=dataset,
        seeds=range(seed, seed + seeds), overrides=trainer,
        text_overrides=parse_set_options(settings), limit=limit, skip_done=skip_done)
    with open_store(store_location()) as store:
        batch = plan(zoo, request, store)  # every setting and the store checked before training
        with _interruptible(progress):
            result = execute.execute_plan(zoo, batch, store, data_dir=data_dir, events=progress,
                                          download=DownloadProgressBar())
    if as_json:
        records = [as_shown(r) for r in result.records]
        echo_json(records if len(batch.runs) > 1 else records[0])
    if result.failures:
        failed = ", ".join(run.label for run, _ in result.failures)
        raise ZooError(f"{len(result.failures)} of {len(batch.runs)} runs failed ({failed}); "
                       "see the errors above and `zoo show RUN_ID`")


@contextlib.contextmanager
def _interruptible(progress: ConsoleProgress, resume_id: str | None = None):
    """Ctrl-C or SIGTERM during a run (SIGTERM acts as Ctrl-C for the whole command): say
    what was recorded and exit 130."""
    from zoo_core.runs import signals

    try:
        with signals.interrupts():
            yield
    except KeyboardInterrupt as e:
        progress.close()
        click.echo("\n" + _interruption(e, resume_id), err=True)
        sys.exit(130)
    except Exception:
        progress.close()
        raise


def _interruption(e: KeyboardInterrupt, resume_id: str | None) -> str:
    """What an interruption left recorded, in words."""
    if isinstance(e, RunInterrupted) and e.completed:
        return (f"interrupted: run {e.run_id} had finished and is recorded as completed; its "
                f"plots may be missing (`zoo show {e.run_id}` draws them)")
    if isinstance(e, RunInterrupted) and not e.epochs:
        return (f"interrupted: run {e.run_id} is recorded as interrupted before its first "
                f"epoch ended; `zoo run --resume {e.run_id}` starts it again (`zoo runs rm "
                f"{e.run_id}` drops it)")
    if isinstance(e, RunInterrupted):
        return (f"interrupted: run {e.run_id} is recorded as interrupted after {e.epochs} "
                f"epoch(s), its checkpoints kept; continue it with `zoo run --resume {e.run_id}`")
    if resume_id:
        return f"interrupted before run {resume_id} resumed training; its record is unchanged"
    return "interrupted before training started; nothing recorded"


def _print_result(r) -> None:
    click.echo(
        f"{r.run_id}: test accuracy {100 * r.test_accuracy:.2f}% (loss {r.test_loss:.4f}) "
        f"at best epoch {r.best_epoch} of {r.epochs_run} (validation {100 * r.val_accuracy:.2f}%), "
        f"{r.params:,} parameters, {r.train_seconds:.0f}s training, "
        f"{r.examples_per_sec:,.0f} examples/s")
    click.echo(f"files: {r.run_dir}")


COMMANDS = [run]
