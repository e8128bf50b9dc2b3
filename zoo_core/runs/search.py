"""Hyperparameter search: ``zoo sweep MODEL --search random|tpe --trials N [--space ...]``.

A search is a sweep (:mod:`zoo_core.runs.sweep`) whose trials are proposed one at a time
from the results so far, and whose losing trials are stopped early. Optuna's sampler and
pruner decide, through its ask-and-tell interface; the store stays the source of truth and
the work queue, and Optuna never owns a worker (docs/search.md):

- :func:`start` records the sweep and its search (``spec["search"]``: sampler, trials,
  space, objective, pruner, seed, the model and its fixed settings), with no trial yet;
- a worker that finds nothing queued (:func:`zoo_core.runs.worker.work`) calls
  :func:`propose`: an in-memory Optuna study rebuilt from the sweep's trials in the store
  (:func:`study`) is asked for trial number k, which ``Store.add_trial`` queues only while
  the sweep has exactly k trials, so trial k is always proposed from the k before it and a
  search never grows past N, however many workers propose at once;
- after each epoch (its metrics stored), the trial's own worker calls :func:`prune_reason`:
  the study rebuilt with that epoch, the pruner decides, and a trial it stops ends at that
  epoch boundary as "pruned", with the reason.

The worker asks the pruner, not a coordinator: the decision is taken where and when the
epoch's value is known, so a losing trial trains no epoch more while a coordinator polls,
and pruning works alike on every engine, with or without a ``zoo sweep`` process alive.
Nothing is kept outside the store, so a search whose processes all died continues from it
(``zoo sweep --resume ID``). Optuna (``zoo-core[search]``) is imported only when a search
runs; TensorFlow never.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from zoo_core.catalogue import Zoo
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.errors import UsageError, ZooError, short_repr
from zoo_core.runs.plan import PlannedRun, RunRequest
from zoo_core.store.records import RunRecord, SweepRecord, new_sweep_id
from zoo_core.store import Store
from zoo_core.runs.sweep import CANCELLED, SweepStatus, trial_record
from zoo_core.searchspace import FORMS, Dim, parse_dim
from zoo_core.settings import TRAINER_HPARAMS, HParam

SAMPLERS = ("random", "tpe")
PRUNERS = ("median", "asha")
OBJECTIVES = {"val_accuracy": "maximize", "val_loss": "minimize"}  # validation only, never test
MEDIAN_STARTUP = 2  # median: trials that complete before any is pruned
ASHA_REDUCTION = 2  # asha: rungs at epochs 1, 2, 4, ...; the best 1/2 of a rung go on
TRIES = 20  # asks for settings that are new and valid before a search gives up on a trial
ADD_TRIES = 10  # proposals of one trial number before another process must have the search


@dataclass(frozen=True)
class Search:
    """A search as its sweep records it (``SweepRecord.spec["search"]``)."""

    sampler: str
    trials: int
    space: dict[str, Dim]
    model: str
    objective: str = "val_accuracy"
    prune: str | None = None
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)  # typed: --epochs, --lr ...
    fixed: dict[str, str] = field(default_factory=dict)  # the --set values of every trial
    integer: tuple[str, ...] = ()  # settings with whole-number values (for log(a,b))

    @property
    def maximize(self) -> bool:
        return OBJECTIVES[self.objective] == "maximize"

    def to_spec(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "trials": self.trials, "model": self.model,
                "space": {k: str(d) for k, d in self.space.items()},
                "objective": self.objective, "prune": self.prune, "seed": self.seed,
                "overrides": dict(self.overrides), "set": dict(self.fixed),
                "integer": list(self.integer)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Search:
        return cls(spec["sampler"], spec["trials"],
                   {k: parse_dim(v) for k, v in spec["space"].items()}, spec["model"],
                   spec["objective"], spec["prune"], spec["seed"], dict(spec["overrides"]),
                   dict(spec["set"]), tuple(spec.get("integer", ())))

    def format(self, value: float | None) -> str:
        """An objective value as shown: accuracy in %, loss as it is."""
        if value is None:
            return ""
        return f"{100 * value:.2f}%" if self.objective.endswith("accuracy") else f"{value:.4f}"


def of(sweep: SweepRecord) -> Search | None:
    """The sweep's search, or None for a grid sweep."""
    found = sweep.spec.get("search")
    return Search.from_spec(found) if found else None


