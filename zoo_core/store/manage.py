"""Managing recorded runs: removing a run (its record, then its folder) and copying runs
between stores.

Whether a running run's process still lives is :mod:`zoo_core.store.liveness`'s: a run
running in a live process is never removed, and one whose process zoo cannot judge (made by
a zoo-core before 0.2) only with ``force``. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from zoo_core import paths
from zoo_core.errors import StoreError, ZooError
from zoo_core.store import Store
from zoo_core.store.liveness import (expected, owner_died, owner_text, owner_unseen, shown_status,
                                     unseen_owner_hint)
from zoo_core.store.records import RESERVED_RUN_IDS, RunRecord


def removal_refusal(record: RunRecord, force: bool = False) -> str | None:
    """Why ``record`` cannot be removed now (one line), or None when it can.

    A run running in a live process on this machine is refused; a run recorded as running
    whose process zoo cannot see (:func:`owner_unseen`) is refused unless ``force``. Queued
    runs, dead runs and finished runs can be removed.
    """
    if record.status != "running" or owner_died(record):
        return None
    if owner_unseen(record):
        return None if force else unseen_owner_hint(record)
    return f"run {record.run_id} is running ({owner_text(record)}): stop it first, then remove it"


@dataclass(frozen=True)
class Folder:
    """The folder removing a run deletes (``path``; None for none), and why, when it is not
    the recorded one (``note``)."""

    path: Path | None
    note: str = ""


def run_folder(record: RunRecord) -> Folder:
    """The folder that is this run's own: the recorded ``run_dir``, or, when that does not
    exist (a store copied from elsewhere), ``runs_dir() / run_id``. Only a folder named after
    the run id qualifies, so nothing else is ever deleted."""
    run_id = record.run_id
    if not run_id or run_id in (".", "..") or "/" in run_id or os.sep in run_id:
        return Folder(None, "the run id is not a folder name")
    if record.run_dir:
        recorded = Path(record.run_dir)
        if recorded.name != run_id or recorded.is_symlink() or \
                (recorded.exists() and not recorded.is_dir()):
            return Folder(None, f"{recorded} is not a folder named {run_id}")
        if recorded.is_dir():
            return Folder(recorded)
    fallback = paths.runs_dir() / run_id
    if fallback.is_dir() and not fallback.is_symlink():
        return Folder(fallback, f"not at the recorded {record.run_dir}" if record.run_dir else "")
    return Folder(None, "no folder found")


def remove_run(store: Store, confirmed: RunRecord, force: bool = False) -> Folder:
    """Remove a run the user confirmed: its record, then its folder (:func:`run_folder`).

    The run is read again, and its record deleted only if it still has the status and owner
    it was confirmed with, in one transaction: a run claimed, resumed or started meanwhile is
    kept. Its folder is deleted after its record, so that no process resuming it writes into
    a deleted folder.

    Returns:
        the folder deleted (``path``), or why none was (``note``).

    Raises:
        ZooError: the run cannot be removed (:func:`removal_refusal`), or it changed since it
            was confirmed; nothing of it is removed.
        StoreError: the folder cannot be deleted (the record is gone; the message says so).
    """
    current = store.get(confirmed.run_id)
    refusal = removal_refusal(current, force)
    if expected(current) != expected(confirmed):
        refusal = (f"run {current.run_id} changed since it was confirmed (now "
                   f"{shown_status(current)}, {owner_text(current)}): kept")
    if refusal is not None or not store.delete_run(current.run_id, expect=expected(current)):
        raise ZooError(refusal or f"run {current.run_id} changed while being removed: kept")
    folder = run_folder(current)
    if folder.path is not None:
        try:
            shutil.rmtree(folder.path)
        except OSError as e:
            raise StoreError(
                f"removed the record of run {current.run_id}, but cannot delete its folder "
                f"{folder.path} ({paths.why_not(e, folder.path)}): delete it by hand") from None
    return folder


@dataclass
class Copied:
    """What :func:`copy_runs` did: the runs it copied (with their epochs and tags), and those
    the target already held, identical; the same for the sweeps."""

    runs: int = 0
    epochs: int = 0
    tags: int = 0
    already: int = 0
    sweeps: int = 0
    sweeps_already: int = 0


def copy_runs(source: Store, target: Store) -> Copied:
    """Copy every sweep and every run of ``source`` (its row, epochs and tags, as they are)
    into ``target``, then read each one back from ``target`` and compare.

    A sweep or run the target already holds identically is skipped, and a run a copy
    stopped in the middle of (killed, say: its row, and its first epochs, with
    ``epochs_run`` counting those) is completed, so that running a copy again finishes it.

    Raises:
        StoreError: the target holds some of these sweep or run ids with other contents
            (nothing is copied), the source a run whose id is a reserved word, or a sweep or
            run reads back different after the copy.
    """
    sweeps = _sweeps_to_copy(source, target)
    records = source.runs()
    epochs_of = {record.run_id: source.epochs(record.run_id) for record in records}
    held = {record.run_id: record for record in target.runs()}
    plan, copied = [], Copied()
    for record in records:
        epochs = epochs_of[record.run_id]
        if record.run_id in RESERVED_RUN_IDS:
            raise StoreError(f"results store {source.name} holds a run whose id is "
                             f"{record.run_id!r}, a reserved word: nothing was copied; give it "
                             "another id there first")
        if record.run_id not in held:
            plan.append((record, epochs, None))
            continue
        present = target.epochs(record.run_id)
        if not _partial_copy(held[record.run_id], present, record, epochs):
            raise StoreError(
                f"results store {target.name} already holds run "
                f"{record.run_id!r} with other contents: nothing was copied; copy into a new "
                "database, or remove that run there first (zoo --store URL runs rm ID)"
            )
        if held[record.run_id] == record and _same(present, epochs):
            copied.already += 1
        else:
            plan.append((record, epochs, present))
    for sweep in sweeps:
        target.create_sweep(sweep, [])  # its trials are among the runs, copied below
        if target.get_sweep(sweep.sweep_id) != sweep:
            raise StoreError(f"sweep {sweep.sweep_id!r} reads back different from the results "
                             f"store {target.name} after the copy: report this")
    copied.sweeps = len(sweeps)
    copied.sweeps_already = len(source.sweeps()) - len(sweeps)
    for record, epochs, present in plan:
        if present is None:
            target.create_run(record)
        for row in epochs[len(present or []):]:
            metrics = {k: v for k, v in row.items() if k != "epoch"}
            target.add_epoch(record.run_id, row["epoch"], **metrics)
        if target.get(record.run_id).epochs_run != record.epochs_run:  # as the source has it
            target.update_run(record.run_id, epochs_run=record.epochs_run)
        copied.runs += 1
        copied.epochs += len(epochs)
        copied.tags += len(record.tags)
    _check_copy(target, records, epochs_of)
    return copied


def _partial_copy(held: RunRecord, present: list[dict], record: RunRecord,
                  epochs: list[dict]) -> bool:
    """Whether the target's ``held`` run (with its ``present`` epochs) is ``record`` copied
    whole or in part: the same row but for ``epochs_run`` (which counts the epochs copied so
    far), and the first of its epochs."""
    return (dataclasses.replace(held, epochs_run=record.epochs_run) == record
            and len(present) <= len(epochs) and _same(present, epochs[:len(present)]))


def _sweeps_to_copy(source: Store, target: Store) -> list:
    """The sweeps of ``source`` that ``target`` lacks.

    Raises:
        StoreError: ``target`` holds one of them with other contents."""
    held = {sweep.sweep_id: sweep for sweep in target.sweeps()}
    missing = []
    for sweep in source.sweeps():
        if sweep.sweep_id not in held:
            missing.append(sweep)
        elif held[sweep.sweep_id] != sweep:
            raise StoreError(
                f"results store {target.name} already holds sweep {sweep.sweep_id!r} with "
                "other contents: nothing was copied; copy into a new database")
    return missing


def _check_copy(target: Store, records: list[RunRecord], epochs_of: dict[str, list]) -> None:
    """Every run of ``records`` reads back from ``target`` as the source had it."""
    for record in records:
        if (target.get(record.run_id) != record
                or not _same(target.epochs(record.run_id), epochs_of[record.run_id])):
            raise StoreError(
                f"run {record.run_id!r} reads back different from the results store "
                f"{target.name} after the copy: report this"
            )


def _same(a: list[dict], b: list[dict]) -> bool:
    """Two runs' epochs are equal, a NaN metric equal to a NaN (``nan != nan`` in Python)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
