"""``zoo show``, ``zoo evaluate`` and ``zoo leaderboard``: what the recorded runs say.

``zoo leaderboard`` and ``zoo show`` never import TensorFlow; ``zoo evaluate`` rebuilds
a run's graph from its checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from zoo_core.cli.common import (DownloadProgressBar, data_dir_option, echo_json, json_option,
                                 store_location, table)
from zoo_core.cli.completion import complete_datasets, complete_models, complete_run_ids
from zoo_core.errors import UsageError
from zoo_core.results import evidence, views
from zoo_core.results import leaderboard as lb
from zoo_core.results.reproduce import current_defaults, reproduce_command
from zoo_core.store.liveness import shown_status
from zoo_core.store.records import run_files
from zoo_core.store import open_store

_LEADERBOARD_FORMATS = "any tabulate format (simple, github, grid, ...), csv or json"
EMPTY_LEADERBOARD = "no completed runs yet: try `zoo run cnn --dataset fashion`"


@click.command("show")
@click.argument("run_id", shell_complete=complete_run_ids)
@json_option
def show(run_id, as_json):
    """Show a run's summary and where its files are (RUN_ID may be a unique prefix, or
    `latest`)."""
    with open_store(store_location()) as store:
        r = store.get(run_id)
        epochs = store.epochs(r.run_id)
    from zoo_core.results import plots  # numpy and matplotlib: only here

    plots.draw_missing(r, epochs)  # a signal may have cut in while they were drawn
    if as_json:
        echo_json(views.run_json(r, epochs))
        return
    files = run_files(r)
    card = evidence.of_run(r)
    pct = lambda v: _number(v, "{:.2f}%", 100)  # noqa: E731
    rows = [
        ["status", shown_status(r) + (f" ({r.error})" if r.error else "")],
        ["model", f"{r.model} ({r.plugin} {r.plugin_version})"],
        ["dataset", f"{r.dataset} (train {r.split_sizes.get('train')}, val {r.split_sizes.get('val')}, "
                    f"test {r.split_sizes.get('test')})"],
        ["seed", r.seed],
        ["settings", ", ".join(f"{k}={v}" for k, v in sorted(r.config.items()))],
        ["epochs", f"{r.epochs_run} run, best {r.best_epoch or '-'}"],
        ["validation accuracy", pct(r.val_accuracy)],
        ["test accuracy", pct(r.test_accuracy) + ("" if r.test_loss is None else
                                                  f" (loss {_number(r.test_loss, '{:.4f}')})")],
        ["versions", f"zoo-core {r.zoo_version}, tensorflow {r.tf_version}"],
        ["started / finished", f"{r.started_at} / {r.finished_at or '-'}"],
        ["folder", r.run_dir],
        *([["tags", ", ".join(r.tags)]] if r.tags else []),
        *_imported_from(r),
    ]
    click.echo(f"run {r.run_id}")
    click.echo(table(rows, [], "plain"))
    click.echo("\nmodel card")
    click.echo(table(_card_rows(card), [], "plain"))
    if epochs:
        click.echo("")
        click.echo(table([[e["epoch"], _number(e["train_loss"], "{:.4f}"), pct(e["train_accuracy"]),
                           _number(e["val_loss"], "{:.4f}"), pct(e["val_accuracy"]),
                           _number(e["seconds"], "{:.1f}s")]
                          for e in epochs],
                         ["epoch", "train loss", "train acc", "val loss", "val acc", "time"]))
    if files:
        click.echo("\nfiles:")
        for name, path in files.items():
            click.echo(f"  {name:<16} {path}")


def _imported_from(r) -> list[list[str]]:
    """Where an imported run came from (a row of `zoo show`), or nothing."""
    from zoo_core.serving.packs import provenance

    found = provenance(Path(r.run_dir)) if r.run_dir else {}
    if not found:
        return []
    packed = found.get("packed", {})
    return [["imported from", f"{found.get('from')} (run {found.get('original_run_id')} on "
                              f"{packed.get('host', '?')}, packed {packed.get('at', '?')})"]]


def _card_rows(card: dict[str, Any]) -> list[list[str]]:
    """``zoo show``'s model card: what the model costs and where it was measured (— for
    what the run did not record)."""
    def shown(key: str, fmt: str) -> str:
        return evidence.NONE if card[key] is None else fmt.format(card[key])

    return [[name, value] for name, value in [
        ["parameters", shown("params", "{:,}")],
        ["MACs per example", shown("macs", "{:,}")],
        ["training time", shown("train_seconds", "{:.1f}s")],
        ["examples/s", shown("examples_per_sec", "{:,.0f}")],
        ["precision", card["precision"]],
        ["CPU", shown("cpu", "{}")],
        ["cores", shown("cores", "{}")],
        ["TensorFlow", shown("tensorflow", "{}") + (f" (Python {card['python']})"
                                                   if card["python"] else "")],
        ["git revision", shown("git", "{}")],
        ["command", shown("command", "{}")],
    ]]


def _number(value: float | None, fmt: str, scale: float = 1) -> str:
    """A recorded figure: ``-`` when none was recorded, ``nan`` or ``inf`` as they are."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return fmt.format(scale * value)


