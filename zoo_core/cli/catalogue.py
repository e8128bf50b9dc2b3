"""``zoo list``, ``zoo plugins`` and ``zoo datasets``: what the zoo holds.

None of these import TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core.catalogue import cards
from zoo_core.cli.completion import complete_datasets, complete_models
from zoo_core.cli.common import echo_json, json_option, message, table
from zoo_core.errors import DataError, ZooError, setting


@click.command("list")
@click.argument("pattern", required=False, shell_complete=complete_models)
@click.option("--details", is_flag=True,
              help="Also show each model's hyperparameters, and its effective settings on "
                   "--dataset with where each comes from.")
@click.option("--dataset", "-d", default="fashion", show_default=True,
              shell_complete=complete_datasets, help="The dataset whose settings --details shows.")
@json_option
@click.pass_obj
def list_models(state, pattern, details, dataset, as_json):
    """List the models, optionally only those matching PATTERN (e.g. 'l*')."""
    zoo = state.zoo()
    rows = zoo.rows(pattern)
    if as_json:
        echo_json([cards.model_json(zoo, r, dataset if details else None, message)
                   for r in rows])
        return
    if not rows:
        click.echo(f"no model matches {pattern!r}" if pattern else "no models: see `zoo plugins`")
        return
    click.echo(table(
        [[r.name, r.plugin, r.status, r.summary, ", ".join(r.datasets)] for r in rows],
        ["model", "plugin", "status", "summary", "datasets"],
    ))
    for r in rows:
        if r.hint:
            click.echo(f"{r.name}: {r.hint}")
        if details and r.spec is not None and r.spec.hparams:
            click.echo(f"\n{r.name} hyperparameters:")
            click.echo(table([[k, p.default, p.describe(), p.help] for k, p in r.spec.hparams.items()],
                             ["name", "default", "type", "help"]))
        if details and r.spec is not None:
            _print_settings(zoo, r.name, dataset)
            _print_search_space(r.name, r.spec)
        if details:
            for dataset_name, ref in cards.references(zoo, r.name).items():
                std = ref.get("test_accuracy_std")
                spread = f" ± {100 * std:.2f}" if std is not None else ""
                cost = "".join(f", {ref[key]:,} {what}" for key, what in (
                    ("params", "parameters"), ("macs", "MACs per example")) if key in ref)
                click.echo(f"{r.name} on {dataset_name}: {100 * ref['test_accuracy']:.2f}{spread}% test "
                           f"accuracy ({len(ref.get('seeds', [])) or '?'} runs){cost}: {ref['command']}")


def _print_settings(zoo, name: str, dataset: str) -> None:
    """The settings a run of ``name`` on ``dataset`` gets, and where each comes from."""
    try:
        resolved = zoo.resolve(name, dataset)
    except ZooError as e:
        click.echo(f"\n{name} settings on {dataset}: {message(e)}")
        return
    values = resolved.settings.values
    click.echo(f"\n{name} settings on {dataset} (before command-line options):")
    click.echo(table([[k, values[k], resolved.sources[k]] for k in resolved.sources],
                     ["setting", "value", "from"]))


def _print_search_space(name: str, spec) -> None:
    space = cards.search_space(spec)
    if space:
        click.echo(f"\n{name} search space (`zoo sweep {name} --search tpe` without --space):")
        click.echo(table([[k, v["range"], v["from"]] for k, v in space.items()],
                         ["setting", "range", "declared by"]))


@click.command("plugins")
@click.option("--diagnose", is_flag=True,
              help="Also look for plugins that are installed but not listed, and why.")
@json_option
@click.pass_obj
def list_plugins(state, diagnose, as_json):
    """List the installed plugins, what they register and whether they loaded.

    With --diagnose, also find near misses: entry points in a group other than
    `zoo`, distributions that depend on zoo-core but register nothing, hook
    functions misspelled or lacking @hookimpl, plugins that import TensorFlow at
    module level, and a `zoo` or `pip` on PATH from another environment.
    """
    plugin_set = state.zoo(warn=False).plugins
    reports = plugin_set.reports
    findings = None
    if diagnose:
        from zoo_core.catalogue.diagnose import diagnose as find  # starts a Python per plugin

        findings = find(plugin_set)
    if as_json:
        out = [{"name": r.name, "distribution": r.dist, "version": r.version,
                "module": r.module, "status": r.status, "error": r.error,
                "models": r.models, "datasets": r.datasets, "refused": r.refused}
               for r in reports]
        echo_json(out if findings is None else {
            "plugins": out, "findings": [{"subject": f.subject, "message": f.message}
                                         for f in findings]})
        return
    _print_plugins(reports)
    if findings is not None:
        click.echo("\n" + ("\n".join(f"diagnose: {f.message}" for f in findings)
                           if findings else "diagnose: no near misses found"))


def _print_plugins(reports) -> None:
    if not reports:
        click.echo("no plugins loaded (is ZOO_LOAD_PLUGINS set?)")
        return
    click.echo(table(
        [[r.name, r.dist or "-", r.version or "-", r.status,
          ", ".join(r.models + [f"dataset:{d}" for d in r.datasets]) or "-"] for r in reports],
        ["plugin", "distribution", "version", "status", "registers"],
    ))
    for r in reports:
        if r.error:
            click.echo(f"{r.name}: {r.error}")
        for line in r.refused:
            click.echo(f"{r.name}: {line}")


@click.command("datasets")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="ZOO_DATA_DIR",
              help="Look here first [env: ZOO_DATA_DIR].")
@click.option("--samples", "samples_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Instead: write a few real test images (PNG, JPEG, .npy) of --dataset "
                   "into this folder, to try zoo predict on.")
@click.option("--dataset", "-d", "dataset", default="fashion", show_default=True,
              help="The dataset --samples takes its test images from.")
@json_option
@click.pass_obj
def list_datasets(state, data_dir, samples_dir, dataset, as_json):
    """List the datasets, where their files were found and whether they verified (or, with
    --samples DIR, write a few of a dataset's test images there)."""
    from zoo_core import data  # numpy: kept out of the light commands (zoo list, --help)

    if samples_dir is not None:
        return _write_samples(state, data_dir, samples_dir, dataset, as_json)
    out = []
    for name, spec in sorted(state.zoo().datasets.items()):
        where, files = data.inspect(spec, data_dir)
        if spec.load is not None:
            verified = "on load"
        elif not files:
            verified = "-"
        else:
            verified = "yes" if all(f.ok for f in files) else "NO"
        out.append({"name": name, "summary": spec.summary, "classes": len(spec.classes),
                    "location": message(where), "verified": verified,
                    "problems": [message(f.message) for f in files if not f.ok]})
    if as_json:
        echo_json(out)
    else:
        click.echo(table([[d["name"], d["classes"], d["location"], d["verified"], d["summary"]]
                          for d in out], ["dataset", "classes", "location", "verified", "summary"]))
        for d in out:
            for problem in d["problems"]:
                click.echo(f"{d['name']}: {problem}")
    failed = [d["name"] for d in out if d["problems"]]
    if failed:  # exit 1, as zoo run on these files would (a data file is wrong)
        raise DataError(f"{', '.join(failed)}: files found but not usable (listed "
                        f"{'in problems' if as_json else 'above'}); replace or delete the files "
                        f"named, or point {setting('data_dir')} at good copies")


def _write_samples(state, data_dir, folder: Path, dataset: str, as_json: bool) -> None:
    from zoo_core import data
    from zoo_core.data.samples import write_samples

    spec = state.zoo().dataset(dataset)
    loaded = data.load(spec, data_dir)
    written = write_samples(loaded, folder)
    if as_json:
        echo_json([{"file": str(f.path), "test_indices": list(f.indices),
                    "classes": list(f.classes), "what": f.what} for f in written])
        return
    click.echo(f"wrote {len(written)} files of {dataset}'s test images to {folder}:")
    width = max(len(str(f.path)) for f in written)
    for f in written:
        images = (f"test image {f.indices[0]}" if len(f.indices) == 1
                  else f"test images {f.indices[0]}-{f.indices[-1]}")
        click.echo(f"  {str(f.path):<{width}}  {images} ({', '.join(f.classes)}), {f.what}")
    first = written[0].path
    click.echo(f"try: zoo predict {_model_for(state, dataset)} {first} {written[-1].path}")


def _model_for(state, dataset: str) -> str:
    """A model with published weights for ``dataset`` (cnn for Fashion-MNIST), else any."""
    models = state.zoo().models
    return next((name for name in sorted(models) if dataset in models[name].weights), "MODEL")


COMMANDS = [list_models, list_plugins, list_datasets]
