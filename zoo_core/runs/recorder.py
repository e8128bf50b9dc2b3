"""A run's recorder: what the trainer reports goes through it to the store, as long as the
run is this process's (docs/reliability.md, "Only the owner writes, fenced").

:class:`Recorder` passes the trainer's progress on, renews the run's heartbeat, and writes each
epoch's row with its checkpoint published in the same fenced transaction
(``Store.add_epoch``'s ``expect`` and ``publish``); :class:`RunTakenOver` is what it raises
when the run is no longer this process's.
"""

from __future__ import annotations

import time

from zoo_core.errors import StoreError, UsageError, ZooError
from zoo_core.results.tensorboard import EventWriter
from zoo_core.store import Store, liveness
from zoo_core.store.records import RunRecord, utc_now
from zoo_core.train import loop
from zoo_core.train.metrics import EPOCH_METRICS


class RunTakenOver(ZooError):
    """Another process took the run over (its owner had looked dead) or removed it."""


class Recorder(loop.Progress):
    """Passes progress through, renews the run's heartbeat, and stores each epoch as it ends
    (and writes it for TensorBoard), as long as the run is still this process's: each write
    is fenced (``Store.add_epoch``'s ``expect``), and the epoch's checkpoint is published
    inside the epoch's fenced write."""

    def __init__(self, store: Store, record: RunRecord, progress: loop.Progress | None,
                 events: EventWriter, done: int = 0):
        self.store, self.run_id, self.events = store, record.run_id, events
        self.owner = liveness.mine()
        self.progress = progress or loop.Progress()
        self.epochs = done  # epochs finished, counting those before a resume
        self.best_record: dict | None = None
        self.last_beat = time.monotonic()

    def beat(self) -> None:
        """Renew the run's heartbeat (at most every HEARTBEAT_SECONDS), only while it is this
        process's: it is making progress. A store that cannot take it now gets it at the next
        beat (epochs are written the same way, and fail the run loudly)."""
        now = time.monotonic()
        if now - self.last_beat >= liveness.heartbeat_seconds():
            self.last_beat = now
            try:
                self.store.update_run(self.run_id, heartbeat_at=utc_now(), expect=self.owner)
            except (StoreError, UsageError):  # busy, full, or removed: the epoch's write tells
                pass

    def taken_over(self) -> RunTakenOver:
        """The error for a fenced write that found the run no longer this process's: another
        process resumed it (this one had looked dead: stopped, or on a machine whose heartbeat
        did not come through) or it was removed."""
        try:
            now = self.store.get(self.run_id)
        except UsageError:  # removed (`zoo runs rm --force`)
            now = None
        whom = "removed" if now is None else f"taken over ({liveness.owner_text(now)})"
        return RunTakenOver(f"run {self.run_id} was {whom} while this process trained it: "
                            "this process stops and leaves the run as it is")

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.beat()
        self.progress.epoch_start(epoch, epochs, steps)

    def step(self, loss: float, accuracy: float) -> None:
        self.beat()
        self.progress.step(loss, accuracy)

    def steps(self, count: int, loss: float, accuracy: float) -> None:
        self.beat()
        loop.report_steps(self.progress, count, loss, accuracy)

    def epoch_saved(self, record: dict, publish) -> None:
        """Store the epoch's row and publish its checkpoint in one fenced write; raise
        RunTakenOver (nothing written) when the run is no longer this process's."""
        try:
            ours = self.store.add_epoch(self.run_id, record["epoch"], expect=self.owner,
                                        publish=publish,
                                        **{k: record[k] for k in EPOCH_METRICS})
        except UsageError:  # removed
            ours = False
        if not ours:
            raise self.taken_over()
        self.last_beat = time.monotonic()

    def epoch_end(self, record: dict) -> None:
        self.epochs = record["epoch"]
        if record.get("best"):
            self.best_record = record
        self.events.epoch(record)
        self.progress.epoch_end(record)

    def best(self) -> dict:
        if not self.best_record:
            return {}
        return {"best_epoch": self.best_record["epoch"],
                "val_accuracy": self.best_record["val_accuracy"]}
