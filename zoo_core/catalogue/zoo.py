"""The zoo as the rest of the core sees it: the catalogue joined with the loaded plugins.

:func:`open_zoo` reads registry.toml (:mod:`zoo_core.catalogue.registry`) and loads the
plugins (:mod:`zoo_core.catalogue.plugins`); the :class:`Zoo` answers which models and
datasets exist (:meth:`Zoo.model`, :meth:`Zoo.dataset`), and what ``zoo list`` shows
(:meth:`Zoo.rows`). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from zoo_core.catalogue.plugins import PluginSet
from zoo_core.catalogue.plugins import load as load_plugins
from zoo_core.catalogue.registry import Catalogue, read_catalogue, where
from zoo_core.catalogue.specs import DatasetSpec, ModelSpec
from zoo_core.errors import UnknownNameError, UsageError
from zoo_core.settings import COMMAND_LINE, Layer, RunSettings, TrainerSettings, merge


@dataclass
class ModelRow:
    """One line of ``zoo list``: a model from the catalogue, a plugin, or both."""

    name: str
    plugin: str
    summary: str
    datasets: list[str]
    status: str  # installed | not installed | missing
    hint: str = ""
    spec: ModelSpec | None = None


@dataclass(frozen=True)
class Resolved:
    """A model and a dataset, with the merged settings of a run of one on the other."""

    model: ModelSpec
    dataset: DatasetSpec
    settings: RunSettings

    @property
    def hparams(self) -> Mapping[str, Any]:
        return self.settings.hparams

    @property
    def trainer(self) -> TrainerSettings:
        return self.settings.trainer

    @property
    def sources(self) -> Mapping[str, str]:
        return self.settings.sources


class Zoo:
    """The catalogue (registry.toml) and the loaded plugins, as the rest of the core sees them.

    ``models`` are the models plugins registered; ``datasets`` are registry.toml's datasets
    and those plugins registered under a name the registry does not use.
    """

    def __init__(self, catalogue: Catalogue, plugin_set: PluginSet):
        self.catalogue = catalogue
        self.plugins = plugin_set
        self.datasets: dict[str, DatasetSpec] = dict(catalogue.datasets)
        for name, ds in plugin_set.datasets.items():
            if name in self.datasets:
                for report in plugin_set.reports:
                    if name in report.datasets:
                        report.error = (
                            f"dataset {name!r} is already in {catalogue.path}; the plugin's "
                            "registration is ignored"
                        )
                continue
            self.datasets[name] = ds

    @property
    def models(self) -> dict[str, ModelSpec]:
        return self.plugins.models

    def rows(self, pattern: str | None = None) -> list[ModelRow]:
        """Every model the catalogue lists or a plugin registers, sorted by name."""
        rows = {}
        installed = {r.label for r in self.plugins.reports if r.status == "ok"}
        for name, cm in self.catalogue.models.items():
            spec = self.models.get(name)
            if spec is not None:
                status, hint = "installed", ""
            elif cm.plugin in installed:
                status, hint = "missing", f"{cm.plugin} is installed but does not register {name!r}"
            else:
                status = "not installed"
                hint = f"pip install {cm.plugin}  (from a checkout: pip install -e plugins/{cm.plugin})"
            rows[name] = ModelRow(
                name, cm.plugin, cm.summary, sorted(cm.datasets) or ["any"], status, hint, spec
            )
        for name, spec in self.models.items():
            if name not in rows:
                rows[name] = ModelRow(name, spec.plugin, spec.summary, ["any"], "installed", "", spec)
        out = [rows[k] for k in sorted(rows)]
        if pattern:
            out = [r for r in out if fnmatch.fnmatchcase(r.name, pattern)]
        return out

    def model(self, name: str) -> ModelSpec:
        """The installed model ``name``; :class:`UsageError` saying why it is not there."""
        if name in self.models:
            return self.models[name]
        cm = self.catalogue.models.get(name)
        if cm is not None:
            failed = [r for r in self.plugins.reports if r.label == cm.plugin and r.status != "ok"]
            if failed:
                raise UsageError(
                    f"model {name!r} comes from plugin {cm.plugin}, which failed to load: "
                    f"{failed[0].error} (see `zoo plugins`)"
                )
            raise UsageError(
                f"model {name!r} is provided by plugin {cm.plugin}, which is not installed: "
                f"pip install {cm.plugin} (from a checkout: pip install -e plugins/{cm.plugin})"
            )
        raise self._unknown_model(name)

    def _unknown_model(self, name: str) -> UsageError:
        """Why ``name`` is not a model: a plugin listed under a look-alike entry-point group,
        plugins that failed to load, or a plain unknown name (with close names)."""
        from zoo_core.catalogue.diagnose import misfiled  # metadata only, on this path only

        for ep, dist in misfiled():
            if name in (ep.name, dist, ep.value, ep.value.split(":")[0].split(".")[-1]):
                return UsageError(
                    f"unknown model {name!r}: {dist} lists {ep.name} = {ep.value} under the "
                    f"entry-point group {ep.group!r}, which the zoo does not read; write "
                    f"[project.entry-points.zoo] in its pyproject.toml and reinstall it")
        hint = "see `zoo list`"
        failed = self.plugins.failures
        if failed:
            hint += ("; " + ", ".join(r.who for r in failed) + " failed to load, see `zoo plugins`")
        known = set(self.models) | set(self.catalogue.models)
        if failed or not difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5):
            hint += "; `zoo plugins --diagnose` finds plugins installed but not listed"
        return UnknownNameError("model", name, known, hint=hint)

    def dataset(self, name: str) -> DatasetSpec:
        """The dataset ``name``; :class:`UnknownNameError` suggesting close names."""
        if name in self.datasets:
            return self.datasets[name]
        raise UnknownNameError("dataset", name, self.datasets, hint="see `zoo datasets`")

    def resolve(self, model: str, dataset: str, overrides: Mapping[str, Any] | None = None,
                raw_overrides: Mapping[str, str] | None = None,
                limit: int | None = None) -> Resolved:
        """A run's model, dataset and settings: plugin defaults (declared hyperparameters,
        then ``register(defaults=..., dataset_defaults=...)``) < registry.toml (the model's
        table, then its per-dataset table) < ``overrides`` (typed, e.g. ``--epochs``) <
        ``raw_overrides`` (strings, e.g. ``--set key=value``, parsed by declared type).

        Raises:
            UnknownNameError, UsageError: no such model or dataset.
            RegistryError: registry.toml sets an unknown or ill-typed value.
            HParamError: so do the overrides.
        """
        spec = self.model(model)
        ds = self.dataset(dataset)
        layers = self._plugin_layers(spec, dataset) + self._registry_layers(model, dataset)
        layers += [Layer(COMMAND_LINE, dict(overrides or {})),
                   Layer(COMMAND_LINE, dict(raw_overrides or {}), text=True)]
        settings = merge(model, spec.hparams, layers, plugin=spec.plugin, limit=limit)
        return Resolved(spec, ds, settings)

    @staticmethod
    def _plugin_layers(spec: ModelSpec, dataset: str) -> list[Layer]:
        """The plugin's registered defaults: for every dataset, then for ``dataset``."""
        return [Layer(f"{spec.plugin} defaults", spec.settings),
                Layer(f"{spec.plugin} defaults for {dataset}",
                      spec.dataset_settings.get(dataset, {}))]

    def _registry_layers(self, model: str, dataset: str) -> list[Layer]:
        """registry.toml's defaults for ``model``: its table, then its table for ``dataset``."""
        cm = self.catalogue.models.get(model)
        if cm is None:
            return []
        tables = [(cm.hparams, f"models.{model}.hparams")]
        if dataset in cm.datasets:
            tables.append((cm.datasets[dataset], f"models.{model}.datasets.{dataset}"))
        path = self.catalogue.path
        return [Layer(f"{path.name} [{entry}]", table, where=where(path, entry))
                for table, entry in tables]


def open_zoo(registry: Path | str | None = None, plugins=None, entry_points: bool = True) -> Zoo:
    """Read the registry file and load the plugins.

    Args:
        registry: the registry file; None for ``$ZOO_REGISTRY`` or the packaged one.
        plugins: plugin objects registered by hand, besides the entry points (tests).
        entry_points: whether to load the installed ``zoo`` entry points.
    """
    catalogue = read_catalogue(Path(registry) if registry else None)
    owners = {name: entry.plugin for name, entry in catalogue.models.items()}
    return Zoo(catalogue, load_plugins(plugins, entry_points=entry_points, owners=owners,
                                       registry=catalogue.path.name))
