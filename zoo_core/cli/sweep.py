"""``zoo sweep`` (submit, status, cancel, list) and ``zoo worker``: options in, text out.

Expanding and queuing a sweep is :mod:`zoo_core.runs.sweep`; starting workers is
:mod:`zoo_core.runs.engines` (and :mod:`zoo_core.runs.ray_engine`); a worker's loop is
:mod:`zoo_core.runs.worker`. This module parses options and prints.
"""

from __future__ import annotations

import shlex
import sys

import click

from zoo_core.cli.common import (echo_json, json_option, message, parse_set_options,
                                 store_location, table)
from zoo_core.cli.completion import complete_models
from zoo_core.cli.runs import ConsoleProgress, overrides, run_options
from zoo_core.cli.search import (check_grid_options, echo_search_status, search_options,
                                 search_part, show, trial_words)
from zoo_core.errors import RunInterrupted, UsageError, ZooError
from zoo_core.store import open_store

_ARGV = "zoo.sweep.argv"  # ctx.meta: the arguments `zoo sweep` was given, for its record


class SweepGroup(click.Group):
    """``zoo sweep MODEL... [OPTIONS]`` submits (the hidden ``submit`` command); ``zoo sweep
    status|cancel|list`` are subcommands."""

    def collect_usage_pieces(self, ctx):
        return ["MODEL... [OPTIONS]", "|", "status|show|cancel|list", "[ARGS]..."]

    def parse_args(self, ctx, args):
        ctx.meta[_ARGV] = list(args)
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["submit", *args]
        return super().parse_args(ctx, args)


@click.group("sweep", cls=SweepGroup)
def sweep():
    """Train many models x settings x seeds as trials, on workers that share the store.

    \b
    zoo sweep MODEL... [OPTIONS]   queue the cross product of --set key=v1,v2 values,
                                   models and seeds, and run it on --engine
    zoo sweep MODEL --search tpe --trials N [--space NAME=RANGE ...] [--prune median|asha]
                                   a search: each trial proposed from the results so far
    zoo sweep --resume SWEEP_ID    start workers for a sweep again (a search goes on)
    zoo sweep status SWEEP_ID      progress, each trial's state, failures, a search's best
    zoo sweep show SWEEP_ID        a search's trials (--plot FILE: history, settings)
    zoo sweep cancel SWEEP_ID      cancel queued trials; running ones stop at their next epoch
    zoo sweep list                 the sweeps in the store

    \b
    Options of `zoo sweep MODEL...` (`zoo sweep submit --help` shows them all): those of
    `zoo run` (--all instead of MODEL...), with lists in --set; --engine local:N (default
    local:1) | ray | ray://HOST:PORT | none; --json.

    \b
    Examples:
      zoo sweep cnn --set dropout=0,0.3 --seeds 2 --engine local:2
      zoo sweep cnn rnn --epochs 3 --limit 5000 --engine none   then `zoo worker` anywhere
      zoo sweep cnn --search tpe --trials 20 --prune median --engine local:2
    """


@sweep.command("submit", hidden=True)
@click.argument("models", nargs=-1, shell_complete=complete_models)
@click.option("--all", "all_models", is_flag=True, help="Every installed model.")
@run_options
@search_options
@click.option("--engine", metavar="ENGINE",
              help="local:N (N worker processes here), ray (a running Ray cluster, else a "
                   "local one), ray://HOST:PORT, or none (only queue; start `zoo worker`s). "
                   "[default: local:1; with --resume, the sweep's own]")
@json_option
@click.pass_obj
def submit(state, models, all_models, dataset, epochs, batch_size, lr, precision, seed, seeds,
           settings, data_dir, limit, skip_done, sampler, trials, space, objective, prune,
           resume_id, engine, as_json):
    """Queue the trials of MODEL... (or --all) and run them on ENGINE; with --search, a
    search's trials, proposed one at a time from the results so far."""
    from zoo_core.runs import engines
    from zoo_core.runs.plan import RunRequest

    out = sys.stderr if as_json else sys.stdout
    if resume_id is not None:
        if models or all_models or sampler:
            raise UsageError("--resume continues a recorded sweep as it was submitted: give "
                             "no MODEL, --all or --search with it")
        return _resume(state, resume_id, engine, data_dir, as_json, out)
    check_grid_options(sampler, trials, space, prune)
    chosen = engines.parse_engine(engine or "local:1")
    if all_models == bool(models):
        raise UsageError("give MODEL... or --all (see `zoo list`)")
    if all_models:
        models = sorted(state.zoo().models)
    request = RunRequest(models=list(models), dataset=dataset, seeds=range(seed, seed + seeds),
                         overrides=overrides(epochs, batch_size, lr, precision), limit=limit,
                         skip_done=skip_done)
    argv = click.get_current_context().meta.get(_ARGV, [])
    command = "zoo sweep " + shlex.join(argv)
    with open_store(store_location()) as store:
        if sampler is not None:
            sweep_id = _queue_search(state, store, request, settings, sampler, trials, space,
                                     objective, prune, command, chosen, out)
        else:
            sweep_id = _queue_grid(state, store, request, settings, command, chosen, out)
        if sweep_id is None:
            return
        _go(state, store, chosen, sweep_id, data_dir, as_json, out)


