"""``zoo check`` and ``zoo new-plugin``: for people writing plugins.

``zoo check`` imports TensorFlow (it builds and trains the model); ``zoo
new-plugin`` does not.
"""

from __future__ import annotations

import re
import sys
import textwrap
import time
from pathlib import Path

import click

from zoo_core import scaffold
from zoo_core.cli.common import echo_json, json_option, message, parse_set_options, table
from zoo_core.errors import UsageError, ZooError
from zoo_core.settings import MAX_SEED, model_values


class _CheckCommand(click.Command):
    """Lists the checks under the help text, read from the kit itself when asked."""

    def format_epilog(self, ctx, formatter):
        from zoo_core.testing import CHECKS  # the kit imports numpy: only when help is shown

        with formatter.section("Checks"):
            formatter.write_dl([(c.name, c.summary) for c in CHECKS.values()])
        super().format_epilog(ctx, formatter)


def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--shape {text!r}: expected HEIGHTxWIDTHxCHANNELS, e.g. 28x28x1")
    return shape  # type: ignore[return-value]


@click.command("check", cls=_CheckCommand)
@click.argument("model")
@click.option("--skip", multiple=True, metavar="NAME",
              help="Report this check as skipped instead of running it (repeatable); "
                   "weights:DATASET for a declared weights' check.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Check with this hyperparameter value instead of the default (repeatable).")
@click.option("--shape", "shapes", multiple=True, metavar="HxWxC",
              help="An image shape the model accepts (repeatable); default 28x28x1, 20x12x1 "
                   "and 32x32x3.")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True,
              help="The graph seed to build with.")
@json_option
@click.pass_obj
def check(state, model, skip, settings, shapes, seed, as_json):
    """Run the conformance kit on MODEL: does its builder honour the zoo's contract?

    Each check builds the model the way `zoo run` does and reports passed, failed
    (with what was expected and what happened) or skipped. The exit code is 1 if
    any check fails. The same checks run under pytest with
    `@pytest.mark.parametrize("check", zoo_core.testing.checks("MODEL"))`.

    \b
    Examples:
      zoo check mynet
      zoo check mynet --skip overfit_one_batch --json
      zoo check cnn --set filters=8
    """
    from zoo_core import testing  # numpy and the trainer's modules: not for light commands

    spec = state.zoo().model(model)
    overrides = model_values(model, spec.hparams, text=parse_set_options(settings))
    kit_skip = [name for name in skip if not name.startswith(WEIGHTS_CHECK)]
    bound = testing.checks(spec, overrides=overrides, skip=kit_skip,
                           shapes=[_parse_shape(s) for s in shapes] or None, seed=seed)
    live = sys.stderr.isatty() and not as_json
    if not as_json:
        click.echo(f"checking {model} ({spec.plugin or 'unknown plugin'} "
                   f"{spec.plugin_version}) ...", err=True)
    bound[0].subject.prepare()
    start = time.perf_counter()
    results = []
    try:
        for c in bound:
            if live:
                click.echo(f"  {c.name} ...", err=True, nl=False)
            results.append(c.run())
            if live:
                click.echo(f" {results[-1].status}", err=True)
    finally:
        bound[0].subject.close()
    results += _weights_results(state.zoo(), model, skip)
    seconds = time.perf_counter() - start
    failed = [r for r in results if r.status == "failed"]
    if as_json:
        echo_json({"model": model, "plugin": spec.plugin, "plugin_version": spec.plugin_version,
                   "passed": not failed, "seconds": round(seconds, 2),
                   "checks": [{**r.to_dict(), "message": message(r.template),
                               "seconds": round(r.seconds, 2)} for r in results]})
    else:
        click.echo(table(
            [[r.check, r.status, f"{r.seconds:.1f}s",
              textwrap.fill(message(r.template), 72, break_on_hyphens=False)] for r in results],
            ["check", "status", "time", "message"]))
        counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")}
        click.echo(f"\n{counts['passed']} passed, {counts['failed']} failed, "
                   f"{counts['skipped']} skipped in {seconds:.1f}s")
    if failed:
        names = ", ".join(r.check for r in failed)
        raise ZooError(f"{len(failed)} of {len(results)} checks failed for {model}: {names}")


WEIGHTS_CHECK = "weights:"  # the checks of declared weights, one per dataset: weights:fashion


def _weights_results(zoo, model: str, skip) -> list:
    """The model's declared weights, checked (no network): one result per dataset."""
    from zoo_core.serving.weights import check_declared
    from zoo_core.testing import CheckResult

    return [CheckResult(name, model, "skipped", "skipped on request") if name in skip else
            CheckResult(name, model, status, text)
            for name, status, text in check_declared(zoo, model)]


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Create the plugin folder zoo-NAME inside this folder.")
@click.pass_obj
def new_plugin(state, name, parent):
    """Write a working plugin package for a new model NAME, ready to install.

    NAME is the model's name (lower-case letters, digits, '-' or '_'); the
    distribution is zoo-NAME and the package zoo_NAME. The plugin registers a
    small network through the `zoo` entry point, declares its hyperparameters,
    and has a test that runs the conformance kit.

    \b
    Then:
      pip install -e zoo-NAME
      zoo list NAME && zoo check NAME
      zoo run NAME --epochs 1 --limit 5000
    """
    names = scaffold.plugin_names(name)
    zoo = state.zoo(warn=False)
    taken = zoo.models
    if names.model in taken:
        raise UsageError(f"a model named {names.model!r} is already registered by "
                         f"{taken[names.model].plugin}; choose another NAME")
    curated = zoo.catalogue.models.get(names.model)
    if curated is not None:  # its registry plugin owns the name, installed or not
        raise UsageError(f"the name {names.model!r} belongs to {curated.plugin} in "
                         f"{zoo.catalogue.path.name}; choose another NAME")
    folder, files = scaffold.create(names, Path(parent))
    click.echo(f"created {folder} (the plugin {names.dist}, model {names.model!r}):")
    width = max(len(f) for f, _ in files)
    for rel, what in files:
        click.echo(f"  {rel:<{width}}  {what}")
    click.echo("\nnext:")
    for line in _next_steps(names, folder):
        click.echo(f"  {line}")


def _next_steps(names: scaffold.PluginNames, folder: Path) -> list[str]:
    """What to run after the scaffold is written."""
    return [
        f"pip install -e {_shell_path(folder)}",
        f"zoo list {names.model} --details",
        f"zoo check {names.model}",
        f"zoo run {names.model} --epochs 1 --limit 5000",
        f"pytest {_shell_path(folder / 'tests')}",
    ]


def _shell_path(path: Path) -> str:
    text = str(path)
    if re.fullmatch(r"[\w./@:+-]+", text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


COMMANDS = [check, new_plugin]