# -- planning ----------------------------------------------------------------------------------

def parse_space(texts: Sequence[str]) -> dict[str, Dim]:
    """``--space NAME=RANGE`` options as ranges, in order.

    Raises:
        UsageError: naming the option, the setting and the accepted forms.
    """
    space: dict[str, Dim] = {}
    for text in texts:
        name, sep, form = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--space {short_repr(text)}: give NAME=RANGE, e.g. --space "
                             f"'lr=log(1e-4,1e-2)'; RANGE is {FORMS}")
        if name in space:
            raise UsageError(f"--space {name} is given twice: give each setting once")
        try:
            space[name] = parse_dim(form)
        except ValueError as e:
            raise UsageError(f"--space {name}: {e}") from None
    return space


def declared_space(model: ModelSpec) -> dict[str, Dim]:
    """The ranges declared with ``HParam(search=...)``: the model's, then the trainer's."""
    space = {}
    for name, hparam in {**model.hparams, **TRAINER_HPARAMS}.items():
        if hparam.search:
            try:
                space[name] = parse_dim(hparam.search)
            except ValueError as e:
                raise UsageError(f"{model.name} ({model.plugin}) declares a search range for "
                                 f"{name} that cannot be used: {e}; give --space "
                                 f"{name}=RANGE instead") from None
    return space


def plan_search(zoo: Zoo, request: RunRequest, *, sampler: str, trials: int,
                space: Sequence[str] = (), objective: str = "val_accuracy",
                prune: str | None = None) -> Search:
    """The search a ``zoo sweep --search`` asks for, every part checked (nothing is queued
    when one is wrong): one model, one seed, the ranges (``--space``, else the declared
    ones less the settings the command line fixes) within each setting's bounds.

    Raises:
        UsageError: naming the option at fault and what it accepts.
        ZooError: an unknown model or dataset, or a fixed setting that is wrong.
    """
    if len(request.models) != 1:
        raise UsageError("a search tunes one model: give one MODEL (run one search per model)")
    if len(request.seeds) != 1:
        raise UsageError("a search trains each trial with one seed (--seed); leave out "
                         "--seeds, then run the best trial's command with --seeds N")
    _choose("--search", sampler, SAMPLERS)
    _choose("--objective", objective, tuple(OBJECTIVES))
    if prune is not None:
        _choose("--prune", prune, PRUNERS)
    model = zoo.model(request.models[0])
    fixed = dict(request.text_overrides)
    typed = {k: v for k, v in request.overrides.items() if v is not None}
    ranges = parse_space(space) if space else {
        k: d for k, d in declared_space(model).items() if k not in fixed and k not in typed}
    if not ranges:
        raise UsageError(f"{model.name} declares no search ranges (see `zoo list {model.name} "
                         f"--details`): give --space NAME=RANGE ({FORMS})")
    declared = {**TRAINER_HPARAMS, **model.hparams}
    for name, dim in ranges.items():
        _check_range(model, declared.get(name), name, dim, fixed, typed)
    zoo.resolve(model.name, request.dataset, typed, fixed, request.limit)  # the fixed part
    integer = tuple(k for k in ranges if declared[k].type is int)
    return Search(sampler, trials, ranges, model.name, objective, prune, request.seeds[0],
                  typed, fixed, integer)


def _choose(option: str, value: str, accepted: Sequence[str]) -> None:
    if value not in accepted:
        raise UsageError(f"{option} {short_repr(value)}: give one of {', '.join(accepted)}")