def _queue_grid(state, store, request, settings, command, chosen, out) -> str | None:
    """Plan and queue a grid sweep; its id (None: every trial was done)."""
    from zoo_core.runs.sweep import parse_grid, plan_sweep, submit as queue

    grid = parse_grid(parse_set_options(settings))
    planned = plan_sweep(state.zoo(), request, grid, store)  # every trial checked first
    skipped = f"; {len(planned.done)} skipped as done" if planned.done else ""
    if not planned.trials:
        click.echo(f"nothing to queue: every trial is done{skipped}", file=out)
        return None
    record = queue(store, planned, command, str(chosen))
    click.echo(f"sweep {record.sweep_id}: {len(planned.trials)} trial(s) queued "
               f"(engine {chosen}){skipped}", file=out)
    return record.sweep_id


def _queue_search(state, store, request, settings, sampler, trials, space, objective, prune,
                  command, chosen, out) -> str:
    """Plan and record a search (its workers propose the trials); its id."""
    import dataclasses

    from zoo_core.runs import search

    request = dataclasses.replace(request, text_overrides=parse_set_options(settings))
    planned = search.plan_search(state.zoo(), request, sampler=sampler, trials=trials or 20,
                                 space=space, objective=objective, prune=prune)
    record = search.start(store, request, planned, command, str(chosen))
    ranges = " ".join(f"{k}={v}" for k, v in planned.space.items())
    click.echo(f"search {record.sweep_id}: {planned.trials} trial(s) of {planned.model} "
               f"({sampler}, objective {objective}, pruning {prune or 'off'}; engine "
               f"{chosen})\n  space: {ranges}", file=out)
    return record.sweep_id


def _resume(state, sweep_id, engine, data_dir, as_json, out) -> None:
    """Start workers for a recorded sweep again: its queued, interrupted and (for a search)
    not yet proposed trials are taken; finished and pruned ones are kept."""
    from zoo_core.runs import engines

    with open_store(store_location()) as store:
        record = store.get_sweep(sweep_id)
        if record.status != "active":
            raise UsageError(f"sweep {record.sweep_id} was cancelled: submit it again (with "
                             "--skip-done, for a grid)")
        chosen = engines.parse_engine(engine or record.engine)
        click.echo(f"sweep {record.sweep_id}: resumed (engine {chosen})", file=out)
        _go(state, store, chosen, record.sweep_id, data_dir, as_json, out)


def _go(state, store, chosen, sweep_id, data_dir, as_json, out) -> None:
    """Run a queued sweep on its engine (``none``: say how to start workers), then print
    what it ended with."""
    from zoo_core.runs.sweep import sweep_status

    if chosen.kind == "none":
        click.echo(f"start workers wherever the store is reachable: zoo worker --sweep "
                   f"{sweep_id}", file=out)
        status = None
    else:
        status = _run_engine(state, chosen, store, sweep_id, data_dir, out)
    status = status or sweep_status(store, sweep_id)
    part = search_part(state.zoo(), status, store)
    if as_json:
        echo_json({**status.to_dict(), **({"search": part} if part else {})})
    if chosen.kind != "none":
        _summary(state, status, part, out)


