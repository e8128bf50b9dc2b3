"""Packs: a completed run in one file, to hand on, publish and import (``zoo pack``,
``zoo unpack``).

A pack is a zip archive (``.zoopack``) whose members are those of a run folder plus the run's
record: ``manifest.json`` (every other member's sha256 and size), ``run.json`` (the store's
record and where it was packed), ``epochs.json`` (the store's epoch rows), ``config.json``
(settings, data checksums, versions), ``metrics.json``, ``checkpoint.json``, the best
checkpoint's files under ``ckpt/``, by default the model's own variables only (no optimizer
state), and ``predictions.npz`` (every test image's prediction) when the run has it. The manifest's own sha256 is the archive's comment, ``zoopack 1 manifest-sha256=HEX``,
so that a changed byte anywhere is found and named. That catches damage and careless edits;
a pack's authenticity is its file's sha256, which a published pack declares (registry.toml
or a plugin's registration) and ``zoo pull`` checks before anything is read.

Importing never writes outside its run folder: only the member names a pack can have are
accepted (no absolute paths, ``..``, links, devices or duplicates; a zip archive has no hard
links), sizes are bounded, everything is extracted into a temporary folder beside the target,
verified, then renamed into place, and only then is the run added to the store. Nothing here
imports TensorFlow, except :func:`pack` when it leaves the optimizer state out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core import __version__, paths
from zoo_core.errors import ZooError
from zoo_core.paths import RunFiles
from zoo_core.store.records import RESERVED_RUN_IDS, RunRecord, utc_now
from zoo_core.store import Store

EXTENSION = ".zoopack"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RUN = "run.json"  # the store's record of the run, and where and when it was packed
EPOCHS = "epochs.json"  # the store's epoch rows
IMPORTED = "imported.json"  # written into an imported run's folder: where it came from
_COMMENT = re.compile(rb"zoopack (\d+) manifest-sha256=([0-9a-f]{64})\Z")
_JSON_MEMBERS = (RUN, EPOCHS, RunFiles.CONFIG, RunFiles.METRICS, RunFiles.CHECKPOINT_INDEX)
_CKPT_MEMBER = re.compile(rf"{RunFiles.CHECKPOINTS}/best-[0-9]{{1,9}}"
                          r"\.(index|data-[0-9]{5}-of-[0-9]{5})\Z")
# Optional members: carried when the run folder has them (packs made before had none).
_DATA_MEMBERS = (RunFiles.TEST_PREDICTIONS,)
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
# Against zip bombs and runaway files: the most a pack may hold.
MAX_MEMBERS = 64
MAX_JSON_BYTES = 16 << 20
MAX_TOTAL_BYTES = 2 << 30
MAX_RATIO = 200  # uncompressed / compressed size of one member (weights hardly compress)
_CHUNK = 1 << 16
# What reading a damaged member raises: zipfile's bad CRC, zlib's broken stream, a cut file.
_DAMAGED = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError)


class PackError(ZooError):
    """A pack that cannot be made, or is refused on import: one line naming the file, the
    member at fault and what to do."""


# -- making a pack -------------------------------------------------------------------------------


@dataclass
class Packed:
    """What :func:`pack` wrote: the file, its size and sha256, and the run's facts a
    published pack's declaration repeats (``config_id``, ``test_accuracy``)."""

    path: Path
    size: int
    sha256: str
    record: RunRecord
    members: int
    checkpoint_bytes: int  # the checkpoint's files as packed
    full_checkpoint_bytes: int  # the same with the optimizer's state, as the run folder has it


def pack(store: Store, run_id: str, target: Path, *, optimizer_state: bool = False) -> Packed:
    """Write the completed run ``run_id`` (an id, a unique prefix or ``latest``) into the pack
    ``target``, replacing it atomically.

    Args:
        optimizer_state: keep the checkpoint as training wrote it (Adam's slots too) instead
            of the model's own variables; then no TensorFlow is needed.

    Raises:
        PackError: the run is not completed, or its folder lacks a file a pack needs.
    """
    from zoo_core.train import checkpoints  # numpy (and TensorFlow when stripping): here only

    record = store.get(run_id)
    if record.status != "completed":
        raise PackError(f"run {record.run_id} is {record.status}: only completed runs can be "
                        "packed (see `zoo runs --status completed`)")
    folder = Path(record.run_dir)
    index = checkpoints.read_index(folder) if folder.is_dir() else None
    missing = [n for n in (RunFiles.CONFIG, RunFiles.METRICS) if not (folder / n).is_file()]
    if index is None or not index.get("prefix") or missing:
        what = ", ".join(missing) or RunFiles.CHECKPOINT_INDEX
        raise PackError(f"run {record.run_id}: {folder / what} is missing, so the run cannot be "
                        "packed (was its folder moved or cleaned?)")
    best = folder / index["prefix"]
    full = _checkpoint_files(best)
    with tempfile.TemporaryDirectory(prefix=".zoopack-", dir=_writable(target.parent)) as tmp:
        files = full
        if not optimizer_state:
            checkpoints.write_weights_only(best, Path(tmp) / best.name)
            files = _checkpoint_files(Path(tmp) / best.name)
        members = {
            RUN: _json_bytes({"format": "zoopack", "version": FORMAT_VERSION,
                              "record": _portable(record), "packed": _here(record)}),
            EPOCHS: _json_bytes(store.epochs(record.run_id)),
            RunFiles.CONFIG: (folder / RunFiles.CONFIG).read_bytes(),
            RunFiles.METRICS: (folder / RunFiles.METRICS).read_bytes(),
            RunFiles.CHECKPOINT_INDEX: _json_bytes({
                "prefix": index["prefix"], "epoch": index.get("epoch"), "last": "",
                "optimizer_state": optimizer_state, "state": index.get("state", {})}),
        }
        ckpt = {f"{RunFiles.CHECKPOINTS}/{f.name}": f for f in files}
        ckpt.update({name: folder / name for name in _DATA_MEMBERS if (folder / name).is_file()})
        _write_zip(target, members, ckpt)
        packed_bytes = sum(f.stat().st_size for f in files)
    return Packed(target, target.stat().st_size, file_sha256(target), record,
                  len(members) + len(ckpt) + 1, packed_bytes, sum(f.stat().st_size for f in full))