@click.command("evaluate")
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("--split", type=click.Choice(["val", "test", "train"]), default="test", show_default=True,
              help="Which split to evaluate.")
@data_dir_option
@json_option
@click.pass_obj
def evaluate(state, run_id, split, data_dir, as_json):
    """Evaluate a run's best checkpoint on a split: loss, accuracy, per-class, confusion.

    Nothing is recorded: the run's reported test accuracy stays the one measured
    when it finished.
    """
    from zoo_core.results.evaluation import evaluate_run  # the graph code: only here

    with open_store(store_location()) as store:
        found = evaluate_run(state.zoo(), store, run_id, split, data_dir,
                             progress=DownloadProgressBar())
    if not found.same_data:
        click.echo("warning: the dataset's files differ from the ones this run was trained on",
                   err=True)
    if as_json:
        echo_json(found.to_dict())
        return
    m, classes = found.metrics, found.classes
    click.echo(f"run {found.record.run_id}, {split} split ({m.examples} examples): "
               f"accuracy {100 * m.accuracy:.2f}%, loss {m.loss:.4f}\n")
    click.echo(table([[c, f"{100 * a:.2f}%"] for c, a in zip(classes, m.per_class)],
                     ["class", "accuracy"]))
    click.echo("\nconfusion matrix (rows: true class, columns: predicted)")
    click.echo(table([[c, *row] for c, row in zip(classes, m.confusion.tolist())],
                     ["", *[str(i) for i in range(len(classes))]]))


@click.command("leaderboard")
@click.option("--dataset", "-d", metavar="PATTERN", shell_complete=complete_datasets,
              help="Only these datasets (wildcards allowed).")
@click.option("--model", "-m", metavar="PATTERN", shell_complete=complete_models,
              help="Only these models (wildcards allowed).")
@click.option("--runs", "per_run", is_flag=True, help="List every completed run instead of aggregates.")
@click.option("--include-partial", is_flag=True,
              help="Also rank quick tries made with --limit (marked limit=N).")
@click.option("--format", "fmt", default=None, metavar="FORMAT",
              help=f"Output format: {_LEADERBOARD_FORMATS}  [default: simple].")
@json_option
@click.option("--commands", is_flag=True,
              help="Add the `zoo run` command that reproduces each row (loads the plugins).")
@click.option("--details", is_flag=True,
              help="Add the runs' evidence: MACs per example, CPU, cores, TensorFlow, git revision.")
@click.option("--plot", "plot_path", metavar="FILE.png", type=click.Path(dir_okay=False),
              help="Also draw test accuracy against training time and parameters (the Pareto "
                   "front) into this PNG.")
@click.pass_obj
def leaderboard(state, dataset, model, per_run, include_partial, fmt, as_json, commands,
                details, plot_path):
    """Rank completed runs by test accuracy: mean ± std over seeds per configuration.

    Each seed counts once per configuration (the latest run, when one was repeated);
    runs made with --limit are left out unless --include-partial.
    """
    if as_json and fmt not in (None, "json"):
        raise UsageError(f"--json and --format {fmt} disagree: give one of them")
    fmt = "json" if as_json else fmt or "simple"
    records = []
    with open_store(store_location()) as store:
        if per_run or details or plot_path:  # what needs every run, not the ranked rows
            records = store.runs(model=model, dataset=dataset, status="completed")
            partial = 0 if include_partial else sum(lb.is_partial(r) for r in records)
            rows = lb.runs_rows(records, include_partial, details) if per_run else \
                lb.aggregate(records, include_partial, details)
        else:
            rows, partial = store.leaderboard(include_partial, model=model, dataset=dataset)
    if commands and rows:
        zoo = state.zoo()
        for row in rows:
            seeds = [row["seed"]] if per_run else row["seeds"]
            row["command"] = reproduce_command(
                row["model"], row["dataset"], row["config"], seeds,
                current_defaults(zoo, row["model"], row["dataset"]))
    empty = EMPTY_LEADERBOARD if not partial else (
        f"no completed runs on the full training set; {partial} quick tries made with --limit "
        "are left out: `zoo leaderboard --include-partial` shows them")
    click.echo(lb.render(rows, fmt, runs=per_run, empty=empty))
    if plot_path:
        _plot(records, include_partial, plot_path)


def _plot(records, include_partial: bool, path: str) -> None:
    """The cost/accuracy view of the aggregated rows, whatever the table showed."""
    from zoo_core.results import costplot  # matplotlib: only here

    shown = costplot.draw(lb.aggregate(records, include_partial), path)
    click.echo(f"cost/accuracy plot: {path} ({len(shown)} point(s))", err=True)


COMMANDS = [show, evaluate, leaderboard]
