"""What each page shows: one dict per page, built from the same library calls as the
command line's ``--json`` (a page's ``.json`` twin is this dict). Nothing here computes a
figure of its own, and nothing writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_core.catalogue import cards
from zoo_core.catalogue.zoo import Zoo
from zoo_core.errors import ZooError
from zoo_core.results import evidence, views
from zoo_core.results import leaderboard as lb
from zoo_core.results.reproduce import current_defaults, reproduce_command
from zoo_core.store.records import run_files
from zoo_core.store import Store
from zoo_core.runs.sweep import sweep_status
from zoo_core.serving import weights as published
from zoo_core.serving.inference import default_dataset

# The pictures a run page shows (and a static site copies), each a file of paths.RunFiles.
PICTURES = ("curves.png", "confusion.png", "predictions.png")
# The run folder's files a page links to: the pictures and the JSON records, nothing else.
SERVED_FILES = (*PICTURES, "config.json", "metrics.json")


class NotFound(ZooError):
    """A page or file that does not exist (a 404)."""


def leaderboard(store: Store, include_partial: bool = False, model: str | None = None,
                dataset: str | None = None, tag: str | None = None) -> dict[str, Any]:
    """``zoo leaderboard --format json`` (``rows``), grouped by dataset for the page
    (``datasets``: name -> its rows, in the same order), and how many quick tries made with
    ``--limit`` were left out (``partial_left_out``)."""
    rows, partial = store.leaderboard(include_partial, model=model or None,
                                      dataset=dataset or None, tag=tag or None)
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_dataset.setdefault(row["dataset"], []).append(row)
    return {"rows": rows, "datasets": by_dataset, "partial_left_out": partial,
            "include_partial": include_partial,
            "filters": {"model": model or "", "dataset": dataset or "", "tag": tag or ""}}


def run(zoo: Zoo, store: Store, run_id: str) -> dict[str, Any]:
    """``zoo show RUN --json``, with the settings' sources and the run's provenance read
    from its folder (``sources``, ``versions``, ``data``), and the command that trains it
    again (``reproduce``: what ``zoo leaderboard --runs --commands`` shows for it)."""
    record = store.get(run_id)
    shown = views.run_json(record, store.epochs(record.run_id))
    config = evidence.recorded_json(Path(record.run_dir) / "config.json") if record.run_dir else {}
    shown["sources"] = config.get("sources", {})
    shown["versions"] = config.get("versions", {})
    shown["data"] = config.get("data", {})
    shown["reproduce"] = reproduce_command(record.model, record.dataset, record.config,
                                           [record.seed],
                                           current_defaults(zoo, record.model, record.dataset))
    return shown


def runs(store: Store, model: str | None = None, dataset: str | None = None,
         status: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
    """``zoo runs --json``."""
    return views.runs_json(views.listed_runs(store, model or None, dataset or None,
                                             status or None, tag or None))


def sweep(store: Store, sweep_id: str) -> dict[str, Any]:
    """``zoo sweep status SWEEP --json``."""
    return sweep_status(store, sweep_id).to_dict()


def sweeps(store: Store) -> list[dict[str, Any]]:
    """``zoo sweep list --json``."""
    return [{k: v for k, v in sweep_status(store, s.sweep_id).to_dict().items() if k != "trials"}
            for s in store.sweeps()]


def model(zoo: Zoo, store: Store, name: str, dataset: str | None = None) -> dict[str, Any]:
    """A model's card: ``zoo list NAME --details --json`` on ``dataset`` (the model's first
    dataset by default), its published weights, its runs (``zoo runs --model NAME --json``)
    and the run ``zoo predict NAME`` would use on ``dataset`` (``best_run``, or None)."""
    row = next((r for r in zoo.rows(name) if r.name == name), None)
    if row is None:
        raise NotFound(f"no model named {name!r}: see the leaderboard, or `zoo list`")
    dataset = dataset or default_dataset(zoo, name)
    listed = views.listed_runs(store, model=name)
    best = lb.best_run(r for r, _ in listed[::-1] if r.dataset == dataset)
    return {"model": cards.model_json(zoo, row, dataset), "dataset": dataset,
            "weights": _weights(zoo, name), "runs": views.runs_json(listed),
            "best_run": best.run_id if best else None,
            "best_evidence": evidence.of_run(best) if best else None,
            "best_files": [n for n in run_files(best) if n in PICTURES] if best else []}


def _weights(zoo: Zoo, name: str) -> list[dict[str, Any]]:
    """The model's published weights, per dataset: the declaration, and the shipped file's
    size (None when the pack is not shipped in the plugin's package)."""
    try:
        declared = published.declared(zoo, name)
    except ZooError:  # not installed: no weights to show
        return []
    out = []
    for dataset, w in sorted(declared.items()):
        shipped = published.shipped_file(zoo, name, w)
        size = shipped.stat().st_size if shipped is not None and shipped.is_file() else None
        out.append({"dataset": dataset, "sha256": w.sha256, "config_id": w.config_id,
                    "test_accuracy": w.test_accuracy, "urls": list(w.urls),
                    "shipped": size is not None, "size": size})
    return out


def shipped_pack(zoo: Zoo, name: str, dataset: str) -> Path:
    """The pack file shipped for ``name`` on ``dataset`` (for its download link).

    Raises:
        NotFound: none is shipped.
    """
    try:
        declared = published.declaration(zoo, name, dataset)
    except ZooError:
        declared = None
    path = published.shipped_file(zoo, name, declared) if declared else None
    if path is None or not path.is_file():
        raise NotFound(f"model {name!r} ships no weights for {dataset!r}")
    return path


def compare(store: Store, a: str, b: str) -> dict[str, Any]:
    """``zoo compare A B --json`` (without its picture: the page shows each run's curves),
    with both runs' models, datasets and pictures."""
    ra, rb = store.get(a), store.get(b)
    out = views.compare_json(ra, rb)
    out["models"] = [[ra.model, ra.dataset], [rb.model, rb.dataset]]
    out["pictures"] = [[n for n in run_files(r) if n in PICTURES] for r in (ra, rb)]
    return out
