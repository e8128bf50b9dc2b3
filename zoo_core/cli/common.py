"""Options and output helpers shared by several commands."""

from __future__ import annotations

import json

import click

from zoo_core.errors import ZooError, render

# The settings the library names in its messages, as the command line spells them.
_OPTIONS = {
    "data_dir": "--data-dir", "limit": "--limit", "epochs": "--epochs",
    "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "seeds": "--seeds",
    "registry": "--registry", "dataset": "--dataset", "resume": "zoo run --resume",
}


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


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(rows: list[list], headers: list[str], fmt: str = "simple") -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)