def _run_engine(state, chosen, store, sweep_id: str, data_dir, out):
    """Start the engine's workers and show each trial as it ends; the sweep as it ended."""
    import os

    from zoo_core.runs import engines

    from zoo_core.runs import search

    planned = search.of(store.get_sweep(sweep_id))

    def shown(trial, status):
        shown.count += 1
        total = planned.trials if planned else len(status.trials)
        part = search_part(state.zoo(), status, store) if planned else None
        click.echo(f"[{shown.count}/{total}] {_trial_line(trial, status, part)}", file=out)
    shown.count = 0

    env = dict(os.environ)
    env.update({k: v for k, v in (("ZOO_REGISTRY", state.registry),
                                  ("ZOO_DATA_DIR", data_dir)) if v})
    procs = []
    try:
        if chosen.kind == "ray":
            from zoo_core.runs import ray_engine  # imports ray: only for this engine

            return ray_engine.run_on_ray(chosen, store, store_location(), sweep_id, shown)
        procs = engines.start_local(chosen, sweep_id, store_location(), env)
        status = engines.watch(store, sweep_id, lambda: engines.any_alive(procs), shown,
                               pause=lambda seconds: engines.wait_any(procs, seconds))
    except KeyboardInterrupt:
        engines.stop_local(procs)
        click.echo(f"\ninterrupted: the running trials are recorded as interrupted (or, on "
                   f"Ray, as their workers died); `zoo worker --sweep {sweep_id}` continues the "
                   f"sweep, `zoo sweep cancel {sweep_id}` ends it", err=True)
        sys.exit(130)
    broken = [i + 1 for i, p in enumerate(procs) if p.returncode not in (0, 1)]
    if broken:
        click.echo(f"warning: worker(s) {', '.join(map(str, broken))} stopped abnormally; "
                   f"their output: {engines.logs_dir(sweep_id)}", err=True)
    return status


def _trial_line(trial, status, part=None) -> str:
    from zoo_core.runs.sweep import trial_state

    values = " ".join(f"{k}={v}" for k, v in status.values(trial.run_id).items())
    number = trial_words(trial, status, part)
    what = f"{trial.model} seed {trial.seed}" + (f" {values}" if values else "")
    what = f"{number.split()[0]} {what}" if number else what
    state = trial_state(trial)
    if part is not None and number and len(number.split()) > 1:
        state += f", {' '.join(number.split()[1:])}"
    if trial.status == "completed":
        state += f", test accuracy {100 * trial.test_accuracy:.2f}%"
    elif trial.error:
        state += f": {message(trial.error).splitlines()[0]}"
    return f"{what}: {state} ({trial.run_id})"


def _summary(state, status, part, out) -> None:
    counts = {k: v for k, v in status.counts.items() if v}
    click.echo(f"sweep {status.sweep.sweep_id}: "
               + ", ".join(f"{v} {k}" for k, v in counts.items()), file=out)
    sweep_id = status.sweep.sweep_id
    if part is not None:
        echo_search_status(state.zoo(), status, part, out)
        if len(status.trials) < part["trials"] and status.sweep.status == "active":
            raise ZooError(f"{part['trials'] - len(status.trials)} of {part['trials']} trials "
                           f"were not proposed (the workers stopped): `zoo sweep --resume "
                           f"{sweep_id}` continues the search")
    if status.failures:
        raise ZooError(f"{len(status.failures)} of {len(status.trials)} trials failed; "
                       f"see `zoo sweep status {sweep_id}`")
    if status.finished < len(status.trials):
        raise ZooError(f"{len(status.trials) - status.finished} of {len(status.trials)} trials "
                       f"did not finish (the workers stopped): `zoo worker --sweep {sweep_id}` "
                       "continues them")


@sweep.command("status")
@click.argument("sweep_id")
@json_option
@click.pass_obj
def status_command(state, sweep_id, as_json):
    """Progress of SWEEP_ID: counts, each trial's state and settings, failures; for a
    search, the best trial so far and the `zoo run` that reproduces it."""
    from zoo_core.runs.sweep import sweep_status

    with open_store(store_location()) as store:
        status = sweep_status(store, sweep_id)
        part = search_part(state.zoo(), status, store)
    if as_json:
        echo_json({**status.to_dict(), **({"search": part} if part else {})})
        return
    s = status.sweep
    click.echo(f"sweep {s.sweep_id} ({status.state}), engine {s.engine}, created {s.created_at}")
    click.echo(f"  {s.command}")
    counts = ", ".join(f"{v} {k}" for k, v in status.counts.items() if v)
    click.echo(f"{status.finished}/{status.planned} trials finished: {counts}")
    if part is not None:
        echo_search_status(state.zoo(), status, part)
    click.echo("")
    rows = [[t.run_id, _state(t), t.model, t.seed,
             " ".join(f"{k}={v}" for k, v in status.values(t.run_id).items()),
             "" if t.test_accuracy is None else f"{100 * t.test_accuracy:.2f} %",
             t.epochs_run] for t in status.trials]
    click.echo(table(rows, ["run", "state", "model", "seed", "set", "test acc", "epochs"]))
    pruned = [t for t in status.trials if t.status == "pruned"]
    if pruned:
        click.echo("\npruned:")
        for t in pruned:
            click.echo(f"  {t.run_id}: {t.error}")
    if status.failures:
        click.echo("\nfailures:")
        for run_id, error in status.failures:
            click.echo(f"  {run_id}: {message(error)}")


