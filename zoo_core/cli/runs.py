"""``zoo run``, ``zoo show``, ``zoo evaluate`` and ``zoo leaderboard``."""

from __future__ import annotations

import sys
import time

import click

from zoo_core.cli.common import echo_json, json_option, table

_LEADERBOARD_FORMATS = "any tabulate format (simple, github, grid, ...), csv or json"


class ConsoleProgress:
    """A progress bar per epoch with running loss and accuracy, then a line per epoch."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.bar = None

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
        self.seen += 1
        self.loss += loss
        self.acc += accuracy
        self.bar.update(1)

    def epoch_end(self, r):
        self.close()
        mark = "  *best" if r.get("best") else ""
        click.echo(
            f"epoch {r['epoch']:>{len(str(self.epochs))}}/{self.epochs}  "
            f"train loss {r['train_loss']:.4f} acc {100 * r['train_accuracy']:5.2f}%  "
            f"val loss {r['val_loss']:.4f} acc {100 * r['val_accuracy']:5.2f}%  "
            f"{r['seconds']:.1f}s{mark}", file=self.out)

    def checkpoint(self, epoch, prefix):
        pass

    def close(self):
        """End the epoch's bar, once (also on Ctrl-C or an error mid-epoch)."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("run")
@click.argument("model", required=False)
@click.option("--dataset", "-d", default="fashion", show_default=True, help="Dataset to train on.")
@click.option("--all", "all_models", is_flag=True, help="Train every installed model in turn.")
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the training split.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per training step.")
@click.option("--lr", type=float, help="Adam learning rate.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Graph seed and batch order; the same seed gives the same result.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Repeat with seeds SEED, SEED+1, ... (for mean and spread on the leaderboard).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set any declared hyperparameter (repeatable); see `zoo list MODEL --details`.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="ZOO_DATA_DIR",
              help="Look for the dataset's files here first [env: ZOO_DATA_DIR].")
@click.option("--limit", type=click.IntRange(min=1), help="Train on the first N training examples only.")
@click.option("--resume", "resume_id", metavar="RUN_ID",
              help="Continue an interrupted run from its last completed epoch.")
@click.option("--skip-done", is_flag=True,
              help="Skip seeds already completed with the same settings (to finish an "
                   "interrupted --all or --seeds).")
@json_option
@click.pass_obj
def run(state, model, dataset, all_models, epochs, batch_size, lr, seed, seeds, settings,
        data_dir, limit, resume_id, skip_done, as_json):
    """Train MODEL on a dataset, evaluate it once on the test split and record the run.

    The best epoch on the validation split is kept; its test accuracy is reported.
    Settings merge as: plugin defaults < registry.toml < these options.

    \b
    Examples:
      zoo run cnn --dataset fashion
      zoo run lstm --epochs 3 --limit 5000          a quick try
      zoo run cnn --set dropout=0.3 --seeds 3
      zoo run --all --seeds 3 --skip-done           fill the leaderboard
      zoo run --resume cnn-fashion-s0-20261121-2248      after Ctrl-C
    """
    import math

    from zoo_core import datasets, runner
    from zoo_core.errors import DataError, StoreError, UsageError, ZooError
    from zoo_core.registry import parse_set_options
    from zoo_core.store import Store, config_id

    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise UsageError(f"--lr must be a positive finite number, got {lr}")
    zoo = state.zoo()
    out = sys.stderr if as_json else sys.stdout
    if resume_id:
        given = [f"--{k.replace('_', '-')}" for k, v in dict(
            model=model, all=all_models, epochs=epochs, batch_size=batch_size, lr=lr, set=settings,
            limit=limit, skip_done=skip_done).items() if v]
        if given or seeds != 1 or seed != 0:
            raise UsageError("--resume continues a run with its own settings; drop "
                             + (", ".join(given) or "--seed/--seeds"))
        record = _run_one(
            lambda store, progress: runner.resume(zoo, resume_id, store, progress, data_dir), out)
        echo_json(record.to_dict()) if as_json else _print_result(record)
        return
    if all_models == bool(model):
        raise UsageError("give a MODEL or --all (see `zoo list`)")
    names = sorted(zoo.models) if all_models else [model]
    overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    raw = parse_set_options(settings)
    # check every setting before any training starts
    configs = {name: runner.recorded_config(zoo.resolve(name, dataset, overrides, raw), limit)
               for name in names}
    with Store() as store:  # a damaged or unwritable store is reported before training
        store.check()
        done = {(r.model, r.config_id, r.seed): r
                for r in store.runs(dataset=dataset, status="completed")} if skip_done else {}
    data = datasets.load(zoo.dataset(dataset), data_dir, limit)
    jobs = [(name, s) for name in names for s in range(seed, seed + seeds)]
    results, failures = [], []
    for name, s in jobs:
        previous = done.get((name, config_id(configs[name]), s))
        if previous is not None:
            click.echo(f"skipping {name} seed {s}: done as {previous.run_id} (test accuracy "
                       f"{100 * previous.test_accuracy:.2f}%)", file=out)
            results.append(previous)
            continue
        if not as_json:
            click.echo(f"training {name} on {dataset} (seed {s}, {data.split_sizes['train']} "
                       f"training examples) ...", file=out)
        request = runner.RunRequest(name, dataset, s, overrides, raw, data_dir, limit)
        try:
            results.append(_run_one(
                lambda store, progress: runner.execute(zoo, request, store, progress, data=data),
                out))
        except (StoreError, DataError):  # the store or the data: every other run would fail too
            raise
        except Exception as e:
            if len(jobs) == 1:
                raise
            # one model's failure (recorded as failed) does not cost the others' runs
            why = str(e) if isinstance(e, ZooError) else f"{type(e).__name__}: {e}"
            click.echo(f"error: {name} seed {s} failed: {why}", err=True)
            failures.append(f"{name} seed {s}")
            continue
        if not as_json:
            _print_result(results[-1])
    if as_json:
        echo_json([r.to_dict() for r in results] if len(jobs) > 1 else results[0].to_dict())
    if failures:
        raise ZooError(f"{len(failures)} of {len(jobs)} runs failed ({', '.join(failures)}); "
                       "see the errors above and `zoo show RUN_ID`")