def _check_range(model: ModelSpec, hparam: HParam | None, name: str, dim: Dim,
                 fixed: Mapping[str, str], typed: Mapping[str, Any]) -> None:
    if hparam is None:
        raise UsageError(f"--space {name}: {model.name} has no setting {name!r}; see `zoo list "
                         f"{model.name} --details`")
    if name in fixed or name in typed:
        raise UsageError(f"--space {name} is also set to one value (--set or an option): a "
                         "searched setting takes its values from the range; drop one")
    problem = dim.problem(hparam)
    if problem:
        raise UsageError(f"--space {name}={dim}: {problem}")


def start(store: Store, request: RunRequest, search: Search, command: str,
          engine: str) -> SweepRecord:
    """Record a search (a sweep with ``spec["search"]`` and no trial yet); its workers
    propose the trials (:func:`propose`)."""
    sweep = SweepRecord(sweep_id=new_sweep_id(), command=command, engine=engine, spec={
        "dataset": request.dataset, "limit": request.limit, "trials": [],
        "search": search.to_spec()})
    store.create_sweep(sweep, [])
    return sweep


# -- the study, rebuilt from the store ---------------------------------------------------------

def _optuna():
    try:
        import optuna
    except ImportError:
        raise ZooError("zoo sweep --search needs Optuna: pip install 'zoo-core[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _distributions(optuna, search: Search) -> dict[str, Any]:
    d = optuna.distributions
    out = {}
    for name, dim in search.space.items():
        if dim.kind == "choice":
            out[name] = d.CategoricalDistribution(dim.choices)
        elif dim.kind == "int" or name in search.integer:
            out[name] = d.IntDistribution(int(dim.low), int(dim.high), log=dim.kind == "log")
        else:
            out[name] = d.FloatDistribution(dim.low, dim.high, log=dim.kind == "log")
    return out


def _sampler(optuna, search: Search, number: int):
    """The sampler for trial ``number``: seeded from ``--seed`` and the number, so the same
    history gives the same proposal wherever it is asked."""
    seed = (search.seed * 1_000_003 + number) % 2**32
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, search.trials // 3))  # random trials before TPE models them
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def _pruner(optuna, search: Search):
    if search.prune == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=0)
    if search.prune == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1,
                                                      reduction_factor=ASHA_REDUCTION)
    return optuna.pruners.NopPruner()


def study(store: Store, sweep: SweepRecord, judged: str | None = None,
          epoch: int | None = None):
    """An in-memory Optuna study of the sweep's trials as the store has them, and the
    index of trial ``judged`` in it (None when not given): that one with its epochs up to
    ``epoch`` only, as the pruner judges it at that epoch."""
    optuna = _optuna()
    search = of(sweep)
    dists = _distributions(optuna, search)
    number = len(sweep.spec.get("trials", []))
    built = optuna.create_study(direction="maximize" if search.maximize else "minimize",
                                sampler=_sampler(optuna, search, number),
                                pruner=_pruner(optuna, search))
    index = None
    for record in store.runs(sweep_id=sweep.sweep_id):
        upto = epoch if record.run_id == judged else None
        frozen = _frozen(optuna, search, dists, sweep, record,
                         store.epochs(record.run_id), upto)
        if frozen is not None:
            index = len(built.get_trials(deepcopy=False)) if upto is not None else index
            built.add_trial(frozen)
    return built, index


def _frozen(optuna, search: Search, dists, sweep: SweepRecord, record: RunRecord,
            epochs: list[dict], upto: int | None):
    """One trial as Optuna sees it: its parameters, each epoch's objective, its state."""
    values = (sweep.trial(record.run_id) or {}).get("set", {})
    if any(name not in values for name in dists):
        return None
    params = {name: _typed(dist, values[name]) for name, dist in dists.items()}
    steps = {e["epoch"]: e[search.objective] for e in epochs
             if _finite(e[search.objective]) and (upto is None or e["epoch"] <= upto)}
    state, value = _state(optuna, record), None
    if state == optuna.trial.TrialState.COMPLETE:
        if steps:
            value = (max if search.maximize else min)(steps.values())
        else:
            state = optuna.trial.TrialState.FAIL
    attrs = _rungs(steps, upto) if search.prune == "asha" else {}
    return optuna.trial.create_trial(state=state, value=value, params=params,
                                     distributions=dists, intermediate_values=steps,
                                     system_attrs=attrs)


