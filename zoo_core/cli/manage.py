"""``zoo runs`` (list, ``rm``, ``tag``), ``zoo compare`` and ``zoo completion``: managing the
recorded runs. None of these import TensorFlow.

A RUN_ID is an id, a unique prefix of one, or ``latest`` (the store's ``get`` resolves it).
"""

from __future__ import annotations

import datetime

import click
from click.shell_completion import get_completion_class

from zoo_core.cli.common import echo_json, failing_context, json_option, message, store_location, table
from zoo_core.cli.completion import complete_run_ids
from zoo_core.errors import UsageError, ZooError
from zoo_core.store import liveness, manage
from zoo_core.results import views
from zoo_core.results.compare import compare as compare_runs
from zoo_core.results.leaderboard import format_accuracy, format_count, format_duration, format_rate
from zoo_core.store.records import STATUSES, check_tags
from zoo_core.store import open_store

EMPTY_RUNS = "no runs recorded yet: try `zoo run cnn --dataset fashion`"


class RunsGroup(click.Group):
    """``zoo runs``: lists runs without a subcommand; a library usage error names the
    failing subcommand (``zoo runs tag``), as click does for its own errors."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as e:
            raise click.UsageError(message(e), failing_context(ctx)) from None


def now() -> datetime.datetime:
    """The current time, UTC (docs/samples.py fixes it, so the samples' ages stay put)."""
    return datetime.datetime.now(datetime.timezone.utc)


def age(started_at: str) -> str:
    """How long ago a run started: ``45s``, ``12m``, ``3h``, ``2d``."""
    try:
        seconds = (now() - datetime.datetime.fromisoformat(started_at)).total_seconds()
    except (TypeError, ValueError):
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


@click.group("runs", cls=RunsGroup, invoke_without_command=True)
@click.option("--model", "-m", metavar="PATTERN", help="Only these models (wildcards allowed).")
@click.option("--dataset", "-d", metavar="PATTERN", help="Only these datasets (wildcards allowed).")
@click.option("--status", type=click.Choice(STATUSES),
              help="Only runs with this status (a run whose process died counts as interrupted).")
@click.option("--tag", "-t", help="Only runs with this tag.")
@click.option("--last", "-n", type=click.IntRange(min=1), help="Only the N most recent runs.")
@json_option
@click.pass_context
def runs(ctx, model, dataset, status, tag, last, as_json):
    """List the recorded runs, newest first: status, model, dataset, seed, accuracy, age.

    \b
    Subcommands:
      zoo runs rm RUN_ID...        remove runs: their records and folders
      zoo runs tag RUN_ID TAG...   label a run (--remove to take labels off)
    A RUN_ID may be a unique prefix, or `latest`. A run whose process died without
    recording its end shows as `interrupted (process died)`.
    """
    if ctx.invoked_subcommand is not None:
        return
    with open_store(store_location()) as store:
        shown = views.listed_runs(store, model, dataset, status, tag, last)
    if as_json:
        echo_json(views.runs_json(shown))
        return
    if not shown:
        click.echo(EMPTY_RUNS if not (model or dataset or status or tag) else
                   "no runs match these filters")
        return
    click.echo(table(
        [[r.run_id, s, r.model, r.dataset, r.seed, _accuracy(r), r.epochs_run, age(r.started_at),
          ", ".join(r.tags)] for r, s in shown],
        ["run", "status", "model", "dataset", "seed", "test acc", "epochs", "age", "tags"]))


def _accuracy(record) -> str:
    text = format_accuracy(record.test_accuracy)
    limit = record.config.get("limit")
    return f"{text} (limit {limit})" if text and limit is not None else text


@runs.command("rm")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...",
                shell_complete=complete_run_ids)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Also remove runs recorded as running whose process zoo cannot see (no "
                   "owner recorded, or another host's).")
@click.pass_context
def remove(ctx, run_ids, yes, force):
    """Remove runs: their records in the store and their folders (checkpoints, curves).

    Every run is checked first; if one cannot be removed (it is running), none is.
    """
    with open_store(store_location()) as store:
        records = {}
        for run_id in run_ids:  # every id resolved before anything is removed
            record = store.get(run_id)
            records[record.run_id] = record
        refusals = [line for r in records.values()
                    if (line := manage.removal_refusal(r, force)) is not None]
        for line in refusals:
            click.echo(f"Error: {line}", err=True)
        if refusals:
            ctx.exit(1)
        _confirm_removal(records.values(), yes)
        failed = False
        for r in records.values():
            try:
                folder = manage.remove_run(store, r, force)
            except ZooError as e:
                click.echo(f"Error: {message(e)}", err=True)
                failed = True
                continue
            click.echo(f"removed {r.run_id}" if folder.path else
                       f"removed {r.run_id} (its record only: {folder.note})")
    if failed:
        ctx.exit(1)