def _run_one(job, out):
    """Run one training job with a console progress display; Ctrl-C exits 130."""
    from zoo_core.errors import RunInterrupted
    from zoo_core.store import Store

    progress = ConsoleProgress(out)
    try:
        with Store() as store:
            record = job(store, progress)
    except KeyboardInterrupt as e:
        progress.close()
        if isinstance(e, RunInterrupted):
            click.echo(f"\ninterrupted: run {e.run_id} is recorded as interrupted after "
                       f"{e.epochs} epoch(s), its checkpoints kept; continue it with "
                       f"`zoo run --resume {e.run_id}`", err=True)
        else:
            click.echo("\ninterrupted before training started; nothing recorded", err=True)
        sys.exit(130)
    except Exception:
        progress.close()
        raise
    return record


def _print_result(r) -> None:
    click.echo(
        f"{r.run_id}: test accuracy {100 * r.test_accuracy:.2f}% (loss {r.test_loss:.4f}) "
        f"at best epoch {r.best_epoch} of {r.epochs_run} (validation {100 * r.val_accuracy:.2f}%), "
        f"{r.params:,} parameters, {r.train_seconds:.0f}s training, "
        f"{r.examples_per_sec:,.0f} examples/s")
    click.echo(f"files: {r.run_dir}")


@click.command("show")
@click.argument("run_id")
@json_option
def show(run_id, as_json):
    """Show a run's summary and where its files are (RUN_ID may be a unique prefix)."""
    from zoo_core.runner import run_files
    from zoo_core.store import Store

    with Store() as store:
        r = store.get(run_id)
        epochs = store.epochs(r.run_id)
    files = run_files(r)
    if as_json:
        echo_json({**r.to_dict(), "epochs": epochs, "files": {k: str(v) for k, v in files.items()}})
        return
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    rows = [
        ["status", r.status + (f" ({r.error})" if r.error else "")],
        ["model", f"{r.model} ({r.plugin} {r.plugin_version})"],
        ["dataset", f"{r.dataset} (train {r.split_sizes.get('train')}, val {r.split_sizes.get('val')}, "
                    f"test {r.split_sizes.get('test')})"],
        ["seed", r.seed],
        ["settings", ", ".join(f"{k}={v}" for k, v in sorted(r.config.items()))],
        ["epochs", f"{r.epochs_run} run, best {r.best_epoch or '-'}"],
        ["validation accuracy", pct(r.val_accuracy)],
        ["test accuracy", pct(r.test_accuracy) + ("" if r.test_loss is None else f" (loss {r.test_loss:.4f})")],
        ["parameters", "-" if r.params is None else f"{r.params:,}"],
        ["training time", "-" if r.train_seconds is None else f"{r.train_seconds:.1f}s "
                          f"({r.examples_per_sec:,.0f} examples/s)"],
        ["versions", f"zoo-core {r.zoo_version}, tensorflow {r.tf_version}"],
        ["started / finished", f"{r.started_at} / {r.finished_at or '-'}"],
        ["folder", r.run_dir],
    ]
    click.echo(f"run {r.run_id}")
    click.echo(table(rows, [], "plain"))
    if epochs:
        click.echo("")
        click.echo(table([[e["epoch"], f"{e['train_loss']:.4f}", pct(e["train_accuracy"]),
                           f"{e['val_loss']:.4f}", pct(e["val_accuracy"]), f"{e['seconds']:.1f}s"]
                          for e in epochs],
                         ["epoch", "train loss", "train acc", "val loss", "val acc", "time"]))
    if files:
        click.echo("\nfiles:")
        for name, path in files.items():
            click.echo(f"  {name:<16} {path}")


