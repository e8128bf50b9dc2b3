"""``zoo pack``, ``zoo unpack`` (also ``zoo import``) and ``zoo pull``: trained models as
files. They move files; only ``zoo pack`` imports TensorFlow, to leave the optimizer's state
out of the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from zoo_core.cli.common import DownloadProgressBar, store_location
from zoo_core.cli.completion import complete_datasets, complete_models, complete_run_ids
from zoo_core.store import open_store
from zoo_core.serving import imports, packs


@click.command("pack")
@click.argument("run_id", shell_complete=complete_run_ids)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), required=True,
              help=f"The pack file to write (e.g. cnn-fashion{packs.EXTENSION}).")
@click.option("--optimizer-state", is_flag=True,
              help="Keep the optimizer's state in the checkpoint (about 3x larger with Adam); "
                   "by default a pack holds the model's weights only.")
def pack(run_id, output, optimizer_state):
    """Write a completed run into one file: its best checkpoint, settings, metrics, curves,
    data checksums, versions and a sha256 manifest of every member.

    RUN_ID is a run id, a unique prefix, or `latest`. `zoo unpack FILE` imports it anywhere;
    the lines printed after it declare the pack as a model's published weights.
    """
    with open_store(store_location()) as store:
        done = packs.pack(store, run_id, Path(output), optimizer_state=optimizer_state)
    r = done.record
    click.echo(f"packed run {r.run_id} ({r.model} on {r.dataset}, test accuracy "
               f"{100 * r.test_accuracy:.2f}%) into {done.path}: {_size(done.size)}, "
               f"{done.members} members")
    kept = "with" if optimizer_state else "without"
    click.echo(f"checkpoint {kept} the optimizer's state: {_size(done.checkpoint_bytes)} "
               f"(the run's own: {_size(done.full_checkpoint_bytes)})")
    click.echo(f"sha256 {done.sha256}\n")
    click.echo("To publish it as the model's weights (shipped in the plugin's package, or "
               "uploaded), declare it in registry.toml:\n")
    for line in declaration_lines(done):
        click.echo(line)


def declaration_lines(done: packs.Packed) -> list[str]:
    """The TOML table and the ``register(weights=...)`` argument that declare the pack."""
    r = done.record
    inside = _inside_package(done.path.absolute())
    facts = {"sha256": done.sha256, "size": done.size, "config_id": r.config_id,
             "test_accuracy": round(r.test_accuracy, 6)}
    url = f"https://example.org/{done.path.name}"
    toml = [f"[models.{r.model}.weights.{r.dataset}]"]
    if inside:
        toml.append(f"file = {json.dumps(inside)}  # shipped in the plugin's package")
    toml.append(f'urls = ["{url}"]  # where you publish it')
    toml += [f"{key} = {json.dumps(value)}" for key, value in facts.items()]
    entry = ({"file": inside} if inside else {}) | {"urls": [url]} | facts
    python = (f"register({json.dumps(r.model)}, build, ..., weights={{{json.dumps(r.dataset)}: "
              f"{json.dumps(entry, indent=4)}}})")
    return [*toml, "", "or in the plugin's registration:", "", *python.splitlines()]


def _inside_package(path: Path) -> str:
    """The pack's path inside the Python package that holds it ("" when none does, within
    three folders up): what a declaration's ``file`` says."""
    for folder in list(path.parents)[:3]:
        if (folder / "__init__.py").is_file():
            while (folder.parent / "__init__.py").is_file():  # the top package
                folder = folder.parent
            return path.relative_to(folder).as_posix()
    return ""


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB ({n:,} bytes)" if n >= 1 << 20 else f"{n:,} bytes"


@click.command("unpack")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--sha256", "expected", metavar="HEX",
              help="Refuse the file unless its sha256 is this (as `zoo pack` printed it).")
@click.pass_obj
def unpack(state, file, expected):
    """Import a pack (from `zoo pack`) into the results store as a completed run, tagged
    `imported`: `zoo leaderboard` marks it, `zoo evaluate` and `zoo show` take it.

    Every member is checked against the pack's manifest first; importing the same pack
    again does nothing. `zoo import` is the same command.
    """
    path = Path(file)
    if expected and path.is_file() and packs.file_sha256(path) != expected.lower():
        raise packs.PackError(f"{path}: its sha256 is {packs.file_sha256(path)}, not {expected}: "
                              "refused")
    from zoo_core.serving import imported

    with open_store(store_location()) as store:
        done = imports.unpack(store, path)
        where = store.name
        note = imported.complete(state.zoo(), store, done.record)
    if note:
        click.echo(f"warning: {note}", err=True)
    r = done.record
    if done.already:
        click.echo(f"run {r.run_id} is already in the results store {where} ({done.note}); "
                   "nothing to do")
        return
    click.echo(f"imported run {r.run_id} ({r.model} on {r.dataset}, test accuracy "
               f"{100 * r.test_accuracy:.2f}%) from {path.name} into {where}")


@click.command("pull")
@click.argument("model", shell_complete=complete_models)
@click.option("--dataset", "-d", default="fashion", show_default=True,
              shell_complete=complete_datasets, help="The dataset the weights were trained on.")
@click.option("--timeout", type=click.FloatRange(min=1), default=900.0,  # DEFAULT_TIMEOUT
              show_default=True, metavar="SECONDS",
              help="The most a download may take, whatever the server does.")
@click.pass_obj
def pull(state, model, dataset, timeout):
    """Get MODEL's published trained weights (declared in registry.toml or by its plugin)
    into the results store, as an imported run.

    A pack shipped inside the plugin's package is used first, offline; otherwise it is
    downloaded (resuming a cut transfer) from each declared URL in turn, at most 2 GiB (or
    the declared size) and --timeout seconds in all. Nothing is imported unless its sha256
    is the declared one.
    """
    from zoo_core.serving import weights  # the downloads, and numpy with them: here only

    zoo = state.zoo()
    with open_store(store_location()) as store:
        done = weights.pull(zoo, store, model, dataset, progress=DownloadProgressBar(),
                            timeout=timeout)
    if done.note:
        click.echo(f"warning: {done.note}", err=True)
    r = done.record
    if done.already:
        click.echo(f"{model} weights for {dataset} are already pulled: run {r.run_id} "
                   f"(test accuracy {100 * r.test_accuracy:.2f}%)")
        return
    click.echo(f"pulled {model} weights for {dataset} from {done.source}: run {r.run_id} "
               f"(test accuracy {100 * r.test_accuracy:.2f}%)")


COMMANDS = [pack, unpack, pull]


def _alias(command: click.Command, name: str) -> click.Command:
    """``command`` under another name, with the same callback and options."""
    return click.Command(name, callback=command.callback, params=command.params,
                         help=f"The same as `zoo {command.name}`.")


ALIASES = [_alias(unpack, "import")]