def _confirm_removal(records, yes: bool) -> None:
    """List the runs and their folders, say which are forced, and ask (unless ``yes``)."""
    click.echo(f"{len(records)} run(s) to remove, with their folders:")
    for r in records:
        folder = manage.run_folder(r)
        where = (f"{folder.path}" + (f" ({folder.note})" if folder.note else "")
                 if folder.path else f"no files: {folder.note}")
        click.echo(f"  {r.run_id}  {liveness.shown_status(r)}, {r.model} on {r.dataset}  {where}")
    forced = [r for r in records if liveness.owner_unseen(r)]
    for r in forced:
        click.echo(f"--force: {r.run_id} is recorded as running ({liveness.owner_text(r)}) and "
                   "zoo cannot see that process; if it still runs, it will fail at its next epoch")
    if not yes:
        click.confirm("Remove them?", abort=True)


@runs.command("tag")
@click.argument("run_id", shell_complete=complete_run_ids)
@click.argument("tags", nargs=-1, required=True, metavar="TAG...")
@click.option("--remove", is_flag=True, help="Take these tags off instead.")
def tag(run_id, tags, remove):
    """Label a run with tags; `zoo runs --tag TAG` lists the runs with one.

    A tag is a letter or digit followed by letters, digits, '.', '_', ':' or '-'.
    """
    try:
        check_tags(tags)
    except ValueError as e:
        raise UsageError(str(e)) from None
    with open_store(store_location()) as store:
        record = store.get(run_id)
        now = store.tag_run(record.run_id, **({"remove": tags} if remove else {"add": tags}))
    click.echo(f"{record.run_id}: tags {', '.join(now) or '(none)'}")


@click.command("compare")
@click.argument("run_a", shell_complete=complete_run_ids)
@click.argument("run_b", shell_complete=complete_run_ids)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Write the overlaid curves here [default: $ZOO_HOME/compare/A--B.png].")
@json_option
def compare(run_a, run_b, plot_path, as_json):
    """Compare two runs: the settings that differ, metrics side by side, and their learning
    curves overlaid in one PNG."""
    with open_store(store_location()) as store:
        a, b, found = compare_runs(store, run_a, run_b, plot_path)
    if as_json:
        echo_json(found)
        return
    click.echo(f"A  {a.run_id}\nB  {b.run_id}\n")
    if a.model != b.model or a.dataset != b.dataset:
        click.echo(f"model/dataset: A {a.model} on {a.dataset}, B {b.model} on {b.dataset}\n")
    differ = found["settings_that_differ"]
    click.echo(table([[k, _text(va), _text(vb)] for k, (va, vb) in differ.items()],
                     ["setting", "A", "B"]) if differ else "the same settings")
    click.echo("")
    click.echo(table([[k, *map(SHOWN.get(k, str), v)] for k, v in found["metrics"].items()],
                     ["metric", "A", "B"]))
    path = found["curves"]
    click.echo(f"\ncurves: {path}" if path else "\ncurves: no epochs recorded")


def _text(value) -> str:
    return "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


_NUMBER = lambda v: "" if v is None else str(v)  # noqa: E731
SHOWN = {  # how each of zoo compare's metrics is printed (the library gives raw values)
    "test accuracy": format_accuracy, "validation accuracy": format_accuracy,
    "test loss": lambda v: "" if v is None else f"{v:.4f}", "best epoch": _NUMBER,
    "parameters": format_count, "training time": format_duration, "examples/s": format_rate,
}


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx, shell):
    """Print the shell completion script for SHELL (commands, options, models, datasets,
    run ids).

    \b
    Enable it once, e.g. in ~/.bashrc:    eval "$(zoo completion bash)"
    zsh (~/.zshrc):                       eval "$(zoo completion zsh)"
    fish:  zoo completion fish > ~/.config/fish/completions/zoo.fish
    """
    root = ctx.find_root()
    name = root.info_name or "zoo"
    var = f"_{name.replace('-', '_').upper()}_COMPLETE"
    click.echo(get_completion_class(shell)(root.command, {}, name, var).source())


COMMANDS = [runs, compare, completion]
