"""A run as the results store holds it, and the rules every store backend applies to it.

:class:`RunRecord` is what a store returns and what ``zoo_run_finished`` hooks receive;
:func:`run_files` finds the files it left in its run folder. The field lists and checks below are shared by every backend (:mod:`zoo_core.runs.sqlite`, and a
PostgreSQL sibling later), so that all of them accept and refuse the same writes.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

from zoo_core import paths
from zoo_core.settings import config_id
from zoo_core.train.metrics import EPOCH_METRICS

# A run's life: queued (waiting for a worker) -> running -> one of the final statuses.
STATUSES = ("queued", "running", "completed", "interrupted", "failed")
FINAL_STATUSES = ("completed", "interrupted", "failed")


def utc_now() -> str:
    """The current time as ISO 8601 UTC, to the second (``2024-01-31T12:00:00+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(kw_only=True)
class RunRecord:
    """One training run: what produced it and what it achieved.

    Accuracies are fractions in [0, 1]. ``config`` holds the merged hyperparameters and the
    trainer settings (epochs, lr, limit ...); ``config_id`` is filled in from it when empty.
    """

    run_id: str
    status: str = "running"
    model: str
    dataset: str
    plugin: str
    plugin_version: str
    zoo_version: str
    tf_version: str
    config: dict[str, Any]
    config_id: str = ""
    seed: int
    data_checksums: dict[str, str]
    split_sizes: dict[str, int]
    params: int | None = None
    epochs_run: int = 0
    best_epoch: int | None = None
    train_seconds: float | None = None
    examples_per_sec: float | None = None
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    started_at: str = dataclasses.field(default_factory=utc_now)
    finished_at: str | None = None
    error: str | None = None
    run_dir: str = ""

    def __post_init__(self):
        if not self.config_id:
            self.config_id = config_id(self.config)

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain (JSON-able) dict."""
        return dataclasses.asdict(self)


def run_files(record: RunRecord) -> dict[str, Path]:
    """The files the run left in its folder (those of ``paths.RunFiles.ALL`` that exist)."""
    folder = Path(record.run_dir)
    return {name: folder / name for name in paths.RunFiles.ALL if (folder / name).exists()}


COLUMNS = tuple(f.name for f in dataclasses.fields(RunRecord))
# Stored as JSON text (the values are dicts).
JSON_FIELDS = ("config", "data_checksums", "split_sizes")
# What identifies a run: never changed once the run is created.
IDENTITY_FIELDS = (
    "run_id", "model", "dataset", "plugin", "plugin_version", "zoo_version", "tf_version",
    "config", "config_id", "seed", "started_at",
)
# What update_run may change; the status changes only through claim_run, mark_running and
# finish_run, so that every backend keeps a run's life in order.
UPDATABLE_FIELDS = tuple(c for c in COLUMNS if c not in IDENTITY_FIELDS and c != "status")


def check_status(status: str) -> None:
    """Raise ValueError unless ``status`` is one of STATUSES."""
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}; expected one of {', '.join(STATUSES)}")


def check_final_status(status: str) -> None:
    """Raise ValueError unless ``status`` is one of FINAL_STATUSES (what finish_run takes)."""
    check_status(status)
    if status not in FINAL_STATUSES:
        raise ValueError(
            f"a run is finished with a final status ({', '.join(FINAL_STATUSES)}), not "
            f"{status!r}: a resumed run is marked running by mark_running, a queued run is "
            "taken by claim_run"
        )


def check_fields(fields: dict[str, Any]) -> None:
    """Raise ValueError for no fields, or a field that does not exist or may not be updated."""
    if not fields:
        raise ValueError("an update needs at least one field")
    unknown = sorted(set(fields) - set(UPDATABLE_FIELDS))
    if unknown:
        raise ValueError(
            f"cannot update run field(s) {', '.join(unknown)}; "
            f"updatable: {', '.join(UPDATABLE_FIELDS)}"
        )


def check_epoch_metrics(metrics: dict[str, Any]) -> None:
    """Raise ValueError for a metric name that is not one of EPOCH_METRICS."""
    unknown = sorted(set(metrics) - set(EPOCH_METRICS))
    if unknown:
        raise ValueError(
            f"unknown epoch metric(s) {', '.join(unknown)}; known: {', '.join(EPOCH_METRICS)}"
        )
