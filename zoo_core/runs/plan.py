"""Planning a batch of runs: which model, dataset, seed and settings; what is already done.

``zoo run``, and any engine that runs a batch elsewhere, turns a request into a
:class:`RunPlan` first: every model and dataset resolved and every setting merged and
checked (so a typo fails before any training), then one :class:`PlannedRun` per
(model, seed), each marked with the completed run it would repeat, if the store has one
and the caller asked to skip those. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from zoo_core.catalogue import Zoo
from zoo_core.catalogue.specs import DatasetSpec, ModelSpec
from zoo_core.store.records import RunRecord
from zoo_core.store import Store
from zoo_core.errors import UsageError, setting
from zoo_core.settings import MAX_SEED, MAX_SEEDS, RunSettings


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for: models on one dataset, seeds, and settings to override."""

    models: Sequence[str]
    dataset: str
    seeds: Sequence[int] = (0,)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # typed, e.g. {"epochs": 3}
    text_overrides: Mapping[str, str] = field(default_factory=dict)  # "key=value" settings
    limit: int | None = None  # train on the first N training examples only
    skip_done: bool = False  # leave out seeds already completed with the same settings


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan."""

    model: ModelSpec
    dataset: DatasetSpec
    seed: int
    settings: RunSettings
    done: RunRecord | None = None  # the completed run with the same settings, when skipped

    @property
    def label(self) -> str:
        return f"{self.model.name} seed {self.seed}"


@dataclass(frozen=True)
class RunPlan:
    """The runs a request asks for, in order."""

    dataset: DatasetSpec
    limit: int | None
    runs: tuple[PlannedRun, ...]

    @property
    def todo(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.done is None]


def plan(zoo: Zoo, request: RunRequest, store: Store | None = None) -> RunPlan:
    """Resolve and check every run of ``request``; mark those the store has done.

    Raises:
        ZooError: an unknown model or dataset, or a setting that does not fit its
            declaration (nothing has run yet); StoreError: the store cannot be opened
            (checked before any work whose result it would have to hold).
    """
    _check_seeds(request.seeds)
    resolved = {name: zoo.resolve(name, request.dataset, request.overrides,
                                  request.text_overrides, request.limit)
                for name in request.models}
    dataset = zoo.dataset(request.dataset)  # after the models: an unknown model is named first
    done: dict[tuple[str, str, int], RunRecord] = {}
    if store is not None:
        store.check()
        if request.skip_done:
            done = {(r.model, r.config_id, r.seed): r
                    for r in store.runs(dataset=request.dataset, status="completed")}
    runs = tuple(
        PlannedRun(r.model, dataset, seed, r.settings, done.get((name, r.settings.config_id, seed)))
        for name, r in resolved.items() for seed in request.seeds)
    return RunPlan(dataset, request.limit, runs)


def _check_seeds(seeds: Sequence[int]) -> None:
    """Every seed within 0..MAX_SEED, and at most MAX_SEEDS of them: a seed beyond what
    TensorFlow and the store take would fail only after its run started."""
    if isinstance(seeds, range) and seeds.step == 1:
        count, low, high = seeds.stop - seeds.start, seeds.start, seeds.stop - 1
    else:
        count, low, high = len(seeds), min(seeds, default=0), max(seeds, default=0)
    if count > MAX_SEEDS:
        raise UsageError(f"{setting('seeds', count)} is more than {MAX_SEEDS} runs at once: "
                         f"give at most {setting('seeds', MAX_SEEDS)}")
    if low < 0 or high > MAX_SEED:
        raise UsageError(f"seed {high if high > MAX_SEED else low} is outside 0..{MAX_SEED} "
                         f"(2**31 - 1, the largest seed every results store takes): lower "
                         f"{setting('seed')}" + (f" or {setting('seeds')}" if count > 1 else ""))
