"""Reading registry.toml: the catalogue of models and datasets the zoo knows of.

The file is the path the caller gives, else ``$ZOO_REGISTRY``, else the copy packaged
with zoo-core. :func:`read_catalogue` parses it and checks its structure; a mistake is a
:class:`RegistryError` naming the file, the entry and the fix. Which installed plugin
provides each model is :mod:`zoo_core.catalogue.zoo`'s business. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from zoo_core.catalogue.specs import FILE_ROLES, NAME_RULE, DatasetSpec, valid_name
from zoo_core.catalogue.weights import parse_weights
from zoo_core.errors import RegistryError, setting, short_repr

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA = 1
_TOP_KEYS = {"schema", "datasets", "models"}
_MODEL_KEYS = {"plugin", "summary", "hparams", "datasets", "reference", "weights"}
_DATASET_KEYS = {"summary", "classes", "image_shape", "validation", "split_seed", "urls",
                 "system_dirs", "files", "archive"}
_FILE_KEYS = {"file", "sha256", "md5_gz"}
_ARCHIVE_KEYS = {"format", "file", "sha256", "folder"}
ARCHIVE_FORMATS = ("cifar-python",)  # what zoo_core.data.archives reads
_FILE_NAME = re.compile(r"[^/\\\0]+\Z")
_URL_SCHEMES = ("http", "https", "file")
# What to check when the registry file cannot be read.
_WHICH_FILE = f"check {setting('registry')} / ZOO_REGISTRY"
MAX_REGISTRY_BYTES = 4 << 20  # the packaged registry is about 10 KiB


def default_registry_path() -> Path:
    """The registry file in use: $ZOO_REGISTRY, else the packaged registry.toml."""
    env = os.environ.get("ZOO_REGISTRY")
    if env:
        return Path(env).expanduser()
    return Path(str(resources.files("zoo_core").joinpath("registry.toml")))


@dataclass
class CatalogueModel:
    """A model as registry.toml lists it."""

    name: str
    plugin: str
    summary: str
    hparams: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)  # dataset -> catalogue.weights.Weights


@dataclass
class Catalogue:
    """What one registry file lists: its models and its (IDX) datasets, by name."""

    path: Path
    models: dict[str, CatalogueModel]
    datasets: dict[str, DatasetSpec]


def where(path: Path, entry: str) -> str:
    """``PATH: [entry]``, how a message names a table of the registry file."""
    if not entry.isprintable():  # a quoted TOML key may hold a newline: keep to one line
        entry = short_repr(entry)
    return f"{path}: [{entry}]"


def _expect(path, entry, key, value, type_, what):
    if not isinstance(value, type_) or (isinstance(value, bool) and type_ is not bool):
        raise RegistryError(f"{where(path, entry)} {key} must be {what}, got {short_repr(value)}")
    return value


def _unknown_keys(path, entry, table: dict, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise RegistryError(
            f"{where(path, entry)} unknown key {short_repr(extra[0])}; allowed keys: "
            + ", ".join(sorted(allowed))
        )


def read_catalogue(path: Path | None = None) -> Catalogue:
    """Parse and structurally validate a registry file."""
    path = Path(path) if path is not None else default_registry_path()
    text = _read_text(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RegistryError(f"{path}: invalid TOML: {e}") from None
    except RecursionError:
        raise RegistryError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except ValueError as e:  # e.g. an integer with thousands of digits
        raise RegistryError(f"{path}: invalid TOML: {e}") from None
    _unknown_keys(path, "top level", doc, _TOP_KEYS)
    schema = doc.get("schema", SCHEMA)
    if type(schema) is not int:
        raise RegistryError(f"{path}: schema must be an integer ({SCHEMA}), got {short_repr(schema)}")
    if schema != SCHEMA:
        raise RegistryError(
            f"{path}: schema = {short_repr(schema)}, but this zoo-core reads schema {SCHEMA}; "
            "upgrade zoo-core or fix the file"
        )
    datasets_t = _expect(path, "datasets", "datasets", doc.get("datasets", {}), dict, "a table")
    models_t = _expect(path, "models", "models", doc.get("models", {}), dict, "a table")
    for kind, table in (("datasets", datasets_t), ("models", models_t)):
        for name in table:
            if not valid_name(name):
                raise RegistryError(f"{where(path, kind + '.' + name)} {kind[:-1]} name "
                                    f"{short_repr(name)} is invalid: {NAME_RULE}")
    datasets = {name: _dataset(path, name, t) for name, t in datasets_t.items()}
    models = {name: _model(path, name, t) for name, t in models_t.items()}
    return Catalogue(path=path, models=models, datasets=datasets)


def _read_text(path: Path) -> str:
    """The registry's text: a regular file of at most MAX_REGISTRY_BYTES (not a device such
    as /dev/zero, which never ends, nor a named pipe, which may never be written)."""
    try:
        info = path.stat()  # never blocks, unlike opening a named pipe
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):  # a folder: below
            raise RegistryError(f"registry file {path} is {_kind(info.st_mode)}, not a regular "
                                f"file: give a registry.toml file ({_WHICH_FILE})")
        with path.open("rb") as f:
            data = f.read(MAX_REGISTRY_BYTES + 1)
        if len(data) > MAX_REGISTRY_BYTES:
            raise RegistryError(f"registry file {path} is larger than {MAX_REGISTRY_BYTES >> 20} "
                                f"MiB, the most a registry may be: is it the right file? "
                                f"({_WHICH_FILE})")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise RegistryError(f"registry file {path} does not exist: {_WHICH_FILE}") from None
    except UnicodeDecodeError:
        raise RegistryError(f"registry file {path} is not UTF-8 text: is it the right file? "
                            f"({_WHICH_FILE})") from None
    except OSError as e:
        raise RegistryError(f"registry file {path} cannot be read ({e.strerror or e}): "
                            f"{_WHICH_FILE}") from None


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, for a message."""
    for test, kind in ((stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _table(path, entry, value) -> dict:
    return _expect(path, entry, "the entry", value, dict, "a table")


def _dataset(path: Path, name: str, t: Any) -> DatasetSpec:
    entry = f"datasets.{name}"
    t = _table(path, entry, t)
    _unknown_keys(path, entry, t, _DATASET_KEYS)
    for key in ("summary", "classes", "image_shape"):
        if key not in t:
            raise RegistryError(f"{where(path, entry)} is missing {key!r}")
    if ("files" in t) == ("archive" in t):
        raise RegistryError(f"{where(path, entry)} needs either files (IDX files) or archive "
                            "(one archive file), not both")
    summary = _expect(path, entry, "summary", t["summary"], str, "a string")
    classes = _expect(path, entry, "classes", t["classes"], list, "a list of class names")
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise RegistryError(f"{where(path, entry)} classes must be a list of at least two names")
    shape = _expect(path, entry, "image_shape", t["image_shape"], list, "[height, width, channels]")
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise RegistryError(f"{where(path, entry)} image_shape must be [height, width, channels]")
    validation = _expect(path, entry, "validation", t.get("validation", 5000), int, "an integer")
    split_seed = _expect(path, entry, "split_seed", t.get("split_seed", 0), int, "an integer")
    if validation < 1:
        raise RegistryError(f"{where(path, entry)} validation must be at least 1")
    if split_seed < 0:
        raise RegistryError(f"{where(path, entry)} split_seed must be 0 or more")
    urls = _expect(path, entry, "urls", t.get("urls", []), list, "a list of base URLs")
    for url in urls:
        if not isinstance(url, str) or _scheme(url) not in _URL_SCHEMES:
            raise RegistryError(
                f"{where(path, entry)} urls must be http://, https:// or file:// base URLs, "
                f"got {short_repr(url)}"
            )
    dirs = _expect(path, entry, "system_dirs", t.get("system_dirs", []), list, "a list of folders")
    if not all(isinstance(d, str) and d and "\0" not in d for d in dirs):
        raise RegistryError(f"{where(path, entry)} system_dirs must be a list of folder paths")
    files = _files(path, entry, t["files"]) if "files" in t else {}
    archive = _archive(path, entry, t["archive"]) if "archive" in t else {}
    return DatasetSpec(
        name=name, summary=summary, classes=tuple(classes), image_shape=tuple(shape),
        validation=validation, split_seed=split_seed, files=files, archive=archive,
        urls=tuple(urls), system_dirs=tuple(dirs), plugin="registry.toml",
    )


def _files(path: Path, entry: str, table: Any) -> dict[str, dict]:
    """A dataset's ``files`` table: each of :data:`FILE_ROLES` named, with a checksum."""
    files_t = _table(path, f"{entry}.files", table)
    _unknown_keys(path, f"{entry}.files", files_t, set(FILE_ROLES))
    files = {}
    for role in FILE_ROLES:
        at = where(path, f"{entry}.files.{role}")
        if role not in files_t:
            raise RegistryError(f"{where(path, entry + '.files')} is missing {role!r}")
        f = dict(_table(path, f"{entry}.files.{role}", files_t[role]))
        _unknown_keys(path, f"{entry}.files.{role}", f, _FILE_KEYS)
        file_name = f.get("file")
        if (not isinstance(file_name, str) or not _FILE_NAME.match(file_name)
                or file_name in (".", "..")):
            raise RegistryError(
                f'{at} needs file = "NAME", a plain file name, got {short_repr(file_name)}')
        if not (f.get("sha256") or f.get("md5_gz")):
            raise RegistryError(
                f"{at} needs sha256 (of the decompressed "
                "bytes) or md5_gz (of the upstream .gz), so the file can be verified"
            )
        for key, digits in (("sha256", 64), ("md5_gz", 32)):
            if key in f:
                value = f[key]
                if not isinstance(value, str) or not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", value):
                    raise RegistryError(f"{at} {key} must be {digits} hex digits, got {short_repr(value)}")
                f[key] = value.lower()
        files[role] = f
    return files


def _archive(path: Path, entry: str, table: Any) -> dict[str, str]:
    """A dataset's ``archive`` table: its format, file name, sha256 and inner folder."""
    at = where(path, f"{entry}.archive")
    a = dict(_table(path, f"{entry}.archive", table))
    _unknown_keys(path, f"{entry}.archive", a, _ARCHIVE_KEYS)
    if a.get("format") not in ARCHIVE_FORMATS:
        raise RegistryError(f"{at} format must be one of {', '.join(ARCHIVE_FORMATS)}, "
                            f"got {short_repr(a.get('format'))}")
    for key in ("file", "folder"):
        value = a.get(key)
        if not isinstance(value, str) or not _FILE_NAME.match(value) or value in (".", ".."):
            raise RegistryError(f'{at} needs {key} = "NAME", a plain name, got {short_repr(value)}')
    value = a.get("sha256")
    if not isinstance(value, str) or not re.fullmatch("[0-9a-fA-F]{64}", value):
        raise RegistryError(f"{at} sha256 (of the archive file) must be 64 hex digits, "
                            f"got {short_repr(value)}")
    a["sha256"] = value.lower()
    return a


def _scheme(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).scheme
    except ValueError:  # e.g. "http://[host/": an unbalanced IPv6 bracket
        return ""


def _model(path: Path, name: str, t: Any) -> CatalogueModel:
    entry = f"models.{name}"
    t = _table(path, entry, t)
    _unknown_keys(path, entry, t, _MODEL_KEYS)
    for key in ("plugin", "summary"):
        if key not in t:
            raise RegistryError(f"{where(path, entry)} is missing {key!r}")
    plugin = _expect(path, entry, "plugin", t["plugin"], str, "a distribution name")
    if not plugin.strip():
        raise RegistryError(f"{where(path, entry)} plugin must be a distribution name, got ''")
    summary = _expect(path, entry, "summary", t["summary"], str, "a string")
    hparams = _table(path, f"{entry}.hparams", t.get("hparams", {}))
    per_ds = _table(path, f"{entry}.datasets", t.get("datasets", {}))
    for ds, hp in per_ds.items():
        _table(path, f"{entry}.datasets.{ds}", hp)
    reference = _table(path, f"{entry}.reference", t.get("reference", {}))
    for ds, ref in reference.items():
        _reference(path, f"{entry}.reference.{ds}", ref)
    weights = parse_weights(t.get("weights", {}), lambda d: where(
        path, f"{entry}.weights" + (f".{d}" if d else "")), RegistryError)
    return CatalogueModel(name, plugin, summary, dict(hparams), dict(per_ds), dict(reference),
                          weights)


# The evidence a reference row may carry, as a run records it (docs/registry.md): the
# model's cost, counted from its graph (params, macs: tests/test_cost.py checks them), and
# where its time was measured. key -> (type, what it must be)
_REFERENCE_EVIDENCE: dict[str, tuple[type | tuple[type, ...], str]] = {
    "params": (int, "a whole number of trainable parameters"),
    "macs": (int, "a whole number of multiply-accumulates per example"),
    "examples_per_second": ((int, float), "a non-negative number"),
    "cpu": (str, "the CPU's model name"),
    "cores": (int, "a whole number of cores"),
    "tensorflow": (str, "a TensorFlow version"),
    "precision": (str, "float32 or bfloat16"),
    "git": (str, "the zoo's git revision"),
}
_REFERENCE_KEYS = {"config_id", "test_accuracy", "test_accuracy_std", "seeds", "train_seconds",
                   "command", *_REFERENCE_EVIDENCE}


def _reference(path: Path, entry: str, ref: Any) -> None:
    """A measured reference result: what the leaderboard showed for the default settings."""
    ref = _table(path, entry, ref)
    _unknown_keys(path, entry, ref, _REFERENCE_KEYS)
    for key in ("config_id", "test_accuracy", "command"):
        if key not in ref:
            raise RegistryError(f"{where(path, entry)} is missing {key!r}")
    _expect(path, entry, "config_id", ref["config_id"], str, "the leaderboard's config id")
    _expect(path, entry, "command", ref["command"], str, "the command that reproduces it")
    for key in ("test_accuracy", "test_accuracy_std", "train_seconds"):
        if key in ref:
            value = ref[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                    key == "test_accuracy" and value > 1):
                raise RegistryError(f"{where(path, entry)} {key} must be a non-negative number"
                                    f"{' (a fraction, at most 1)' if key == 'test_accuracy' else ''}"
                                    f", got {value!r}")
    seeds = ref.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                              for x in seeds):
        raise RegistryError(f"{where(path, entry)} seeds must be a list of integers")
    _reference_evidence(path, entry, ref)


def _reference_evidence(path: Path, entry: str, ref: dict) -> None:
    """The optional evidence of a reference row: of its type, numbers not negative, the
    precision one a run records."""
    for key, (type_, what) in _REFERENCE_EVIDENCE.items():
        if key not in ref:
            continue
        value = _expect(path, entry, key, ref[key], type_, what)
        if (not isinstance(value, str) and value < 0) or (
                key == "precision" and value not in ("float32", "bfloat16")):
            raise RegistryError(f"{where(path, entry)} {key} must be {what}, "
                                f"got {short_repr(value)}")
