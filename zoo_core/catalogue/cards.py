"""What ``zoo list --json`` says about a model, computed once for every front end (the
command line prints it; ``zoo serve`` and ``zoo site`` show it as the model's card).
Nothing here imports TensorFlow."""

from __future__ import annotations

from typing import Any, Callable

from zoo_core.catalogue.zoo import ModelRow, Zoo
from zoo_core.errors import ZooError


def model_json(zoo: Zoo, row: ModelRow, dataset: str | None = None,
               describe: Callable[[ZooError], str] = str) -> dict[str, Any]:
    """A model as ``zoo list --json`` shows it: name, plugin, status, summary, datasets, the
    plugin's version and hyperparameters (installed models), the registry's reference
    results; with ``dataset`` (``--details``), also its settings on that dataset and where
    each comes from. ``describe`` words an error (the CLI names its options)."""
    out: dict[str, Any] = {"name": row.name, "plugin": row.plugin, "status": row.status,
                           "summary": row.summary, "datasets": row.datasets}
    if row.hint:
        out["hint"] = row.hint
    if row.spec is not None:
        out["plugin_version"] = row.spec.plugin_version
        out["hparams"] = {k: {"default": p.default, "type": p.type_name, "help": p.help}
                          for k, p in row.spec.hparams.items()}
    out["reference"] = references(zoo, row.name)
    if dataset is not None:
        out.update(settings_json(zoo, row, dataset, describe))
    return out


def references(zoo: Zoo, name: str) -> dict[str, Any]:
    """The registry's reference results of a model, by dataset (test accuracy, its spread and
    seeds, parameters, MACs, the command that reproduces it)."""
    entry = zoo.catalogue.models.get(name)
    return dict(entry.reference) if entry else {}


def settings_json(zoo: Zoo, row: ModelRow, dataset: str,
                  describe: Callable[[ZooError], str] = str) -> dict[str, Any]:
    """``{"settings": {dataset, values, sources}}`` for an installed model, else ``{}``."""
    if row.spec is None:
        return {}
    try:
        resolved = zoo.resolve(row.name, dataset)
    except ZooError as e:
        return {"settings": {"dataset": dataset, "error": describe(e)}}
    return {"settings": {"dataset": dataset, "values": resolved.settings.values,
                         "sources": dict(resolved.sources)},
            "search_space": {k: v["range"] for k, v in search_space(row.spec).items()}}


def search_space(spec) -> dict[str, dict[str, str]]:
    """The search ranges ``zoo sweep MODEL --search`` uses without ``--space``: those the
    model's hyperparameters declare, then the trainer settings' (``HParam(search=...)``),
    each with who declared it (the plugin, or "trainer")."""
    from zoo_core.settings import TRAINER_HPARAMS

    return {k: {"range": p.search, "from": spec.plugin if k in spec.hparams else "trainer"}
            for k, p in {**spec.hparams, **TRAINER_HPARAMS}.items() if p.search}
