"""A run as the results store holds it, and the rules every store backend applies to it.

:class:`RunRecord` is what a store returns and what ``zoo_run_finished`` hooks receive;
:func:`run_files` finds the files it left in its run folder. The field lists and checks below are shared by every backend (:mod:`zoo_core.store.sqlite`, :mod:`zoo_core.store.postgresql`,
through :mod:`zoo_core.store.sql`), so that all of them accept and refuse the same writes.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import secrets
import time
from pathlib import Path
from typing import Any, Mapping

from zoo_core import paths
from zoo_core.settings import config_id, recorded_precision
from zoo_core.train.metrics import EPOCH_METRICS

# A run's life: queued (waiting for a worker) -> running -> one of the final statuses;
# "pruned": a search's pruner stopped it early, on purpose (its reason in ``error``).
STATUSES = ("queued", "running", "completed", "interrupted", "failed", "pruned")
FINAL_STATUSES = ("completed", "interrupted", "failed", "pruned")


def utc_now() -> str:
    """The current time as ISO 8601 UTC, to the second (``2024-01-31T12:00:00+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass(kw_only=True)
class RunRecord:
    """One training run: what produced it and what it achieved.

    Accuracies are fractions in [0, 1]. ``config`` holds the merged hyperparameters and the
    trainer settings (epochs, lr, limit ...); ``config_id`` is filled in from it when empty.
    ``tags`` are the user's labels (sorted); ``host``, ``pid`` and ``owner_started`` (the
    process's start, which tells a reused pid apart) name the process that last started or
    resumed the run, and ``heartbeat_at`` is when it last showed it was alive (all empty for
    runs recorded before zoo-core recorded them; see :mod:`zoo_core.store.liveness`).
    ``sweep_id`` names the sweep the run is a trial of (None for a run of ``zoo run``).
    ``run_dir`` is absolute as read; the store keeps it relative to the artifacts folder
    (``paths.runs_dir()``, ``ZOO_ARTIFACTS``) when it lies inside it.
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
    tags: list[str] = dataclasses.field(default_factory=list)
    host: str = ""
    pid: int | None = None
    owner_started: str = ""
    heartbeat_at: str | None = None
    sweep_id: str | None = None
    # what the run computed in on the machine that ran it, "bfloat16" or "float32" (None for
    # runs recorded before zoo-core recorded it: their config's ``bf16`` says it)
    precision: str | None = None

    def __post_init__(self):
        if not self.config_id:
            self.config_id = config_id(self.config)

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain (JSON-able) dict."""
        return dataclasses.asdict(self)


def new_run_id(model: str, dataset: str, seed: int) -> str:
    """A new run's id: model, dataset, seed, the time (UTC) and 4 random hex digits."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{model}-{dataset}-s{seed}-{stamp}-{secrets.token_hex(2)}"


@dataclasses.dataclass(kw_only=True)
class SweepRecord:
    """A sweep as the store holds it: its trials are runs whose ``sweep_id`` is ``sweep_id``.

    ``spec`` says how to rebuild each trial's settings wherever a worker runs it:
    ``{"dataset", "limit", "trials": [{"run_id", "model", "seed", "overrides", "set"}]}``
    (``overrides`` typed like ``--epochs``; ``set`` the ``--set`` strings). ``status`` is
    "active" or "cancelled" (no trial of a cancelled sweep is started or taken over).
    """

    sweep_id: str
    command: str
    engine: str
    spec: dict[str, Any]
    created_at: str = dataclasses.field(default_factory=utc_now)
    status: str = "active"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def trial(self, run_id: str) -> dict[str, Any] | None:
        """The spec of the trial ``run_id``, or None when it is not one of this sweep's."""
        return next((t for t in self.spec.get("trials", []) if t["run_id"] == run_id), None)


SWEEP_STATUSES = ("active", "cancelled")
SWEEP_COLUMNS = tuple(f.name for f in dataclasses.fields(SweepRecord))


def new_sweep_id() -> str:
    return f"sweep-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


IMPORTED_TAG = "imported"  # the tag of a run imported from a pack (zoo unpack, zoo pull)


def imported(run: RunRecord) -> bool:
    """A run imported from a pack rather than trained in this store."""
    return IMPORTED_TAG in run.tags


def precision_ran(run: RunRecord) -> str:
    """The precision a run computed in, as a word: ``precision`` as recorded, or for a run
    recorded before that, its config's ``bf16`` (which then said what ran)."""
    return run.precision or recorded_precision(run.config)


def is_partial(run: RunRecord) -> bool:
    """A run trained on a subset of the training split (``--limit``): a quick try."""
    return run.config.get("limit") is not None


def run_files(record: RunRecord) -> dict[str, Path]:
    """The files the run left in its folder (those of ``paths.RunFiles.ALL`` that exist; for
    a pattern, the newest match)."""
    folder = Path(record.run_dir)
    if not record.run_dir or not folder.is_dir():
        return {}
    found = {}
    for name in paths.RunFiles.ALL:
        matches = sorted(folder.glob(name)) if "*" in name else [folder / name]
        matches = [m for m in matches if m.exists()]
        if matches:
            found[name] = matches[-1]
    return found


COLUMNS = tuple(f.name for f in dataclasses.fields(RunRecord))
# Stored as JSON text (the values are dicts, or the list of tags).
JSON_FIELDS = ("config", "data_checksums", "split_sizes", "tags")
# What identifies a run: never changed once the run is created.
IDENTITY_FIELDS = (
    "run_id", "model", "dataset", "plugin", "plugin_version", "zoo_version", "tf_version",
    "config", "config_id", "seed", "started_at", "sweep_id",
)
# What update_run may change; the status changes only through claim_run, mark_running and
# finish_run, so that every backend keeps a run's life in order; the tags only through tag_run.
UPDATABLE_FIELDS = tuple(c for c in COLUMNS if c not in (*IDENTITY_FIELDS, "status", "tags"))
# What a conditional write (Store.delete_run, Store.mark_running) may expect a run to still have.
EXPECTABLE_FIELDS = ("status", "host", "pid", "owner_started")
# Who owns a running run (set together by create_run and mark_running).
OWNER_FIELDS = ("host", "pid", "owner_started", "heartbeat_at")
# A tag: a letter or digit, then letters, digits, and . _ : - (no spaces, no commas).
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# What Store.get takes, besides an id or a prefix, for the most recently started run.
LATEST = "latest"
# Words a run id cannot be, since commands take them for something else.
RESERVED_RUN_IDS = (LATEST,)


def check_run_id(run_id: str) -> None:
    """Raise ValueError for a run id that is a reserved word (RESERVED_RUN_IDS)."""
    if run_id in RESERVED_RUN_IDS:
        raise ValueError(f"{run_id!r} cannot be a run id: commands take it for the most "
                         "recently started run")


def check_tags(tags) -> list[str]:
    """The tags, checked against TAG_PATTERN (ValueError otherwise), deduplicated and sorted."""
    bad = [t for t in tags if not isinstance(t, str) or not TAG_PATTERN.fullmatch(t)]
    if bad:
        raise ValueError(
            f"invalid tag(s) {', '.join(map(repr, bad))}: a tag is a letter or digit followed by "
            "up to 63 letters, digits, '.', '_', ':' or '-'"
        )
    return sorted(set(tags))


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


def check_expect(expect: Mapping[str, Any] | None) -> None:
    """Raise ValueError for a field a conditional write cannot expect (EXPECTABLE_FIELDS)."""
    unknown = sorted(set(expect or ()) - set(EXPECTABLE_FIELDS))
    if unknown:
        raise ValueError(f"cannot expect run field(s) {', '.join(unknown)}; "
                         f"expectable: {', '.join(EXPECTABLE_FIELDS)}")


def check_owner(owner: Mapping[str, Any]) -> None:
    """Raise ValueError for an owner field that is not one of OWNER_FIELDS, or a None host."""
    unknown = sorted(set(owner) - set(OWNER_FIELDS))
    if unknown:
        raise ValueError(f"unknown owner field(s) {', '.join(unknown)}; "
                         f"owner fields: {', '.join(OWNER_FIELDS)}")
    if "host" in owner and owner["host"] is None:
        raise ValueError("an owner's host is a name, or '' for none; not None")


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
