"""Importing a pack (``zoo unpack``, and ``zoo pull`` after its download) as a completed run.

The pack is read and checked whole into a temporary folder beside the run's (:func:`zoo_core.
serving.packs.read`), renamed into place (atomic: of two imports of one pack at once, one
creates the folder), and only then is the run added to the store. An import that fails
removes only what it created: never a folder another import made, nor one a store's row names.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zoo_core import paths
from zoo_core.errors import StoreError, ZooError
from zoo_core.store.records import IMPORTED_TAG, RunRecord, utc_now
from zoo_core.store import Store
from zoo_core.serving.packs import (EPOCHS, IMPORTED, Contents, PackError, file_sha256,
                                    provenance, read)


@dataclass
class Imported:
    """What :func:`unpack` did: the run (as stored now) and whether it was there already."""

    record: RunRecord
    already: bool
    note: str = ""


def unpack(store: Store, path: Path, source: str | None = None) -> Imported:
    """Import the pack ``path`` into ``store`` as a completed run tagged ``imported``, whose
    folder holds ``imported.json``: where it came from (``source``: a URL, else the file),
    the original run id and host, and the manifest's sha256.

    Importing the same pack again changes nothing and reports the same run.

    Raises:
        PackError: the pack is refused (see :func:`read`), or the store holds another run
            with its id; nothing is written.
    """
    runs = paths.ensure_dir(paths.runs_dir(), "the runs folder", StoreError)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=runs))
    try:
        contents = read(path, extract_to=tmp)
        record = RunRecord(**contents.run["record"])
        folder = runs / record.run_id
        done = _already(store, record, folder, contents)
        if done is not None:
            return done
        provenance = {"from": source or str(Path(path).absolute()), "file": Path(path).name,
                      "sha256": file_sha256(path), "manifest_sha256": contents.manifest_sha256,
                      "original_run_id": record.run_id,
                      "original_host": record.host, "packed": contents.run.get("packed", {}),
                      "imported_at": utc_now(), "imported_by": socket.gethostname()}
        (tmp / IMPORTED).write_text(json.dumps(provenance, indent=2) + "\n")
        created = _move_into_place(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        return Imported(_add_to_store(store, record, folder, created), already=False)
    except StoreError:  # another import of this pack added the run meanwhile: it is there
        done = _already(store, record, folder, contents)
        if done is None or not done.already:
            raise
        return dataclasses.replace(done, note="imported at the same time by another process")


def _move_into_place(tmp: Path, folder: Path) -> bool:
    """Rename the extracted ``tmp`` to the run's ``folder``; False when the folder is there
    already (an import of the same pack, at the same time or stopped before its row: see
    :func:`_already`). The rename is atomic, so of two imports at once one creates it."""
    try:
        os.rename(tmp, folder)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and folder.is_dir():
            return False
        raise PackError(f"cannot write {folder} ({paths.why_not(e, folder)}); "
                        f"{paths.remedy(e)}") from None
    return True


def _already(store: Store, record: RunRecord, folder: Path, contents: Contents
             ) -> Imported | None:
    """The run, when the store (or its folder) has it already; None when it is new.

    Raises:
        PackError: the store or the runs folder holds something else under the run's id.
    """
    try:
        held = store.get(record.run_id)
    except ZooError:
        held = None
    if held is not None and held.run_id != record.run_id:
        held = None  # a prefix of another run
    if held is None:
        if folder.exists() and provenance(folder).get("manifest_sha256") \
                != contents.manifest_sha256:
            raise PackError(f"{folder} exists but is not this pack's run: move it aside, then "
                            "import again")
        return None  # new, or its folder was written by an import that stopped before the row
    if provenance(Path(held.run_dir)).get("manifest_sha256") == contents.manifest_sha256:
        _add_epochs(store, record.run_id, Path(held.run_dir))
        return Imported(store.get(record.run_id), already=True, note="imported before")
    same = {f: getattr(held, f) for f in ("model", "dataset", "config_id", "seed",
                                           "test_accuracy")}
    if same == {f: getattr(record, f) for f in same}:
        return Imported(held, already=True, note="the run this pack was made from")
    raise PackError(f"the results store {store.name} holds another run with the id "
                    f"{record.run_id}: remove it (zoo runs rm {record.run_id}) to import this pack")


def _add_to_store(store: Store, record: RunRecord, folder: Path, created: bool) -> RunRecord:
    """The run's row, once its folder is in place; its epochs after it. A row that cannot be
    written takes the folder with it when this import ``created`` it (and only then: a
    failed import removes only what it created), so that nothing half-imported is left."""
    row = dataclasses.replace(record, run_dir=str(folder), tags=[IMPORTED_TAG], pid=None,
                              owner_started="", heartbeat_at=None)
    try:
        store.create_run(row)
    except BaseException:
        if created and not _held(store, record.run_id):  # else another import's row names it
            shutil.rmtree(folder, ignore_errors=True)
        raise
    _add_epochs(store, record.run_id, folder)
    return store.get(record.run_id)


def _held(store: Store, run_id: str) -> bool:
    """Whether the store holds a run with exactly this id (False when it cannot be read)."""
    try:
        return store.get(run_id).run_id == run_id
    except ZooError:
        return False


def _add_epochs(store: Store, run_id: str, folder: Path) -> None:
    """The pack's epoch rows (``epochs.json`` in the run's folder) the store lacks: all of
    them, or those an interrupted import did not write."""
    try:
        epochs = json.loads((folder / EPOCHS).read_text())
    except (OSError, ValueError):
        return
    have = {e["epoch"] for e in store.epochs(run_id)}
    for row in epochs:
        if row["epoch"] not in have:
            store.add_epoch(run_id, row["epoch"], **{k: v for k, v in row.items() if k != "epoch"})

