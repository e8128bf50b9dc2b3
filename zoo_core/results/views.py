"""What ``zoo show --json`` and ``zoo runs --json`` say about recorded runs, computed once for
every front end (the command line prints it, ``zoo serve`` and ``zoo site`` show it).

Nothing here imports TensorFlow, numpy or matplotlib, and nothing here writes: drawing a
run's missing pictures is ``zoo show``'s own business (:func:`zoo_core.results.plots.draw_missing`).
"""

from __future__ import annotations

from typing import Any

from zoo_core.results import evidence
from zoo_core.store.liveness import as_shown, shown_status
from zoo_core.store.records import RunRecord, run_files
from zoo_core.store import Store


def run_json(record: RunRecord, epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """``zoo show RUN --json``: the record with its status as shown (a dead owner is
    "interrupted (process died)"; the stored one is ``stored_status``), its evidence, its
    epochs and the files in its folder."""
    return {**as_shown(record),
            "evidence": evidence.of_run(record), "epochs": epochs,
            "files": {k: str(v) for k, v in run_files(record).items()}}


def listed_runs(store: Store, model: str | None = None, dataset: str | None = None,
                status: str | None = None, tag: str | None = None,
                last: int | None = None) -> list[tuple[RunRecord, str]]:
    """``zoo runs``: the runs newest first, each with its status as shown, filtered by the
    shown status (a run whose process died counts as interrupted), at most ``last`` of them."""
    shown = [(r, shown_status(r)) for r in reversed(store.runs(model=model, dataset=dataset,
                                                               tag=tag))]
    if status is not None:
        shown = [(r, s) for r, s in shown if s.split(" ")[0] == status]
    return shown[:last] if last else shown


def runs_json(listed: list[tuple[RunRecord, str]]) -> list[dict[str, Any]]:
    """``zoo runs --json``: each run's record, its status as shown (``stored_status`` the
    stored one)."""
    return [as_shown(r) for r, _ in listed]


def compare_json(a: RunRecord, b: RunRecord) -> dict[str, Any]:
    """``zoo compare A B --json`` without its picture: the settings that differ (as
    recorded: [A, B]) and the metrics side by side (raw values: [A, B])."""
    from zoo_core.settings import recorded_setting

    keys = sorted(set(a.config) | set(b.config))
    differ = {k: [recorded_setting(a.config, k), recorded_setting(b.config, k)] for k in keys
              if recorded_setting(a.config, k) != recorded_setting(b.config, k)}
    metrics = {name: [get(a), get(b)] for name, get in COMPARED.items()}
    return {"runs": [a.run_id, b.run_id], "settings_that_differ": differ, "metrics": metrics}


COMPARED = {  # zoo compare's metrics, as read from a run
    "status": shown_status, "seed": lambda r: r.seed,
    "test accuracy": lambda r: r.test_accuracy, "validation accuracy": lambda r: r.val_accuracy,
    "test loss": lambda r: r.test_loss, "best epoch": lambda r: r.best_epoch,
    "epochs run": lambda r: r.epochs_run, "parameters": lambda r: r.params,
    "training time": lambda r: r.train_seconds, "examples/s": lambda r: r.examples_per_sec,
}
