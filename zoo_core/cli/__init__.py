"""The ``zoo`` command line.

Each command group lives in its own small module; this one holds the root group,
the shared context and the error handling: library errors become one clear line
with exit code 1 (2 for usage errors), and Python's traceback is shown only when asked
for (``zoo --traceback``, ``ZOO_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings

import click

from zoo_core import __version__
from zoo_core.catalogue import open_zoo
from zoo_core.cli.common import failing_context, message
from zoo_core.errors import UsageError, ZooError, first_line

__all__ = ["cli"]  # the `zoo` command: what the console script runs, and a test's CliRunner


class ZooGroup(click.Group):
    """A group that turns the library's errors into click's.

    Python's traceback is shown only with ``zoo --traceback`` (or ``ZOO_DEBUG=1``), before
    the same one-line message; an unexpected exception is one line too, without it.
    """

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_store(args))

    def invoke(self, ctx):
        try:
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
                raise
            except Exception as e:
                if ctx.params.get("traceback"):
                    traceback.print_exception(e, file=sys.stderr)
                raise
        except UsageError as e:
            raise click.UsageError(message(e), failing_context(ctx)) from None
        except ZooError as e:
            raise click.ClickException(message(e)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except Exception as e:
            more = "" if ctx.params.get("traceback") else (
                "; run again with `zoo --traceback ...` (or ZOO_DEBUG=1) to see where")
            raise click.ClickException(f"{type(e).__name__}: {first_line(e)}{more}") from None


def hoist_store(args: list[str]) -> list[str]:
    """``args`` with ``--store URL`` moved to the front, so that the zoo's own option may also
    follow the command (``zoo leaderboard --store URL``), as it reads naturally."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    for i, arg in enumerate(args[:end]):
        if arg.startswith("--store="):
            return [arg, *args[:i], *args[i + 1:]]
        if arg == "--store" and i + 1 < end:
            return [*args[i:i + 2], *args[:i], *args[i + 2:]]
    return args


class State:
    """What commands share through ``ctx.obj``: the registry, loaded on first use."""

    def __init__(self, registry: str | None):
        self.registry = registry
        self._zoo = None

    def zoo(self, warn: bool = True):
        if self._zoo is None:
            self._zoo = open_zoo(self.registry)
            if warn:
                for line in self._zoo.plugins.warnings():
                    click.echo(f"warning: {line} (see `zoo plugins`)", err=True)
        return self._zoo


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
@click.option("--registry", type=click.Path(dir_okay=False), envvar="ZOO_REGISTRY",
              help="Use this registry.toml instead of the packaged catalogue [env: ZOO_REGISTRY].")
@click.option("--store", metavar="URL", envvar="ZOO_STORE",
              help="The results store, for every command (also after it): a "
                   "postgresql://user@host/db URL (needs zoo-core[postgresql]) or a SQLite "
                   "file [default: $ZOO_HOME/zoo.db; env: ZOO_STORE].")
@click.option("--traceback", is_flag=True, envvar="ZOO_DEBUG",
              help="On an error, also print Python's traceback [env: ZOO_DEBUG=1].")
@click.pass_context
def cli(ctx, registry, store, traceback):
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
from zoo_core.cli import (catalogue, develop, manage, packs, results, runs, serving,  # noqa: E402
                          store, sweep, web)

for _command in (catalogue.COMMANDS + runs.COMMANDS + results.COMMANDS + serving.COMMANDS
                 + manage.COMMANDS + develop.COMMANDS + store.COMMANDS + packs.COMMANDS
                 + packs.ALIASES + sweep.COMMANDS + web.COMMANDS):
    cli.add_command(_command)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A Python warning as the zoo prints its own: one line, without the code that warned."""
    return f"warning: {message}\n"


def main() -> None:
    """Console-script entry point."""
    warnings.formatwarning = _format_warning
    try:
        cli(prog_name="zoo")
    except BrokenPipeError:  # the reader went away (`zoo runs | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        sys.exit(1)
    except SystemExit as done:  # click ends every command so
        exit_now(done.code)
        raise


def exit_now(code) -> None:
    """End a command that loaded TensorFlow without the interpreter's teardown: freeing
    TensorFlow's modules takes about a second on 2 cores (issue 31: a sweep's workers paid it
    at its end, a `zoo run` pays it after its result is shown). Everything a normal exit does
    that matters still happens: the atexit handlers run (temporary files go), logging and
    the output are flushed. Returns (the caller exits normally) when TensorFlow is not loaded,
    when Ray is (its shutdown is its own), or while another non-daemon thread still works."""
    import threading

    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and not t.daemon]
    if "tensorflow" not in sys.modules or "ray" in sys.modules or others:
        return
    status = 0 if code is None else code if isinstance(code, int) else 1
    try:
        if not isinstance(code, (int, type(None))):
            print(code, file=sys.stderr)
        import atexit
        import logging

        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - a normal exit then says what went wrong
        return
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