def _checkpoint_files(prefix: Path) -> list[Path]:
    files = sorted(prefix.parent.glob(prefix.name + ".*"))
    if not any(f.name.endswith(".index") for f in files):
        raise PackError(f"{prefix}.index is missing, so the run cannot be packed")
    return files


def _writable(folder: Path) -> Path:
    return paths.ensure_dir(folder, "the pack's folder", PackError)


def _portable(record: RunRecord) -> dict[str, Any]:
    """The record as a pack carries it: without this machine's folder and process."""
    fields = record.to_dict()
    for key in ("run_dir", "pid", "owner_started", "heartbeat_at"):
        fields.pop(key)
    return fields


def _here(record: RunRecord) -> dict[str, Any]:
    return {"at": utc_now(), "host": socket.gethostname(), "zoo-core": __version__,
            "run_dir": record.run_dir}


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _write_zip(target: Path, members: dict[str, bytes], ckpt: dict[str, Path]) -> None:
    """The archive, through a temporary file and a rename; the manifest last, its sha256 as
    the archive's comment."""
    manifest: dict[str, dict] = {}
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(_info(name), data)
                manifest[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, path in ckpt.items():
                data = path.read_bytes()
                zf.writestr(_info(name), data)
                manifest[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            text = _json_bytes({"format": "zoopack", "version": FORMAT_VERSION,
                                "members": manifest})
            zf.writestr(_info(MANIFEST), text)
            zf.comment = (f"zoopack {FORMAT_VERSION} manifest-sha256="
                          f"{hashlib.sha256(text).hexdigest()}").encode()
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the unfinished file only
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _info(name: str) -> zipfile.ZipInfo:
    """A member as every pack writes it: a regular file, fixed date, so that packing the
    same run twice gives the same members."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


# -- reading and checking a pack -----------------------------------------------------------------


@dataclass
class Contents:
    """A pack whose every member verified: its manifest's sha256 (what identifies it), its
    run record, and the member names."""

    manifest_sha256: str
    run: dict[str, Any]
    names: list[str]


def read(path: Path, extract_to: Path | None = None) -> Contents:
    """Check the pack ``path`` whole: member names and kinds, sizes, the manifest against the
    archive's comment, every member against the manifest; with ``extract_to`` (an empty
    folder), write the members there as they are checked.

    Raises:
        PackError: naming the file, the member at fault and what is wrong with it.
    """
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise PackError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise PackError(f"{path}: not a zoo pack (not a readable zip archive: {e})") from None
    with zf:
        infos = _checked_infos(path, zf)
        found = _COMMENT.match(zf.comment)
        if not found or int(found.group(1)) != FORMAT_VERSION:
            raise PackError(f"{path}: not a zoo pack of format {FORMAT_VERSION} (its comment "
                            "does not carry the manifest's sha256); was it made by `zoo pack`?")
        if MANIFEST not in infos:
            raise PackError(f"{path}: member {MANIFEST} is missing")
        text = _member_bytes(path, zf, infos[MANIFEST])
        if hashlib.sha256(text).hexdigest() != found.group(2).decode():
            raise PackError(f"{path}: member {MANIFEST} was changed: its sha256 differs from the "
                            "one the pack records; get the pack again")
        listed = _manifest(path, text)
        for name in sorted(set(infos) - set(listed) - {MANIFEST}):
            raise PackError(f"{path}: member {name} is not in the pack's manifest")
        for name in sorted(set(listed) - set(infos)):
            raise PackError(f"{path}: member {name} is in the manifest but missing")
        for name in sorted(listed):
            _check_member(path, zf, infos[name], listed[name], extract_to)
        run = _run(path, zf, infos)
    return Contents(found.group(2).decode(), run, sorted(listed))


def _checked_infos(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The members by name, each refused unless it is a file a pack has, within bounds."""
    infos: dict[str, zipfile.ZipInfo] = {}
    entries = zf.infolist()
    if len(entries) > MAX_MEMBERS:
        raise PackError(f"{path}: {len(entries)} members, more than a pack has ({MAX_MEMBERS})")
    total = 0
    for info in entries:
        name = info.filename
        problem = _name_problem(info)
        if problem:
            raise PackError(f"{path}: member {name!r} refused: {problem}")
        if name in infos:
            raise PackError(f"{path}: member {name!r} refused: it appears twice")
        limit = MAX_JSON_BYTES if name in (*_JSON_MEMBERS, MANIFEST) else MAX_TOTAL_BYTES
        total += info.file_size
        if info.file_size > limit or total > MAX_TOTAL_BYTES or (
                info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise PackError(f"{path}: member {name!r} refused: {info.file_size:,} bytes "
                            f"uncompressed from {info.compress_size:,}, beyond what a pack holds")
        infos[name] = info
    return infos


def _name_problem(info: zipfile.ZipInfo) -> str:
    """Why a member cannot be part of a run folder ("" when it can)."""
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            return "it is a symbolic link"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return "it is a device, pipe or socket, not a file"
        if kind and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            return "it is not a regular file"
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "its path leads out of the run folder ('..')"
    if info.is_dir():
        return "it is a folder"
    if name not in (MANIFEST, *_JSON_MEMBERS, *_DATA_MEMBERS) and not _CKPT_MEMBER.match(name):
        return "not a file a pack holds"
    return ""


def _member_bytes(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except _DAMAGED as e:  # a bad CRC, a broken deflate stream, a cut file
        raise PackError(f"{path}: member {info.filename} is damaged ({e}); get the pack "
                        "again") from None
    if len(data) != info.file_size:
        raise PackError(f"{path}: member {info.filename} is damaged (its size is wrong)")
    return data


def _manifest(path: Path, text: bytes) -> dict[str, dict]:
    try:
        manifest = json.loads(text)
        members = manifest["members"]
        assert manifest.get("format") == "zoopack" and isinstance(members, dict)
        assert all(isinstance(m, dict) and isinstance(m.get("sha256"), str)
                   and isinstance(m.get("size"), int) for m in members.values())
    except (ValueError, KeyError, TypeError, AssertionError):
        raise PackError(f"{path}: member {MANIFEST} is not a zoo pack's manifest") from None
    return members


def _check_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, expected: dict,
                  extract_to: Path | None) -> None:
    """Stream one member, checking its size and sha256 (and writing it, when extracting)."""
    name = info.filename
    digest, size = hashlib.sha256(), 0
    out = None
    if extract_to is not None:
        target = extract_to / name
        target.parent.mkdir(exist_ok=True)
        out = os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                | getattr(os, "O_NOFOLLOW", 0), 0o644), "wb")
    try:
        with zf.open(info) as f:
            while chunk := f.read(_CHUNK):
                size += len(chunk)
                if size > expected["size"]:
                    break
                digest.update(chunk)
                if out is not None:
                    out.write(chunk)
    except _DAMAGED as e:
        if out is not None and isinstance(e, OSError) and e.errno is not None:  # the disk
            raise PackError(f"cannot write {extract_to / name} ({paths.why_not(e)}); "
                            f"{paths.remedy(e)}") from None
        raise PackError(f"{path}: member {name} is damaged ({e}); get the pack again") from None
    finally:
        if out is not None:
            out.close()
    if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
        raise PackError(f"{path}: member {name} was changed: its sha256 differs from the "
                        "manifest's; get the pack again")