def _state(trial) -> str:
    from zoo_core.runs.sweep import trial_state

    return trial_state(trial)


sweep.add_command(show)


@sweep.command("cancel")
@click.argument("sweep_id")
def cancel_command(sweep_id):
    """Cancel SWEEP_ID: queued trials end as cancelled at once, running ones at their next
    epoch (recorded as interrupted, error "cancelled ...", their checkpoints kept)."""
    from zoo_core.runs.sweep import cancel

    with open_store(store_location()) as store:
        sweep_record, ended, running = cancel(store, sweep_id)
    click.echo(f"sweep {sweep_record.sweep_id} cancelled: {len(ended)} queued trial(s) "
               f"cancelled, {len(running)} running trial(s) stop at their next epoch")


@sweep.command("list")
@json_option
def list_command(as_json):
    """The sweeps in the store, oldest first, with their progress."""
    from zoo_core.runs.sweep import sweep_status

    with open_store(store_location()) as store:
        statuses = [sweep_status(store, s.sweep_id) for s in store.sweeps()]
    if as_json:
        echo_json([{k: v for k, v in s.to_dict().items() if k != "trials"} for s in statuses])
        return
    rows = [[s.sweep.sweep_id, s.state, s.sweep.engine, s.sweep.created_at,
             f"{s.finished}/{s.planned}", s.counts["failed"]] for s in statuses]
    click.echo(table(rows, ["sweep", "state", "engine", "created", "finished", "failed"]))


class ConsoleWorker(ConsoleProgress):
    """What ``zoo worker`` shows: each trial it takes, its epochs and its result."""

    def claimed(self, record, taken_over):
        how = f"taken over: {taken_over}" if taken_over else "queued"
        resumed = f", from epoch {record.epochs_run + 1}" if taken_over else ""
        click.echo(f"claimed {record.run_id} (sweep {record.sweep_id}, {how}{resumed})",
                   file=self.out)

    def trial_pruned(self, record):
        self.close()
        click.echo(f"{record.run_id}: {record.error}", file=self.out)

    def trial_failed(self, record, error):
        self.close()
        click.echo(f"error: trial {record.run_id} failed: {message(str(error))}", err=True)


@click.command("worker")
@click.option("--sweep", "sweep_id", metavar="SWEEP_ID",
              help="Take only this sweep's trials (default: every sweep's).")
@click.option("--max-trials", type=click.IntRange(min=1), help="Stop after N trials.")
@click.option("--threads", type=click.IntRange(min=0, max=256), default=0, show_default=True,
              help="Threads per op for each trial (this worker's share of the cores; 0: "
                   "TensorFlow's default, all cores).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="ZOO_DATA_DIR",
              help="Look for the dataset's files here first [env: ZOO_DATA_DIR].")
@click.pass_obj
def worker(state, sweep_id, max_trials, threads, data_dir):
    """Take sweep trials from the store and run them until none is left.

    Start as many as you like, wherever the store (--store, ZOO_STORE) and the artifacts
    folder (ZOO_ARTIFACTS) are reachable: each trial is claimed by one worker; a trial
    whose worker died is taken over and continued from its last checkpoint.
    """
    from zoo_core.runs import worker as worker_loop

    progress = ConsoleWorker(sys.stdout, False)
    with open_store(store_location()) as store:
        if sweep_id is not None:
            sweep_id = store.get_sweep(sweep_id).sweep_id
        try:
            result = worker_loop.work(state.zoo(), store, sweep_id=sweep_id,
                                      max_trials=max_trials, threads=threads,
                                      data_dir=data_dir, events=progress)
        except RunInterrupted as e:
            progress.close()
            click.echo(f"\ninterrupted: trial {e.run_id} is recorded as interrupted after "
                       f"{e.epochs} epoch(s); the next worker continues it", err=True)
            sys.exit(130)
    click.echo(f"worker done: {result.trials} trial(s): {len(result.completed)} completed, "
               f"{len(result.failed)} failed, {len(result.cancelled)} cancelled, "
               f"{len(result.pruned)} pruned; nothing left to take")
    if result.failed:
        raise ZooError(f"{len(result.failed)} trial(s) failed: see `zoo sweep status`")


COMMANDS = [sweep, worker]
