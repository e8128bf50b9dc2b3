"""Finding and loading plugins, crash-isolated.

Plugins are modules listed under the ``zoo`` entry-point group. Each one is
imported, registered and asked for its registrations inside its own ``try``: a
plugin that fails to import, implements an unknown hook or registers something
invalid is reported and skipped, and the rest of the zoo keeps working.

``ZOO_LOAD_PLUGINS`` (a comma-separated list of entry-point or distribution names;
empty for none) limits which plugins load.

A plugin whose import hangs (a network call, a lock, an endless loop at import time) must
not hang every command: each entry point is imported, and its registration hooks called, in
a daemon thread given ``ZOO_PLUGIN_TIMEOUT`` seconds (default 10). One that does not finish
in time is reported ("import did not finish within N s") and skipped; the thread is left
behind and dies with the process.
"""

from __future__ import annotations

import os
import re
import threading
import types
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Mapping

import pluggy

from zoo_core.catalogue import hookspecs
from zoo_core.catalogue.specs import NAME_RULE, DatasetSpec, ModelSpec, valid_name
from zoo_core.catalogue.weights import parse_weights
from zoo_core.errors import HParamError, PluginError, UsageError
from zoo_core.settings import RETIRED, TRAINER_HPARAMS, as_hparam

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
_HPARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
DEFAULT_TIMEOUT_S = 10.0
# Imports that timed out, by entry point (name, value): a later load() in the same process
# does not wait for them again while they are still stuck.
_STUCK: dict[tuple[str, str], threading.Thread] = {}


@dataclass
class PluginReport:
    """What happened when one plugin was loaded."""

    name: str  # entry-point name (or the module name for hand-registered plugins)
    dist: str = ""  # distribution that provides it
    version: str = ""
    module: str = ""
    status: str = "ok"  # ok | failed
    error: str = ""
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # registrations refused, one line each

    @property
    def label(self) -> str:
        """The distribution (what ``pip install`` names), or the plugin's name."""
        return self.dist or self.name

    @property
    def who(self) -> str:
        """The plugin as messages name it: its entry point and module, and its distribution
        (one distribution may list several plugin modules)."""
        if self.dist:
            return f"{self.name} ({self.module} in {self.dist})"
        return self.name


@dataclass
class PluginSet:
    """Everything the loaded plugins registered."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    reports: list[PluginReport] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None  # for calling hooks such as zoo_run_finished

    @property
    def failures(self) -> list[PluginReport]:
        return [r for r in self.reports if r.status != "ok"]

    def warnings(self) -> list[str]:
        """One line per plugin that did not load and per refused registration."""
        lines = [f"plugin {r.who} did not load: {r.error}" for r in self.failures]
        return lines + [line for r in self.reports for line in r.refused]


def _allowed() -> set[str] | None:
    raw = os.environ.get("ZOO_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    """The ``zoo`` entry points, each once: the same distribution found twice on sys.path
    counts once, while two distributions that use one entry-point name both load (so
    neither can hide the other)."""
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen, unique = set(), []
    for ep in sorted(eps, key=lambda e: (e.name, _dist_name(e), e.value)):
        key = (ep.name, ep.value, _normal(_dist_name(ep)))
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return unique


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist else ""


def load(plugins: list[types.ModuleType | object] | None = None, *, entry_points: bool = True,
         owners: Mapping[str, str] | None = None, registry: str = "registry.toml") -> PluginSet:
    """Load plugins and collect their registrations.

    A name two plugins register is settled after every plugin has registered, so the
    outcome never depends on entry-point order: the plugin ``owners`` names keeps it,
    or, for a name no one owns, neither does. A refused registration is one line in the
    plugin's ``refused``; the plugin's other registrations stay.

    Args:
        plugins: extra plugin objects registered by hand (tests use this).
        entry_points: whether to load the installed ``zoo`` entry points.
        owners: model name -> the distribution that provides it (registry.toml's
            ``plugin``).
        registry: the file ``owners`` come from, for messages.

    Returns:
        a :class:`PluginSet`; a plugin's failures (import errors, hangs, hooks that
        raise or register junk) are in its ``reports``, never raised.

    Raises:
        UsageError: ``ZOO_PLUGIN_TIMEOUT`` is not a number of seconds.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    result = PluginSet(manager=pm)
    timeout = import_timeout()
    candidates = _import_entry_points(result, timeout) if entry_points else []
    for obj in plugins or ():
        name = getattr(obj, "__name__", type(obj).__name__)
        candidates.append((PluginReport(name=name, module=name), obj))
    claims: list[tuple[PluginReport, dict, dict]] = []
    for report, obj in candidates:
        result.reports.append(report)
        registered = _register(pm, obj, report, timeout)
        if registered is not None:
            claims.append((report, *registered))
    _settle(result, claims, owners or {}, registry)
    return result