def _state(optuna, record: RunRecord):
    states = optuna.trial.TrialState
    if record.status == "completed":
        return states.COMPLETE
    if record.status == "pruned":
        return states.PRUNED
    if record.status == "failed" or (
            record.status == "interrupted" and (record.error or "").startswith(CANCELLED)):
        return states.FAIL
    return states.RUNNING  # queued, running, or interrupted and to be taken over


def _rungs(steps: Mapping[int, float], judged_at: int | None) -> dict[str, float]:
    """The ASHA rungs a trial completed (Optuna keeps them as system attributes when it
    judges each epoch; rebuilt here): rung k at epoch ASHA_REDUCTION**k, its value then.
    The judged trial's rung at the epoch judged now is the pruner's to record."""
    attrs, k = {}, 0
    while (ASHA_REDUCTION ** k) in steps and (judged_at is None
                                             or ASHA_REDUCTION ** k < judged_at):
        attrs[f"completed_rung_{k}"] = steps[ASHA_REDUCTION ** k]
        k += 1
    return attrs


def _typed(dist, text: str):
    name = type(dist).__name__
    if name == "CategoricalDistribution":
        return text
    value = int(text) if name == "IntDistribution" else float(text)
    return min(max(value, dist.low), dist.high)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _text(dim: Dim, value: Any) -> str:
    """A proposed value as ``--set`` spells it: floats to 4 significant digits."""
    if dim.kind == "choice" or isinstance(value, int):
        return str(value)
    text = f"{value:.4g}"
    return text if dim.low <= float(text) <= dim.high else repr(value)


# -- proposing and pruning ---------------------------------------------------------------------

def propose(zoo: Zoo, store: Store, sweep_id: str) -> RunRecord | None:
    """Queue the search's next trial (the sampler's proposal from the trials so far) and
    return it; None when the search has all its trials, is cancelled, or is not a search.

    Raises:
        ZooError: the sampler's proposals keep giving settings that are not valid.
    """
    for _ in range(ADD_TRIES):
        sweep = store.get_sweep(sweep_id)
        search = of(sweep)
        number = len(sweep.spec.get("trials", []))
        if search is None or sweep.status != "active" or number >= search.trials:
            return None
        run, values = _ask(zoo, store, sweep, search)
        record = trial_record(run)
        spec = {"model": search.model, "seed": search.seed, "overrides": search.overrides,
                "set": values, "number": number}
        if store.add_trial(sweep.sweep_id, spec, record, number=number):
            return record
    return None  # others keep adding trials: they have the search in hand


def _ask(zoo: Zoo, store: Store, sweep: SweepRecord, search: Search):
    """Ask the study for settings no trial has had yet that plan as a valid run."""
    zoo.model(search.model)  # not installed here: say so, not "proposals not valid"
    optuna = _optuna()
    built, _ = study(store, sweep)
    dists = _distributions(optuna, search)
    seen = [t.get("set") for t in sweep.spec.get("trials", [])]
    problem = ""
    for attempt in range(TRIES):
        trial = built.ask(dists)
        values = {**search.fixed,
                  **{k: _text(search.space[k], v) for k, v in trial.params.items()}}
        if values in seen and attempt < TRIES - 1:
            built.tell(trial, state=optuna.trial.TrialState.FAIL)  # asked again: another one
            continue
        try:
            resolved = zoo.resolve(search.model, sweep.spec["dataset"], search.overrides,
                                   values, sweep.spec["limit"])
        except ZooError as e:
            problem = str(e)
            built.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        run = PlannedRun(resolved.model, resolved.dataset, search.seed, resolved.settings)
        return run, values
    raise ZooError(f"search {sweep.sweep_id}: {TRIES} proposals in a row were not valid "
                   f"settings (the last: {problem}): narrow the --space ranges")


