"""The registry: registry.toml's catalogue merged with what plugins registered.

``registry.toml`` is read from ``--registry``/``ZOO_REGISTRY`` when given, else the
copy packaged with zoo-core. Structural mistakes in it are :class:`RegistryError`
naming the file, the entry and the fix. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from zoo_core.catalogue import plugins as plugins_mod
from zoo_core.errors import HParamError, RegistryError, UnknownNameError, UsageError
from zoo_core.catalogue.specs import FILE_ROLES, TRAINER_HPARAMS, DatasetSpec, HParam, ModelSpec, short_repr

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA = 1
_TOP_KEYS = {"schema", "datasets", "models"}
_MODEL_KEYS = {"plugin", "summary", "hparams", "datasets", "reference"}
_DATASET_KEYS = {"summary", "classes", "image_shape", "validation", "split_seed", "urls",
                 "system_dirs", "files"}
_FILE_KEYS = {"file", "sha256", "md5_gz"}
_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")
_FILE_NAME = re.compile(r"[^/\\\0]+\Z")
_URL_SCHEMES = ("http", "https", "file")


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


@dataclass
class Catalogue:
    path: Path
    models: dict[str, CatalogueModel]
    datasets: dict[str, DatasetSpec]


def _where(path: Path, entry: str) -> str:
    if not entry.isprintable():  # a quoted TOML key may hold a newline: keep to one line
        entry = short_repr(entry)
    return f"{path}: [{entry}]"


def _expect(path, entry, key, value, type_, what):
    if not isinstance(value, type_) or (isinstance(value, bool) and type_ is not bool):
        raise RegistryError(f"{_where(path, entry)} {key} must be {what}, got {short_repr(value)}")
    return value


def _unknown_keys(path, entry, table: dict, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise RegistryError(
            f"{_where(path, entry)} unknown key {short_repr(extra[0])}; allowed keys: "
            + ", ".join(sorted(allowed))
        )


def read_catalogue(path: Path | None = None) -> Catalogue:
    """Parse and structurally validate a registry file."""
    path = Path(path) if path is not None else default_registry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"registry file {path} does not exist: check --registry / ZOO_REGISTRY") from None
    except UnicodeDecodeError:
        raise RegistryError(f"registry file {path} is not UTF-8 text: is it the right file? "
                            "(check --registry / ZOO_REGISTRY)") from None
    except OSError as e:
        raise RegistryError(f"registry file {path} cannot be read ({e.strerror or e}): "
                            "check --registry / ZOO_REGISTRY") from None
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
            if not _NAME.match(name):
                raise RegistryError(
                    f"{_where(path, kind + '.' + name)} {kind[:-1]} name {short_repr(name)} is invalid: use "
                    "lower-case letters, digits, '-' and '_', starting with a letter"
                )
    datasets = {name: _dataset(path, name, t) for name, t in datasets_t.items()}
    models = {name: _model(path, name, t) for name, t in models_t.items()}
    return Catalogue(path=path, models=models, datasets=datasets)


def _table(path, entry, value) -> dict:
    return _expect(path, entry, "the entry", value, dict, "a table")


def _dataset(path: Path, name: str, t: Any) -> DatasetSpec:
    entry = f"datasets.{name}"
    t = _table(path, entry, t)
    _unknown_keys(path, entry, t, _DATASET_KEYS)
    for key in ("summary", "classes", "image_shape", "files"):
        if key not in t:
            raise RegistryError(f"{_where(path, entry)} is missing {key!r}")
    summary = _expect(path, entry, "summary", t["summary"], str, "a string")
    classes = _expect(path, entry, "classes", t["classes"], list, "a list of class names")
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise RegistryError(f"{_where(path, entry)} classes must be a list of at least two names")
    shape = _expect(path, entry, "image_shape", t["image_shape"], list, "[height, width, channels]")
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise RegistryError(f"{_where(path, entry)} image_shape must be [height, width, channels]")
    validation = _expect(path, entry, "validation", t.get("validation", 5000), int, "an integer")
    split_seed = _expect(path, entry, "split_seed", t.get("split_seed", 0), int, "an integer")
    if validation < 1:
        raise RegistryError(f"{_where(path, entry)} validation must be at least 1")
    if split_seed < 0:
        raise RegistryError(f"{_where(path, entry)} split_seed must be 0 or more")
    urls = _expect(path, entry, "urls", t.get("urls", []), list, "a list of base URLs")
    for url in urls:
        if not isinstance(url, str) or _scheme(url) not in _URL_SCHEMES:
            raise RegistryError(
                f"{_where(path, entry)} urls must be http://, https:// or file:// base URLs, "
                f"got {short_repr(url)}"
            )
    dirs = _expect(path, entry, "system_dirs", t.get("system_dirs", []), list, "a list of folders")
    if not all(isinstance(d, str) and d and "\0" not in d for d in dirs):
        raise RegistryError(f"{_where(path, entry)} system_dirs must be a list of folder paths")
    files_t = _table(path, f"{entry}.files", t["files"])
    _unknown_keys(path, f"{entry}.files", files_t, set(FILE_ROLES))
    files = {}
    for role in FILE_ROLES:
        where = _where(path, f"{entry}.files.{role}")
        if role not in files_t:
            raise RegistryError(f"{_where(path, entry + '.files')} is missing {role!r}")
        f = dict(_table(path, f"{entry}.files.{role}", files_t[role]))
        _unknown_keys(path, f"{entry}.files.{role}", f, _FILE_KEYS)
        file_name = f.get("file")
        if (not isinstance(file_name, str) or not _FILE_NAME.match(file_name)
                or file_name in (".", "..")):
            raise RegistryError(
                f'{where} needs file = "NAME", a plain file name, got {short_repr(file_name)}')
        if not (f.get("sha256") or f.get("md5_gz")):
            raise RegistryError(
                f"{where} needs sha256 (of the decompressed "
                "bytes) or md5_gz (of the upstream .gz), so the file can be verified"
            )
        for key, digits in (("sha256", 64), ("md5_gz", 32)):
            if key in f:
                value = f[key]
                if not isinstance(value, str) or not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", value):
                    raise RegistryError(f"{where} {key} must be {digits} hex digits, got {short_repr(value)}")
                f[key] = value.lower()
        files[role] = f
    return DatasetSpec(
        name=name, summary=summary, classes=tuple(classes), image_shape=tuple(shape),
        validation=validation, split_seed=split_seed, files=files,
        urls=tuple(urls), system_dirs=tuple(dirs), plugin="registry.toml",
    )


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
            raise RegistryError(f"{_where(path, entry)} is missing {key!r}")
    plugin = _expect(path, entry, "plugin", t["plugin"], str, "a distribution name")
    if not plugin.strip():
        raise RegistryError(f"{_where(path, entry)} plugin must be a distribution name, got ''")
    summary = _expect(path, entry, "summary", t["summary"], str, "a string")
    hparams = _table(path, f"{entry}.hparams", t.get("hparams", {}))
    per_ds = _table(path, f"{entry}.datasets", t.get("datasets", {}))
    for ds, hp in per_ds.items():
        _table(path, f"{entry}.datasets.{ds}", hp)
    reference = _table(path, f"{entry}.reference", t.get("reference", {}))
    for ds, ref in reference.items():
        _reference(path, f"{entry}.reference.{ds}", ref)
    return CatalogueModel(name, plugin, summary, dict(hparams), dict(per_ds), dict(reference))


_REFERENCE_KEYS = {"config_id", "test_accuracy", "test_accuracy_std", "seeds", "train_seconds",
                   "command"}


def _reference(path: Path, entry: str, ref: Any) -> None:
    """A measured reference result: what the leaderboard showed for the default settings."""
    ref = _table(path, entry, ref)
    _unknown_keys(path, entry, ref, _REFERENCE_KEYS)
    for key in ("config_id", "test_accuracy", "command"):
        if key not in ref:
            raise RegistryError(f"{_where(path, entry)} is missing {key!r}")
    _expect(path, entry, "config_id", ref["config_id"], str, "the leaderboard's config id")
    _expect(path, entry, "command", ref["command"], str, "the command that reproduces it")
    for key in ("test_accuracy", "test_accuracy_std", "train_seconds"):
        if key in ref:
            value = ref[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                    key == "test_accuracy" and value > 1):
                raise RegistryError(f"{_where(path, entry)} {key} must be a non-negative number"
                                    f"{' (a fraction, at most 1)' if key == 'test_accuracy' else ''}"
                                    f", got {value!r}")
    seeds = ref.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                              for x in seeds):
        raise RegistryError(f"{_where(path, entry)} seeds must be a list of integers")


@dataclass
class ModelRow:
    """One line of ``zoo list``: a model from the catalogue, a plugin, or both."""

    name: str
    plugin: str
    summary: str
    datasets: list[str]
    status: str  # installed | not installed | missing
    hint: str = ""
    spec: ModelSpec | None = None


@dataclass
class Resolved:
    """A model and dataset with the merged settings for one run."""

    model: ModelSpec
    dataset: DatasetSpec
    hparams: dict[str, Any]  # model hyperparameters (declared by the plugin)
    trainer: dict[str, Any]  # trainer settings (epochs, lr, ...)
    sources: dict[str, str]  # where each value came from

    @property
    def config(self) -> dict[str, Any]:
        return {**self.trainer, **self.hparams}


class Zoo:
    """The registry as the rest of the core sees it."""

    def __init__(self, catalogue: Catalogue, plugin_set: plugins_mod.PluginSet):
        self.catalogue = catalogue
        self.plugins = plugin_set
        self.datasets: dict[str, DatasetSpec] = dict(catalogue.datasets)
        for name, ds in plugin_set.datasets.items():
            if name in self.datasets:
                for report in plugin_set.reports:
                    if name in report.datasets:
                        report.error = (
                            f"dataset {name!r} is already in {catalogue.path}; the plugin's "
                            "registration is ignored"
                        )
                continue
            self.datasets[name] = ds

    @property
    def models(self) -> dict[str, ModelSpec]:
        return self.plugins.models

    def rows(self, pattern: str | None = None) -> list[ModelRow]:
        """Every model the catalogue lists or a plugin registers, sorted by name."""
        rows = {}
        installed = {r.label for r in self.plugins.reports if r.status == "ok"}
        for name, cm in self.catalogue.models.items():
            spec = self.models.get(name)
            if spec is not None:
                status, hint = "installed", ""
            elif cm.plugin in installed:
                status, hint = "missing", f"{cm.plugin} is installed but does not register {name!r}"
            else:
                status = "not installed"
                hint = f"pip install {cm.plugin}  (from a checkout: pip install -e plugins/{cm.plugin})"
            rows[name] = ModelRow(
                name, cm.plugin, cm.summary, sorted(cm.datasets) or ["any"], status, hint, spec
            )
        for name, spec in self.models.items():
            if name not in rows:
                rows[name] = ModelRow(name, spec.plugin, spec.summary, ["any"], "installed", "", spec)
        out = [rows[k] for k in sorted(rows)]
        if pattern:
            out = [r for r in out if fnmatch.fnmatchcase(r.name, pattern)]
        return out

    def model(self, name: str) -> ModelSpec:
        if name in self.models:
            return self.models[name]
        cm = self.catalogue.models.get(name)
        if cm is not None:
            failed = [r for r in self.plugins.reports if r.label == cm.plugin and r.status != "ok"]
            if failed:
                raise UsageError(
                    f"model {name!r} comes from plugin {cm.plugin}, which failed to load: "
                    f"{failed[0].error} (see `zoo plugins`)"
                )
            raise UsageError(
                f"model {name!r} is provided by plugin {cm.plugin}, which is not installed: "
                f"pip install {cm.plugin} (from a checkout: pip install -e plugins/{cm.plugin})"
            )
        raise UnknownNameError("model", name, set(self.models) | set(self.catalogue.models),
                               hint="see `zoo list`")

    def dataset(self, name: str) -> DatasetSpec:
        if name in self.datasets:
            return self.datasets[name]
        raise UnknownNameError("dataset", name, self.datasets, hint="see `zoo datasets`")

    def resolve(self, model: str, dataset: str, overrides: dict[str, Any] | None = None,
                raw_overrides: dict[str, str] | None = None) -> Resolved:
        """Merge settings: plugin defaults < registry < command line.

        Args:
            overrides: typed values (from options such as ``--epochs``).
            raw_overrides: strings from ``--set key=value``, parsed by the declared type.
        """
        spec = self.model(model)
        ds = self.dataset(dataset)
        declared: dict[str, HParam] = {**TRAINER_HPARAMS, **spec.hparams}
        values = {k: p.default for k, p in declared.items()}
        sources = {k: ("trainer default" if k in TRAINER_HPARAMS else f"{spec.plugin} default")
                   for k in declared}
        cm = self.catalogue.models.get(model)
        if cm is not None:
            layers = [(cm.hparams, f"models.{model}.hparams")]
            if dataset in cm.datasets:
                layers.append((cm.datasets[dataset], f"models.{model}.datasets.{dataset}"))
            for table, entry in layers:
                for key, value in table.items():
                    if key not in declared:
                        raise RegistryError(
                            f"{_where(self.catalogue.path, entry)} sets unknown hyperparameter "
                            f"{short_repr(key)}; {model} accepts: {', '.join(sorted(declared))}"
                        )
                    try:
                        values[key] = declared[key].check(key, value)
                    except HParamError as e:
                        raise RegistryError(f"{_where(self.catalogue.path, entry)} {e}") from None
                    sources[key] = f"{self.catalogue.path.name} [{entry}]"
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            values[key] = _declared(declared, key, model).check(key, value)
            sources[key] = "command line"
        for key, text in (raw_overrides or {}).items():
            values[key] = _declared(declared, key, model).parse(key, text)
            sources[key] = "command line"
        trainer = {k: values[k] for k in TRAINER_HPARAMS}
        hparams = {k: values[k] for k in spec.hparams}
        return Resolved(spec, ds, hparams, trainer, sources)


def _declared(declared: dict[str, HParam], key: str, model: str) -> HParam:
    if key not in declared:
        valid = ", ".join(f"{k} ({p.type_name})" for k, p in sorted(declared.items()))
        raise HParamError(f"unknown hyperparameter {short_repr(key)} for {model}; valid: {valid}")
    return declared[key]


def parse_set_options(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse ``--set key=value`` strings into a dict (values stay strings)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {short_repr(item)}: expected KEY=VALUE, e.g. --set dropout=0.3")
        out[key] = value
    return out


def open_zoo(registry: Path | str | None = None, plugins=None, entry_points: bool = True) -> Zoo:
    """Read the registry and load the plugins."""
    catalogue = read_catalogue(Path(registry) if registry else None)
    return Zoo(catalogue, plugins_mod.load(plugins, entry_points=entry_points))