def _normal(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _settle(result: PluginSet, claims, owners: Mapping[str, str], registry: str) -> None:
    """Commit each plugin's registrations, refusing names claimed by another plugin."""
    for index, kind, target in ((1, "model", result.models), (2, "dataset", result.datasets)):
        by_name: dict[str, list[PluginReport]] = {}
        for claim in claims:
            for name in claim[index]:
                by_name.setdefault(name, []).append(claim[0])
        specs = {(id(c[0]), name): spec for c in claims for name, spec in c[index].items()}
        for name, reports in sorted(by_name.items()):
            owner = owners.get(name) if kind == "model" else None
            if owner is not None:
                keep = [r for r in reports if _normal(r.label) == _normal(owner)]
            else:
                keep = reports if len(reports) == 1 else []
            for r in reports:
                if any(r is k for k in keep):
                    target[name] = specs[(id(r), name)]
                    getattr(r, kind + "s").append(name)
                else:
                    r.refused.append(_refusal(kind, name, r, reports, owner, registry))


def _refusal(kind: str, name: str, report: PluginReport, claimants, owner: str | None,
             registry: str) -> str:
    if owner is not None:
        return (f"{kind} {name!r} belongs to {owner} ({registry}); plugin {report.who} may "
                f"not register it and its {name!r} is refused: rename it")
    others = " and ".join(r.who for r in claimants if r is not report)
    return (f"{kind} {name!r} is registered by both {report.who} and {others}; neither is "
            "loaded: rename one, uninstall one, or choose plugins with ZOO_LOAD_PLUGINS")


def _import_entry_points(result: PluginSet, timeout: float) -> list[tuple[PluginReport, object]]:
    """Import the allowed entry points: (report, plugin object) for each one that imported;
    the reports of those that did not go straight into ``result``."""
    allowed = _allowed()
    candidates: list[tuple[PluginReport, object]] = []
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist else ""
        if allowed is not None and ep.name not in allowed and dist not in allowed:
            continue
        report = PluginReport(
            name=ep.name, dist=dist, version=ep.dist.version if ep.dist else "", module=ep.value
        )
        obj, error = _import(ep, timeout)
        if error:
            report.status, report.error = "failed", error
            result.reports.append(report)
            continue
        candidates.append((report, obj))
    return candidates


def _register(pm: pluggy.PluginManager, obj, report: PluginReport,
              timeout: float) -> tuple[dict, dict] | None:
    """Register one plugin: its (models, datasets), or None with its report marked failed."""
    try:
        hash(obj)  # pluggy narrows a hook call to one plugin by a set of the others
    except TypeError:
        report.status, report.error = "failed", (
            f"invalid plugin: a {type(obj).__name__} cannot be hashed; a plugin is a module "
            "(or an object that can be hashed)")
        return None
    try:
        # two distributions may use one entry-point name: pluggy's names must differ
        taken = pm.get_plugin(report.name) is not None
        pm.register(obj, name=f"{report.dist}:{report.name}" if taken else report.name)
        pm.check_pending()
    except Exception as e:  # unknown hook names, bad signatures
        if pm.is_registered(obj):
            pm.unregister(obj)
        report.status, report.error = "failed", f"invalid plugin: {_one_line(e)}"
        return None
    done, value, error = _in_thread(lambda: _collect(pm, obj, report),
                                    f"zoo-plugin-hooks-{report.name}", timeout)
    if done and error is None:
        return value  # type: ignore[return-value]
    pm.unregister(obj)
    report.status = "failed"
    if not done:
        report.error = (f"its registration hooks did not finish within {timeout:g} s; "
                        "fix the plugin, or raise ZOO_PLUGIN_TIMEOUT if it is only slow")
    elif isinstance(error, PluginError):  # registered junk
        report.error = _one_line(error)
    else:  # a hook raised
        report.error = f"{type(error).__name__}: {_one_line(error)}"
    return None


def import_timeout() -> float:
    """Seconds a plugin's import may take: ``$ZOO_PLUGIN_TIMEOUT``, default 10."""
    raw = os.environ.get("ZOO_PLUGIN_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 < value <= 86_400):
        raise UsageError(
            f"ZOO_PLUGIN_TIMEOUT={raw!r}: expected seconds a plugin's import may take, "
            f"a number above 0 (default {DEFAULT_TIMEOUT_S:g})"
        )
    return value


def _in_thread(fn, name: str, timeout: float) -> tuple[bool, object, BaseException | None]:
    """Run ``fn()`` in a daemon thread: (finished in time, its result, what it raised)."""
    outcome: dict[str, object] = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - isolate anything, even SystemExit
            outcome["error"] = e

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return False, thread, None
    error = outcome.get("error")
    if isinstance(error, KeyboardInterrupt):
        raise error
    return True, outcome.get("value"), error  # type: ignore[return-value]


def _import(ep: metadata.EntryPoint, timeout: float) -> tuple[object, str]:
    """Import one entry point in a daemon thread: (the object, "") or (None, why it failed)."""
    key = (ep.name, ep.value)
    stuck = _STUCK.get(key)
    if stuck is not None and stuck.is_alive():
        return None, (f"import did not finish within {timeout:g} s (still stuck since an "
                      "earlier attempt); fix the plugin or raise ZOO_PLUGIN_TIMEOUT")
    done, value, error = _in_thread(ep.load, f"zoo-plugin-import-{ep.name}", timeout)
    if not done:
        _STUCK[key] = value  # type: ignore[assignment]
        return None, (f"import did not finish within {timeout:g} s ({ep.value} hangs at import "
                      "time); fix the plugin, or raise ZOO_PLUGIN_TIMEOUT if it is only slow")
    _STUCK.pop(key, None)
    if error is not None:
        return None, f"import failed: {type(error).__name__}: {_one_line(error)}"
    return value, ""


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 300 else text[:299] + "…"


def call_hook(pm: pluggy.PluginManager, hook: str, plugin: object, **kwargs: Any) -> None:
    """Call ``plugin``'s implementations of ``hook`` with keyword arguments: the one way the
    zoo calls a hook, through pluggy's caller (``pm.hook.NAME``, narrowed to this plugin),
    which passes each implementation the arguments it names. Its errors propagate."""
    others = [other for other in pm.get_plugins() if other is not plugin]
    pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)


def call_each(pm: pluggy.PluginManager, hook: str, **kwargs: Any
              ) -> list[tuple[str, BaseException]]:
    """Call ``hook`` on every plugin in turn (:func:`call_hook`), so that one plugin's failure
    stops no other's: (plugin name, what it raised) for each one that raised."""
    failures = []
    for name, plugin in pm.list_name_plugin():
        try:
            call_hook(pm, hook, plugin, **kwargs)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - reported by the caller
            failures.append((name, e))
    return failures


def _collect(pm, obj, report: PluginReport):
    """Ask one plugin for its registrations: (models, datasets), for the caller to commit
    only if all are valid and the hooks finished in time.

    The callbacks are the ``register`` of each hook, documented (with the same
    signatures) as :class:`~zoo_core.catalogue.specs.RegisterModel` and
    :class:`~zoo_core.catalogue.specs.RegisterDataset`.
    """
    models: dict[str, ModelSpec] = {}
    datasets: dict[str, DatasetSpec] = {}

    # ``description`` is accepted because the documented signature has it; nothing shows it.
    def register_model(name, build, *, summary, hparams=None, inputs=("image",), description="",
                       defaults=None, dataset_defaults=None, weights=None):
        try:
            spec = validate_model(name, build, summary, hparams or {}, inputs)
        except PluginError as e:  # name the plugin: one distribution may hold several
            raise PluginError(f"{e} (plugin {report.who})") from None
        spec.plugin, spec.plugin_version = report.label, report.version
        spec.settings, spec.dataset_settings = validate_defaults(spec, defaults, dataset_defaults)
        spec.weights = parse_weights(
            weights or {}, lambda d: f"model {name!r} weights" + (f"[{d!r}]" if d else "")
            + f" (plugin {report.who})", PluginError)
        spec.package = getattr(obj, "__name__", "") if isinstance(obj, types.ModuleType) \
            else getattr(obj, "__module__", "")
        _check_twice("model", name, models, report)
        models[name] = spec

    def register_dataset(name, load, *, summary, classes, image_shape, validation=5000):
        spec = validate_dataset(name, load, summary, classes, image_shape, validation)
        spec.plugin, spec.plugin_version = report.label, report.version
        _check_twice("dataset", name, datasets, report)
        datasets[name] = spec

    call_hook(pm, "zoo_register_models", obj, register=register_model)
    call_hook(pm, "zoo_register_datasets", obj, register=register_dataset)
    return models, datasets


def _check_twice(kind, name, own, report) -> None:
    if name in own:
        raise PluginError(f"{report.who} registers {kind} {name!r} twice")


def validate_defaults(spec: ModelSpec, defaults, dataset_defaults
                      ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Check a registration's ``defaults`` and ``dataset_defaults`` against the trainer
    settings and the model's hyperparameters; the checked values."""
    name = spec.name
    tables = {"defaults": defaults if defaults is not None else {}}
    per_dataset = dataset_defaults if dataset_defaults is not None else {}
    if not isinstance(per_dataset, Mapping):
        raise PluginError(f"model {name!r}: dataset_defaults must be a dict of dataset name -> "
                          "{setting: value}, e.g. {'fashion': {'lr': 0.005}}")
    for dataset, table in per_dataset.items():
        if not valid_name(dataset):
            raise PluginError(f"model {name!r}: dataset_defaults names dataset {dataset!r}, "
                              f"which is not a dataset name: {NAME_RULE}")
        tables[f"dataset_defaults[{dataset!r}]"] = table
    every = {**TRAINER_HPARAMS, **spec.hparams}
    checked: dict[str, dict[str, Any]] = {}
    for where, table in tables.items():
        if not isinstance(table, Mapping):
            raise PluginError(f"model {name!r}: {where} must be a dict of setting -> value, "
                              "e.g. {'lr': 0.005, 'epochs': 20}")
        checked[where] = {}
        for key, value in table.items():
            if key not in every:
                raise PluginError(f"model {name!r}: {where} sets {key!r}, which is neither a "
                                  "trainer setting nor a declared hyperparameter; valid: "
                                  + ", ".join(every))
            try:
                checked[where][key] = every[key].check(key, value)
            except HParamError as e:
                raise PluginError(f"model {name!r}: {where}: {e}") from None
    own = checked.pop("defaults")
    return own, {d: checked[f"dataset_defaults[{d!r}]"] for d in per_dataset}


def _check_registration(kind: str, name, function, function_name: str, summary) -> None:
    """What every registration needs: a valid name, a callable and a one-line summary."""
    if not valid_name(name):
        raise PluginError(f"{kind} name {name!r} is invalid: {NAME_RULE}")
    if not callable(function):
        raise PluginError(f"{kind} {name!r}: {function_name} must be callable, "
                          f"got {type(function).__name__}")
    if not isinstance(summary, str) or not summary.strip():
        raise PluginError(f"{kind} {name!r}: give a one-line summary (summary=...)")


def validate_model(name, build, summary, hparams, inputs=("image",)) -> ModelSpec:
    """Check one model registration; raise :class:`PluginError` saying how to fix it.

    ``inputs`` is checked (a tuple of input kinds) but not kept: every model takes
    images, the only kind there is.
    """
    _check_registration("model", name, build, "the builder", summary)
    if not isinstance(hparams, dict):
        raise PluginError(f"model {name!r}: hparams must be a dict of name -> default or HParam")
    declared = {}
    for key, decl in hparams.items():
        if not isinstance(key, str) or not _HPARAM_NAME.match(key):
            raise PluginError(f"model {name!r}: hyperparameter name {key!r} is not an identifier")
        if key in TRAINER_HPARAMS or key in RETIRED:
            raise PluginError(
                f"model {name!r}: hyperparameter {key!r} is a trainer setting shared by every "
                "model" + (" (removed, but still named in every config)" if key in RETIRED
                           else "") + "; pick another name"
            )
        try:
            declared[key] = as_hparam(key, decl)
        except HParamError as e:
            raise PluginError(f"model {name!r}: {e}") from None
    if isinstance(inputs, str) or not all(isinstance(i, str) for i in inputs):
        raise PluginError(f"model {name!r}: inputs must be a tuple of input kinds, e.g. ('image',)")
    return ModelSpec(name=name, build=build, summary=summary.strip(), hparams=declared)


def validate_dataset(name, load, summary, classes, image_shape, validation) -> DatasetSpec:
    """Check one dataset registration; raise :class:`PluginError` saying how to fix it."""
    _check_registration("dataset", name, load, "load", summary)
    classes = tuple(classes) if not isinstance(classes, str) else ()
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise PluginError(f"dataset {name!r}: classes must be a list of at least two names")
    shape = tuple(image_shape) if not isinstance(image_shape, str) else ()
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise PluginError(f"dataset {name!r}: image_shape must be (height, width, channels)")
    if not isinstance(validation, int) or validation < 1:
        raise PluginError(f"dataset {name!r}: validation must be a positive number of examples")
    return DatasetSpec(
        name=name, summary=summary.strip(), classes=classes, image_shape=shape,
        validation=validation, load=load,
    )
