"""Sweeps: many models x settings x seeds, queued in the store as trials that workers run.

A sweep is a plan executed elsewhere (docs/scale.md). :func:`plan_sweep` expands a
:class:`~zoo_core.runs.plan.RunRequest` and ``--set key=v1,v2`` lists (crossed with each
other, the models and the seeds) into trials and checks every trial's settings through :func:`zoo_core.runs.plan.plan`
before anything is queued; :func:`submit` records the sweep and queues its trials in one
write. Each trial is an ordinary run (status "queued", then whatever a run goes through),
planned again by the worker that claims it (:func:`trial_plan`) from the sweep's ``spec``.
:func:`sweep_status` and :func:`cancel` read and stop a sweep. Nothing here imports
TensorFlow or click.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Mapping, Sequence

from zoo_core import __version__
from zoo_core.catalogue import Zoo
from zoo_core.catalogue.specs import DatasetSpec
from zoo_core.errors import UsageError, ZooError, first_line, short_repr
from zoo_core.store import liveness
from zoo_core.runs.plan import PlannedRun, RunRequest, plan
from zoo_core.store.records import FINAL_STATUSES, RunRecord, SweepRecord, new_run_id, new_sweep_id
from zoo_core.store import Store

CANCELLED = "cancelled"  # how a cancelled trial (status interrupted) is shown, and its error's start
STATES = ("queued", "running", liveness.DIED, "completed", "pruned", CANCELLED, "interrupted",
          "failed")


@dataclass(frozen=True)
class Trial:
    """One trial of a sweep: a planned run and the ``--set`` values that made it."""

    run: PlannedRun
    values: Mapping[str, str]


@dataclass(frozen=True)
class SweepPlan:
    """The trials a sweep request asks for, in order, and those the store has done."""

    dataset: DatasetSpec
    limit: int | None
    overrides: Mapping[str, Any]
    trials: tuple[Trial, ...]
    done: tuple[PlannedRun, ...] = ()


def parse_grid(settings: Mapping[str, str]) -> dict[str, list[str]]:
    """``--set key=v1,v2`` values (already split at ``=``) as lists, each value once."""
    grid = {}
    for key, text in settings.items():
        values = list(dict.fromkeys(v.strip() for v in text.split(",")))
        if any(not v for v in values):
            raise UsageError(f"--set {key}={short_repr(text)}: an empty value in the list; "
                             "give values separated by commas, e.g. --set dropout=0,0.3")
        grid[key] = values
    return grid


def combinations(grid: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values (the cross product), first key slowest."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def plan_sweep(zoo: Zoo, request: RunRequest, grid: Mapping[str, Sequence[str]],
               store: Store | None = None) -> SweepPlan:
    """Every trial of ``request`` crossed with ``grid`` (``--set key=v1,v2`` lists, added to
    the request's ``text_overrides``), each one's settings merged and checked (nothing is
    queued when one is wrong); with ``skip_done``, those the store has completed left out.
    Two combinations that give one run's settings (the same config id) are one trial.

    Raises:
        ZooError: an unknown model or dataset, a bad value (naming the setting), the store.
    """
    trials, done, seen = [], [], set()
    dataset = None
    for combination in combinations(grid):
        values = {**request.text_overrides, **combination}
        batch = plan(zoo, dataclasses.replace(request, text_overrides=values), store)
        dataset = batch.dataset
        for run in batch.runs:
            key = (run.model.name, run.settings.config_id, run.seed)
            if key in seen:
                continue
            seen.add(key)
            if run.done is not None:
                done.append(run)
            else:
                trials.append(Trial(run, values))
    return SweepPlan(dataset, request.limit, dict(request.overrides), tuple(trials), tuple(done))


def submit(store: Store, sweep_plan: SweepPlan, command: str, engine: str) -> SweepRecord:
    """Record the sweep and queue its trials, in one write; the sweep's record."""
    records, specs = [], []
    for trial in sweep_plan.trials:
        run = trial.run
        records.append(trial_record(run))
        specs.append({"run_id": records[-1].run_id, "model": run.model.name, "seed": run.seed,
                      "overrides": dict(sweep_plan.overrides), "set": dict(trial.values)})
    sweep = SweepRecord(sweep_id=new_sweep_id(), command=command, engine=engine, spec={
        "dataset": sweep_plan.dataset.name, "limit": sweep_plan.limit, "trials": specs})
    store.create_sweep(sweep, records)
    return sweep


def trial_record(run: PlannedRun) -> RunRecord:
    """A new trial's record, as it is queued (a new run id, no data yet)."""
    return RunRecord(
        run_id=new_run_id(run.model.name, run.dataset.name, run.seed), status="queued",
        model=run.model.name, dataset=run.dataset.name, plugin=run.model.plugin,
        plugin_version=run.model.plugin_version, zoo_version=__version__,
        tf_version=_installed("tensorflow"), config=run.settings.config, seed=run.seed,
        data_checksums={}, split_sizes={})


def _installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def trial_plan(zoo: Zoo, sweep: SweepRecord, record: RunRecord) -> PlannedRun:
    """The planned run of one trial, planned again on this machine from the sweep's spec.

    Raises:
        ZooError: the run is not one of the sweep's trials, or its settings come out other
            than when it was queued (this machine's plugins or registry.toml differ).
    """
    trial = sweep.trial(record.run_id)
    if trial is None:
        raise ZooError(f"run {record.run_id} is not a trial of sweep {sweep.sweep_id}")
    spec = sweep.spec
    resolved = zoo.resolve(trial["model"], spec["dataset"], trial["overrides"], trial["set"],
                           spec["limit"])
    if resolved.settings.config_id != record.config_id:
        raise ZooError(
            f"trial {record.run_id}'s settings come out differently here (config "
            f"{resolved.settings.config_id}, queued as {record.config_id}): this machine's "
            "plugins or registry.toml differ from the one that queued it; install the same "
            "versions on every worker")
    return PlannedRun(resolved.model, resolved.dataset, record.seed, resolved.settings)


def trial_state(record: RunRecord) -> str:
    """A trial's state as ``zoo sweep status`` shows it: its shown status, or "cancelled"."""
    if record.status == "interrupted" and (record.error or "").startswith(CANCELLED):
        return CANCELLED
    return liveness.shown_status(record)


@dataclass(frozen=True)
class SweepStatus:
    """A sweep and its trials as the store has them now."""

    sweep: SweepRecord
    trials: tuple[RunRecord, ...]

    @property
    def state(self) -> str:
        """The sweep's state as shown: "cancelled", "finished" (every trial in a final
        status, and a search's every trial proposed) or "active"."""
        if self.sweep.status == "cancelled":
            return CANCELLED
        return "finished" if self.finished == self.planned else "active"

    @property
    def planned(self) -> int:
        """How many trials the sweep runs: its trials, or a search's ``--trials`` (its
        workers propose them one at a time)."""
        return max(len(self.trials), self.sweep.spec.get("search", {}).get("trials", 0))

    @property
    def counts(self) -> dict[str, int]:
        states = [trial_state(t) for t in self.trials]
        return {state: states.count(state) for state in STATES}

    @property
    def finished(self) -> int:
        """Trials in a final status (completed, interrupted, failed, cancelled)."""
        return sum(t.status in FINAL_STATUSES for t in self.trials)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(run id, the first line of its error) of every failed trial."""
        return [(t.run_id, first_line(Exception(t.error or "failed")))
                for t in self.trials if t.status == "failed"]

    def values(self, run_id: str) -> Mapping[str, str]:
        """The ``--set`` values of one trial."""
        return (self.sweep.trial(run_id) or {}).get("set", {})

    def to_dict(self) -> dict[str, Any]:
        sweep = {k: v for k, v in self.sweep.to_dict().items() if k != "spec"}
        return {"sweep": sweep, "state": self.state, "total": len(self.trials),
                "planned": self.planned,
                "finished": self.finished,
                "counts": self.counts,
                "trials": [{**liveness.as_shown(t), "state": trial_state(t),
                            "set": self.values(t.run_id)} for t in self.trials],
                "failures": [{"run_id": i, "error": e} for i, e in self.failures]}


def sweep_status(store: Store, sweep_id: str) -> SweepStatus:
    """The sweep (an id or a unique prefix) and its trials, in the order they were queued."""
    sweep = store.get_sweep(sweep_id)
    return SweepStatus(sweep, tuple(store.runs(sweep_id=sweep.sweep_id)))


def cancel(store: Store, sweep_id: str) -> tuple[SweepRecord, list[str], list[str]]:
    """Cancel a sweep: its queued trials end as interrupted ("cancelled ..."), and its running
    trials stop at their next epoch (their workers watch the sweep), recorded so too.

    Returns:
        the sweep, the ids of the queued trials cancelled, and of the trials still running.
    """
    sweep = store.get_sweep(sweep_id)
    ended = store.cancel_sweep(sweep.sweep_id, f"{CANCELLED} with sweep {sweep.sweep_id} "
                                               "before it started")
    running = [t.run_id for t in liveness.live_runs(store, sweep.sweep_id)]
    return store.get_sweep(sweep.sweep_id), ended, running