def prune_reason(store: Store, sweep: SweepRecord, run_id: str, epoch: int,
                 epochs: int) -> str | None:
    """Whether the search's pruner stops trial ``run_id`` after ``epoch`` (of ``epochs``;
    its metrics already stored): why, or None to go on (never after its last epoch)."""
    search = of(sweep)
    if search is None or search.prune is None or epoch >= epochs:
        return None
    built, index = study(store, sweep, judged=run_id, epoch=epoch)
    if index is None:
        return None
    trial = built.get_trials(deepcopy=False)[index]
    if epoch not in trial.intermediate_values or not built.pruner.prune(built, trial):
        return None
    return _reason(search, built, trial, epoch)


def _reason(search: Search, built, trial, epoch: int) -> str:
    states = type(trial.state)
    if search.prune == "median":  # Optuna's median pruner judges the best value so far
        so_far = [v for k, v in trial.intermediate_values.items() if k <= epoch]
        value = (max if search.maximize else min)(so_far)
        others = [t.intermediate_values[epoch] for t in built.get_trials(deepcopy=False)
                  if t.state == states.COMPLETE and epoch in t.intermediate_values]
        middle = search.format(statistics.median(others)) if others else "?"
        return (f"median pruner: {search.objective} {search.format(value)} by epoch {epoch} "
                f"is worse than the median {middle} of the {len(others)} completed trial(s) "
                "at that epoch")
    value = trial.intermediate_values[epoch]
    return (f"asha pruner: {search.objective} {search.format(value)} at epoch {epoch} is "
            f"not in the best 1/{ASHA_REDUCTION} of the trials that reached epoch {epoch}")


# -- results -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One trial of a search, for its status and its plot."""

    number: int
    run: RunRecord
    state: str
    value: float | None  # its objective: the best epoch's (a pruned one's, until it stopped)
    params: dict[str, str]


def points(status: SweepStatus, epochs: Callable[[str], list[dict]]) -> list[Point]:
    """Each trial of the search, in the order proposed, with its objective value."""
    search = of(status.sweep)
    order = {t["run_id"]: i for i, t in enumerate(status.sweep.spec.get("trials", []))}
    out = []
    for record in status.trials:
        found = [e[search.objective] for e in epochs(record.run_id)
                 if _finite(e[search.objective])]
        value = (max if search.maximize else min)(found) if found else None
        values = status.values(record.run_id)
        out.append(Point(order.get(record.run_id, len(order)), record, record.status, value,
                         {k: values[k] for k in search.space if k in values}))
    return sorted(out, key=lambda p: p.number)


def best(search: Search, found: Sequence[Point]) -> Point | None:
    """The completed trial with the best objective (pruned trials never rank)."""
    done = [p for p in found if p.state == "completed" and p.value is not None]
    if not done:
        return None
    return (max if search.maximize else min)(done, key=lambda p: p.value)


def summary(status: SweepStatus, epochs: Callable[[str], list[dict]]) -> dict[str, Any]:
    """The search's part of ``zoo sweep status --json``: its settings, every trial's
    objective, and the best trial."""
    search = of(status.sweep)
    found = points(status, epochs)
    top = best(search, found)
    return {**search.to_spec(),
            "values": [{"number": p.number, "run_id": p.run.run_id, "state": p.state,
                        "value": p.value, "params": p.params} for p in found],
            "best": None if top is None else {
                "number": top.number, "run_id": top.run.run_id, "value": top.value,
                "params": top.params, "config": top.run.config, "seed": top.run.seed}}
