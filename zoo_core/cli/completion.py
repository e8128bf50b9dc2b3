"""Shell completion (click's own) for the values zoo knows: model, dataset and run names.

A completion runs on every TAB press, so it must be quick: it reads the catalogue and the
plugins (never TensorFlow) or the store's run ids, and any failure completes nothing
rather than printing into the user's shell.
"""

from __future__ import annotations

import os

from click.shell_completion import CompletionItem

from zoo_core import paths
from zoo_core.catalogue import open_zoo
from zoo_core.runs.records import LATEST


def _registry(ctx) -> str | None:
    return ctx.find_root().params.get("registry") or os.environ.get("ZOO_REGISTRY") or None


def _items(names, incomplete: str, help_of=None) -> list[CompletionItem]:
    return [CompletionItem(n, help=help_of(n) if help_of else None)
            for n in names if n.startswith(incomplete)]


def complete_models(ctx, param, incomplete: str) -> list[CompletionItem]:
    """The installed models' names."""
    try:
        zoo = open_zoo(_registry(ctx))
        return _items(sorted(zoo.models), incomplete, lambda n: zoo.models[n].summary)
    except Exception:  # noqa: BLE001 - a completion never fails loudly
        return []


def complete_datasets(ctx, param, incomplete: str) -> list[CompletionItem]:
    """The datasets' names."""
    try:
        zoo = open_zoo(_registry(ctx))
        return _items(sorted(zoo.datasets), incomplete, lambda n: zoo.datasets[n].summary)
    except Exception:  # noqa: BLE001
        return []


def complete_run_ids(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``latest`` and the recorded runs' ids, newest first (a store that does not exist yet
    is not created)."""
    from zoo_core.runs.store import open_store

    try:
        if not paths.store_path().exists():
            return _items([LATEST], incomplete)
        with open_store() as store:
            ids = [r.run_id for r in reversed(store.runs())]
        return _items([LATEST, *ids], incomplete)
    except Exception:  # noqa: BLE001
        return []
