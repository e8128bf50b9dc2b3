"""Options and output helpers shared by several commands."""

from __future__ import annotations

import json
import sys

import click
from tabulate import tabulate

from zoo_core.errors import UsageError, ZooError, render, short_repr
# The run settings with options of their own on `zoo run` (every other one goes via --set)
from zoo_core.results.reproduce import RUN_OPTIONS

# The settings the library names in its messages, as the command line spells them.
_OPTIONS = {
    **RUN_OPTIONS, "data_dir": "--data-dir", "seed": "--seed", "seeds": "--seeds",
    "registry": "--registry", "dataset": "--dataset", "resume": "zoo run --resume",
    "dir": "--dir", "name": "--name", "version": "--version", "force": "--force",
    "engine": "--engine",
}


def store_location() -> str | None:
    """The results store the command line names (``zoo --store URL``, or ``ZOO_STORE``), for
    ``open_store()``; None for the default SQLite file."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("store") if ctx is not None else None


def spell_option(name: str, value: str | None) -> str:
    """A setting as the command line spells it: ``--lr 0.0001``, ``--set clip_norm=1.0``."""
    if name in _OPTIONS:
        return _OPTIONS[name] if value is None else f"{_OPTIONS[name]} {value}"
    return f"--set {name}=" + ("VALUE" if value is None else value)


def message(error: BaseException | str) -> str:
    """An error (or stored error text) as the command line shows it."""
    if isinstance(error, ZooError):
        return render(error.template, spell_option)
    return render(error if isinstance(error, str) else str(error), spell_option)


def failing_context(ctx: click.Context) -> click.Context:
    """The context of the subcommand a group was running when a usage error came up (the
    group's own when none), so the error shows that command's usage and help hint, as
    click does for its own option errors: ``Usage: zoo leaderboard [OPTIONS]``."""
    name = ctx.invoked_subcommand
    command = ctx.command.get_command(ctx, name) if name and isinstance(ctx.command, click.Group) \
        else None
    return ctx if command is None else click.Context(command, info_name=name, parent=ctx)


def data_dir_option(f):
    return click.option("--data-dir", type=click.Path(file_okay=False), envvar="ZOO_DATA_DIR",
                        help="Look for the dataset's files here first [env: ZOO_DATA_DIR].")(f)


def parse_set_options(items) -> dict[str, str]:
    """``--set key=value`` options as a dict (the values stay strings, typed by the merge)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {short_repr(item)}: expected KEY=VALUE, e.g. --set dropout=0.3")
        out[key] = value
    return out


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(rows: list[list], headers: list[str], fmt: str = "simple") -> str:
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


class DownloadProgressBar:
    """A download's progress as a click progress bar on stderr, hidden when stderr is not a
    terminal; implements :class:`zoo_core.data.DownloadProgress` (pass it as ``progress=``)."""

    def __init__(self) -> None:
        self._bar = None

    def start(self, label: str, total: int | None) -> None:
        stderr = sys.stderr  # not click.get_text_stream, deprecated (Click 9.0 removes it)
        # length 0: a size the server did not say (click needs a length or an iterable)
        self._bar = click.progressbar(length=total or 0, label=label, file=stderr,
                                      hidden=not stderr.isatty())
        self._bar.__enter__()

    def advance(self, n: int) -> None:
        self._bar.update(n)

    def finish(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.__exit__(None, None, None)
