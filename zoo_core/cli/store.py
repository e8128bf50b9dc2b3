"""``zoo store migrate`` and ``zoo store copy``: the results store itself (its schema, moving
it from a SQLite file to a PostgreSQL server). None of these import TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core.cli.common import store_location
from zoo_core.errors import StoreError
from zoo_core.store import manage
from zoo_core.store.schema import MIGRATIONS
from zoo_core.store import open_store


@click.group("store")
def store_group():
    """The results store: upgrade its schema, or copy it to a PostgreSQL server.

    \b
      zoo store migrate --store postgresql://me@db.lab/zoo
      zoo store copy ~/.local/share/zoo/zoo.db postgresql://me@db.lab/zoo
    """


@store_group.command("migrate")
def migrate():
    """Create or upgrade the schema of the store (--store URL, else $ZOO_STORE, else
    $ZOO_HOME/zoo.db) to this zoo-core's version: every command does this on first use;
    this does it now, e.g. once for a team's server."""
    with open_store(store_location()) as store:
        store.check()
        version = store.version()
        click.echo(f"results store {store.name}: schema version {version} of {len(MIGRATIONS)}, "
                   "up to date")


@store_group.command("copy")
@click.argument("sqlite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("url")
def copy(sqlite_file, url):
    """Copy every run, epoch and tag, and every sweep, of the SQLite store SQLITE_FILE into
    the store at URL (usually postgresql://...), then check each one reads back the same.

    Runs and sweeps the target already holds identically are skipped, so the copy can be run
    again; a target holding any of these ids with other contents is refused.
    """
    if not sqlite_file.is_file():
        raise StoreError(f"no SQLite store at {sqlite_file}: give the path of a zoo.db file "
                         "(the default one is $ZOO_HOME/zoo.db)")
    with open_store(sqlite_file) as source, open_store(url) as target:
        done = manage.copy_runs(source, target)
        total = len(target.runs())
        name = target.name
    click.echo(f"copied {done.runs} run(s) ({done.epochs} epochs, {done.tags} tags) from "
               f"{sqlite_file} to {name}; {done.already} already there, identical")
    if done.sweeps or done.sweeps_already:
        click.echo(f"copied {done.sweeps} sweep(s) (their trials are among the runs); "
                   f"{done.sweeps_already} already there, identical")
    click.echo(f"checked: every run reads back the same; {name} now holds {total} run(s)")


COMMANDS = [store_group]
