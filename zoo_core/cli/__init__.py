"""The ``zoo`` command line.

Each command group lives in its own small module; this one holds the root group,
the shared context and the error handling: library errors become one clear line
with exit code 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import sys

import click

from zoo_core import __version__
from zoo_core.catalogue import open_zoo
from zoo_core.cli.common import message
from zoo_core.errors import UsageError, ZooError


class ZooGroup(click.Group):
    """A group that turns the library's errors into click's."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as e:
            raise click.UsageError(message(e), ctx) from None
        except ZooError as e:
            raise click.ClickException(message(e)) from None


class State:
    """What commands share through ``ctx.obj``: the registry, loaded on first use."""

    def __init__(self, registry: str | None):
        self.registry = registry
        self._zoo = None

    def zoo(self, warn: bool = True):
        if self._zoo is None:
            self._zoo = open_zoo(self.registry)
            if warn:
                for report in self._zoo.plugins.failures:
                    click.echo(
                        f"warning: plugin {report.label} did not load: {report.error} "
                        "(see `zoo plugins`)", err=True,
                    )
        return self._zoo


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option("--registry", type=click.Path(dir_okay=False), envvar="ZOO_REGISTRY",
              help="Use this registry.toml instead of the packaged catalogue [env: ZOO_REGISTRY].")
@click.pass_context
def cli(ctx, registry):
    """zoo: train, compare and publish small image classifiers built as TF1 graphs.

    \b
    Start here:
      zoo list                          the models you can train
      zoo run cnn --dataset fashion     train one, evaluate it, record the run
      zoo leaderboard                   compare recorded runs by test accuracy

    Models come from plugins (`zoo plugins`); datasets are found locally or
    downloaded once (`zoo datasets`). Runs live in $ZOO_HOME.
    """
    ctx.obj = State(registry)


# The commands, one small module per group; imported after `cli` exists (they import
# zoo_core.cli.common, which this package's import is running).
from zoo_core.cli import catalogue, develop, results, runs  # noqa: E402

for _command in catalogue.COMMANDS + runs.COMMANDS + results.COMMANDS + develop.COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="zoo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
