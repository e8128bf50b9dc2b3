"""``zoo sweep MODEL --search ...``, ``zoo sweep --resume ID`` and ``zoo sweep show ID``:
the options of a hyperparameter search in, text out.

Planning and running a search is :mod:`zoo_core.runs.search` (Optuna's sampler and pruner
over the store's queue); the workers and engines are a sweep's. This module parses options
and prints.
"""

from __future__ import annotations

import click

from zoo_core.cli.common import echo_json, json_option, message, store_location, table
from zoo_core.errors import UsageError
from zoo_core.store import open_store


def search_options(f):
    """The options ``zoo sweep`` takes for a search (and to resume any sweep)."""
    for option in reversed([
        click.option("--search", "sampler", type=click.Choice(["random", "tpe"]),
                     help="Search instead of a grid: propose each trial from the results so "
                          "far (random, or tpe: Optuna's Tree-structured Parzen Estimator)."),
        click.option("--trials", type=click.IntRange(min=1, max=10_000),
                     help="How many trials the search runs (with --search; default 20)."),
        click.option("--space", multiple=True, metavar="NAME=RANGE",
                     help="A searched setting and its range: log(a,b), float(a,b), int(a,b) "
                          "or choice(a,b,...) (repeatable; default: the ranges the model and "
                          "the trainer declare, see `zoo list MODEL --details`)."),
        click.option("--objective", type=click.Choice(["val_accuracy", "val_loss"]),
                     default="val_accuracy", show_default=True,
                     help="The validation metric the search optimizes (never the test set)."),
        click.option("--prune", type=click.Choice(["median", "asha"]),
                     help="Stop losing trials at an epoch boundary (status pruned): median "
                          "(worse than the completed trials' median at that epoch) or asha "
                          "(successive halving, rungs at epochs 1, 2, 4, ...)."),
        click.option("--resume", "resume_id", metavar="SWEEP_ID",
                     help="Start workers for this sweep again (a search goes on from the "
                          "store: finished and pruned trials are kept, none runs twice)."),
    ]):
        f = option(f)
    return f


def check_grid_options(sampler, trials, space, prune) -> None:
    """A grid sweep given options only a search takes: say so."""
    given = [name for name, value in (("--trials", trials), ("--space", space),
                                      ("--prune", prune)) if value]
    if given and sampler is None:
        raise UsageError(f"{', '.join(given)} belong to a search: add --search random|tpe")


def echo_search_status(zoo, status, search_part: dict, out=None) -> None:
    """The search's lines of ``zoo sweep status``: its settings, progress, the best trial
    and the plain ``zoo run`` that reproduces it."""
    from zoo_core.runs.search import Search

    search = Search.from_spec(search_part)
    space = " ".join(f"{k}={v}" for k, v in search_part["space"].items())
    prune = search.prune or "off"
    click.echo(f"search: {search.sampler}, {len(status.trials)}/{search.trials} trials "
               f"proposed, objective {search.objective}, pruning {prune}, seed {search.seed}",
               file=out)
    click.echo(f"  space: {space}", file=out)
    top = search_part["best"]
    if top is None:
        click.echo("  best trial: none completed yet", file=out)
        return
    params = " ".join(f"{k}={v}" for k, v in top["params"].items())
    click.echo(f"  best trial: #{top['number']} {top['run_id']}, {search.objective} "
               f"{search.format(top['value'])}: {params}", file=out)
    click.echo(f"  reproduce: {top['command']}", file=out)


def search_part(zoo, status, store) -> dict | None:
    """``runs.search.summary`` of a search sweep (None for a grid), its best trial with
    the ``zoo run`` command that trains it again."""
    from zoo_core.results.reproduce import current_defaults, reproduce_command
    from zoo_core.runs import search

    if search.of(status.sweep) is None:
        return None
    part = search.summary(status, store.epochs)
    top = part["best"]
    if top is not None:
        dataset = status.sweep.spec["dataset"]
        defaults = current_defaults(zoo, part["model"], dataset)
        top["command"] = reproduce_command(part["model"], dataset, top["config"],
                                           [top["seed"]], defaults)
    return part


def trial_words(trial, status, part: dict | None) -> str:
    """What a trial line says of a search trial: its number and objective."""
    if part is None:
        return ""
    found = next((v for v in part["values"] if v["run_id"] == trial.run_id), None)
    if found is None:
        return ""
    from zoo_core.runs.search import Search

    value = Search.from_spec(part).format(found["value"])
    return f"#{found['number']}" + (f" {part['objective']} {value}" if value else "")


@click.command("show")
@click.argument("sweep_id")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False),
              help="Draw the search: its optimization history and each searched setting "
                   "against the objective (PNG).")
@json_option
@click.pass_obj
def show(state, sweep_id, plot_file, as_json):
    """A search's trials: each one's settings and objective, the best, pruned ones."""
    from zoo_core.runs.sweep import sweep_status

    with open_store(store_location()) as store:
        status = sweep_status(store, sweep_id)
        part = search_part(state.zoo(), status, store)
    if part is None:
        raise UsageError(f"sweep {status.sweep.sweep_id} is a grid, not a search: see "
                         f"`zoo sweep status {status.sweep.sweep_id}`")
    if plot_file:
        from zoo_core.results.searchplot import search_plot

        drawn = search_plot(part, plot_file, title=f"{part['model']} search "
                                                   f"{status.sweep.sweep_id}")
    if as_json:
        echo_json({"sweep_id": status.sweep.sweep_id, **part,
                   **({"plot": str(drawn)} if plot_file else {})})
        return
    echo_search_status(state.zoo(), status, part)
    from zoo_core.runs.search import Search

    search = Search.from_spec(part)
    names = list(part["space"])
    reasons = {t.run_id: t.error for t in status.trials}
    rows = [[v["number"], v["run_id"], v["state"], search.format(v["value"]),
             *(v["params"].get(n, "") for n in names),
             message(reasons[v["run_id"]] or "") if v["state"] == "pruned" else ""]
            for v in part["values"]]
    click.echo("\n" + table(rows, ["#", "run", "state", part["objective"], *names, "why"]))
    if plot_file:
        click.echo(f"\nplot: {drawn}")
