"""``zoo list``, ``zoo plugins`` and ``zoo datasets``: what the zoo holds.

None of these import TensorFlow.
"""

from __future__ import annotations

import click

from zoo_core.cli.common import echo_json, json_option, message, table


@click.command("list")
@click.argument("pattern", required=False)
@click.option("--details", is_flag=True, help="Also show each model's hyperparameters.")
@json_option
@click.pass_obj
def list_models(state, pattern, details, as_json):
    """List the models, optionally only those matching PATTERN (e.g. 'l*')."""
    zoo = state.zoo()
    rows = zoo.rows(pattern)
    if as_json:
        echo_json([{**_model_json(r), "reference": _references(zoo, r.name)} for r in rows])
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
        if details:
            for dataset, ref in _references(zoo, r.name).items():
                std = ref.get("test_accuracy_std")
                spread = f" ± {100 * std:.2f}" if std is not None else ""
                click.echo(f"{r.name} on {dataset}: {100 * ref['test_accuracy']:.2f}{spread}% test "
                           f"accuracy ({len(ref.get('seeds', [])) or '?'} runs): {ref['command']}")


def _references(zoo, name: str) -> dict:
    entry = zoo.catalogue.models.get(name)
    return dict(entry.reference) if entry else {}


def _model_json(r) -> dict:
    out = {"name": r.name, "plugin": r.plugin, "status": r.status, "summary": r.summary,
           "datasets": r.datasets}
    if r.hint:
        out["hint"] = r.hint
    if r.spec is not None:
        out["plugin_version"] = r.spec.plugin_version
        out["hparams"] = {k: {"default": p.default, "type": p.type_name, "help": p.help}
                          for k, p in r.spec.hparams.items()}
    return out


@click.command("plugins")
@json_option
@click.pass_obj
def list_plugins(state, as_json):
    """List the installed plugins, what they register and whether they loaded."""
    reports = state.zoo(warn=False).plugins.reports
    if as_json:
        echo_json([{"name": r.name, "distribution": r.dist, "version": r.version,
                    "module": r.module, "status": r.status, "error": r.error,
                    "models": r.models, "datasets": r.datasets} for r in reports])
        return
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


@click.command("datasets")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="ZOO_DATA_DIR",
              help="Look here first [env: ZOO_DATA_DIR].")
@json_option
@click.pass_obj
def list_datasets(state, data_dir, as_json):
    """List the datasets, where their files were found and whether they verified."""
    from zoo_core import data  # numpy: kept out of the light commands (zoo list, --help)

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
        return
    click.echo(table([[d["name"], d["classes"], d["location"], d["verified"], d["summary"]]
                      for d in out], ["dataset", "classes", "location", "verified", "summary"]))
    for d in out:
        for problem in d["problems"]:
            click.echo(f"{d['name']}: {problem}")


COMMANDS = [list_models, list_plugins, list_datasets]
