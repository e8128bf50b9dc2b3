"""Shell completion (click's own) for the values zoo knows: model, dataset and run names.

A completion runs on every TAB press, so it must be quick and silent: it never imports a
plugin (a plugin that imports TensorFlow at module level would take seconds and print
TensorFlow's log lines into the shell). Models complete from registry.toml's catalogue (the
models whose plugin distribution is installed) and from the installed ``zoo`` entry points'
names, read from package metadata; datasets from the catalogue (a dataset only a plugin
registers is not completed). Run ids come from the store. Nothing is written to stderr, and
any failure completes nothing rather than printing into the user's shell.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from importlib import metadata
from pathlib import Path

from click.shell_completion import CompletionItem

from zoo_core import paths
from zoo_core.catalogue.plugins import ENTRY_POINT_GROUP
from zoo_core.catalogue.registry import read_catalogue
from zoo_core.catalogue.specs import valid_name
from zoo_core.store.records import LATEST


def _registry(ctx) -> Path | None:
    path = ctx.find_root().params.get("registry") or os.environ.get("ZOO_REGISTRY") or None
    return Path(path) if path else None


def _items(names, incomplete: str, help_of=None) -> list[CompletionItem]:
    return [CompletionItem(n, help=help_of(n) if help_of else None)
            for n in names if n.startswith(incomplete)]


@contextlib.contextmanager
def _quiet():
    """Nothing written to stderr, no warning shown, while completing."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _normal(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def model_names(registry: Path | None = None) -> dict[str, str]:
    """Model name -> summary, without importing any plugin: the catalogue's models whose
    plugin distribution is installed, and the names of the installed ``zoo`` entry points
    (a plugin's model is usually named after it)."""
    catalogue = read_catalogue(registry)
    entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    installed = {_normal(ep.dist.name) for ep in entry_points if ep.dist is not None}
    names = {name: model.summary for name, model in catalogue.models.items()
             if _normal(model.plugin) in installed}
    for ep in entry_points:
        if valid_name(ep.name) and ep.name not in names:
            names[ep.name] = f"plugin {ep.dist.name if ep.dist else ep.value}"
    return names


def complete_models(ctx, param, incomplete: str) -> list[CompletionItem]:
    """The installed models' names (no plugin is imported)."""
    try:
        with _quiet():
            names = model_names(_registry(ctx))
        return _items(sorted(names), incomplete, names.get)
    except Exception:  # noqa: BLE001 - a completion never fails loudly
        return []


def complete_datasets(ctx, param, incomplete: str) -> list[CompletionItem]:
    """The catalogue's datasets' names."""
    try:
        with _quiet():
            datasets = read_catalogue(_registry(ctx)).datasets
        return _items(sorted(datasets), incomplete, lambda n: datasets[n].summary)
    except Exception:  # noqa: BLE001
        return []


def complete_run_ids(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``latest`` and the recorded runs' ids, newest first (a store that does not exist yet
    is not created)."""
    from zoo_core.cli.common import store_location
    from zoo_core.store import open_store

    try:
        if store_location() is None and not paths.store_path().exists():
            return _items([LATEST], incomplete)
        with _quiet(), open_store(store_location()) as store:
            ids = [r.run_id for r in reversed(store.runs())]
        return _items([LATEST, *ids], incomplete)
    except Exception:  # noqa: BLE001
        return []