@click.command("evaluate")
@click.argument("run_id")
@click.option("--split", type=click.Choice(["val", "test", "train"]), default="test", show_default=True,
              help="Which split to evaluate.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="ZOO_DATA_DIR",
              help="Look for the dataset's files here first [env: ZOO_DATA_DIR].")
@json_option
@click.pass_obj
def evaluate(state, run_id, split, data_dir, as_json):
    """Evaluate a run's best checkpoint on a split: loss, accuracy, per-class, confusion.

    Nothing is recorded: the run's reported test accuracy stays the one measured
    when it finished.
    """
    from pathlib import Path

    from zoo_core import datasets, trainer
    from zoo_core.runner import recorded_settings
    from zoo_core.store import Store

    with Store() as store:
        r = store.get(run_id)
    zoo = state.zoo()
    spec = zoo.model(r.model)
    hparams, cfg = recorded_settings(r, spec)
    data = datasets.load(zoo.dataset(r.dataset), data_dir, r.config.get("limit"))
    if data.checksums != r.data_checksums:
        click.echo("warning: the dataset's files differ from the ones this run was trained on",
                   err=True)
    x, y = {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test),
            "train": (data.x_train, data.y_train)}[split]
    m = trainer.evaluate_checkpoint(spec, hparams, cfg, Path(r.run_dir), x, y, data.num_classes)
    if as_json:
        echo_json({"run_id": r.run_id, "split": split, **m.to_dict(data.classes)})
        return
    click.echo(f"run {r.run_id}, {split} split ({m.examples} examples): "
               f"accuracy {100 * m.accuracy:.2f}%, loss {m.loss:.4f}\n")
    click.echo(table([[c, f"{100 * a:.2f}%"] for c, a in zip(data.classes, m.per_class)],
                     ["class", "accuracy"]))
    click.echo("\nconfusion matrix (rows: true class, columns: predicted)")
    click.echo(table([[c, *row] for c, row in zip(data.classes, m.confusion.tolist())],
                     ["", *[str(i) for i in range(len(data.classes))]]))


@click.command("leaderboard")
@click.option("--dataset", "-d", metavar="PATTERN", help="Only these datasets (wildcards allowed).")
@click.option("--model", "-m", metavar="PATTERN", help="Only these models (wildcards allowed).")
@click.option("--runs", "per_run", is_flag=True, help="List every completed run instead of aggregates.")
@click.option("--format", "fmt", default="simple", show_default=True, metavar="FORMAT",
              help=f"Output format: {_LEADERBOARD_FORMATS}.")
@click.option("--commands", is_flag=True,
              help="Add the `zoo run` command that reproduces each row (loads the plugins).")
@click.pass_obj
def leaderboard(state, dataset, model, per_run, fmt, commands):
    """Rank completed runs by test accuracy: mean ± std over seeds per configuration."""
    from zoo_core import leaderboard as lb
    from zoo_core.store import Store

    with Store() as store:
        records = store.runs(model=model, dataset=dataset, status="completed")
    rows = lb.runs_rows(records) if per_run else lb.aggregate(records)
    if commands and rows:
        zoo = state.zoo()
        for row in rows:
            seeds = [row["seed"]] if per_run else row["seeds"]
            row["command"] = lb.reproduce_command(
                row["model"], row["dataset"], row["config"], seeds,
                _defaults(zoo, row["model"], row["dataset"]))
    click.echo(lb.render(rows, fmt, runs=per_run))


def _defaults(zoo, model: str, dataset: str) -> dict | None:
    """What `zoo run MODEL --dataset DATASET` would use today; None when it cannot run."""
    from zoo_core.errors import ZooError

    try:
        return zoo.resolve(model, dataset).config
    except ZooError:
        return None


COMMANDS = [run, show, evaluate, leaderboard]