def _run(path: Path, zf: zipfile.ZipFile, infos: dict) -> dict[str, Any]:
    """run.json, checked: a completed run's record with a safe id, and its checkpoint."""
    try:
        run = json.loads(_member_bytes(path, zf, infos[RUN]))
        index = json.loads(_member_bytes(path, zf, infos[RunFiles.CHECKPOINT_INDEX]))
        record = RunRecord(**{**run["record"], "run_dir": ""})
        prefix = index["prefix"]
    except KeyError as e:
        raise PackError(f"{path}: member {e.args[0]} is missing") from None
    except (ValueError, TypeError):
        raise PackError(f"{path}: member {RUN} does not hold a run's record") from None
    if not _RUN_ID.match(record.run_id) or record.status != "completed":
        raise PackError(f"{path}: member {RUN} does not hold a completed run with a valid id")
    if record.run_id in RESERVED_RUN_IDS:
        raise PackError(f"{path}: member {RUN} holds a run whose id is {record.run_id!r}, a "
                        "word commands take for something else: refused")
    if f"{prefix}.index" not in infos:
        raise PackError(f"{path}: member {prefix}.index is missing")
    return run


# -- importing a pack: zoo_core.serving.imports.unpack --------------------------------------------


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def provenance(folder: Path) -> dict[str, Any]:
    """An imported run's ``imported.json`` (where it came from); {} for a run trained here."""
    try:
        found = json.loads((folder / IMPORTED).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
