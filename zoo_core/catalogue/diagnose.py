"""Why a plugin is installed but not listed: near misses ``zoo plugins --diagnose`` finds.

Each finding is one line saying what is wrong and what to do:

- entry points in a group that looks like ``zoo`` but is not (``zoo.plugins``, ``zoo_models``);
- distributions that depend on zoo-core but list no ``zoo`` entry point, and plugins that
  load but register nothing;
- functions in a plugin module named like a hook but misspelled, or named right but
  lacking the ``@hookimpl`` marker;
- plugin modules that import TensorFlow at module level (checked in a fresh interpreter
  per plugin, so this process stays free of TensorFlow);
- a ``zoo`` or ``pip`` on PATH from another environment than this one.

:func:`misfiled` (entry points in a look-alike group) is cheap: it reads package metadata
only, and the "unknown model" error uses it.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from zoo_core.catalogue import hookspecs
from zoo_core.catalogue.plugins import ENTRY_POINT_GROUP, PluginSet

HOOKS = tuple(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
              if hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec"))
_HEAVY = ("tensorflow", "tf_keras", "keras", "torch", "jax")


@dataclass(frozen=True)
class Finding:
    """One near miss: what it is about (a distribution, module or program) and the fix."""

    subject: str
    message: str


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _looks_like_zoo(group: str) -> bool:
    g = group.lower()
    return group != ENTRY_POINT_GROUP and (
        g == ENTRY_POINT_GROUP or re.match(r"^zoo[^a-z0-9]", g) is not None
        or g.endswith((".zoo", "_zoo", "-zoo")) or "zoo_core" in g.replace("-", "_")
        or difflib.SequenceMatcher(None, g, ENTRY_POINT_GROUP).ratio() >= 0.8)


def misfiled() -> list[tuple[metadata.EntryPoint, str]]:
    """Entry points in a group that looks like ``zoo`` but is not: (entry point, its
    distribution's name). Metadata only; nothing is imported."""
    out = []
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if _looks_like_zoo(ep.group):
                out.append((ep, dist.metadata["Name"] or "?"))
    return out


def misfiled_findings() -> list[Finding]:
    return [Finding(dist, f"{dist} lists {ep.name} = {ep.value} under the entry-point group "
                          f"{ep.group!r}; the zoo reads only {ENTRY_POINT_GROUP!r}: write "
                          f"[project.entry-points.{ENTRY_POINT_GROUP}] in its pyproject.toml "
                          "and reinstall it")
            for ep, dist in misfiled()]


def silent_distributions(plugin_set: PluginSet) -> list[Finding]:
    """Distributions that depend on zoo-core but list no ``zoo`` entry point, and plugins
    that loaded but registered nothing."""
    out = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        requires = [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or ()]
        if _normal(name) == "zoo-core" or "zoo-core" not in {_normal(r) for r in requires}:
            continue
        if not [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]:
            out.append(Finding(name, f"{name} depends on zoo-core but lists no entry point in the "
                                     f"group {ENTRY_POINT_GROUP!r}, so the zoo never imports it: "
                                     f"add [project.entry-points.{ENTRY_POINT_GROUP}] NAME = "
                                     "\"its_module\" to its pyproject.toml and reinstall it"))
    for r in plugin_set.reports:
        if r.status == "ok" and not (r.models or r.datasets or r.refused):
            out.append(Finding(r.who, f"plugin {r.who} loaded but registers nothing: does its "
                                      "module define zoo_register_models (or "
                                      "zoo_register_datasets) marked @hookimpl?"))
    return out


def hook_findings(plugin_set: PluginSet) -> list[Finding]:
    """Functions in the loaded plugin modules named like a hook but misspelled, or lacking
    the ``@hookimpl`` marker."""
    out = []
    for r in plugin_set.reports:
        module = sys.modules.get(r.module.split(":")[0]) if r.module else None
        if module is None:
            continue
        for name, fn in vars(module).items():
            if not callable(fn) or name.startswith("__"):
                continue
            marked = hasattr(fn, f"{hookspecs.PROJECT_NAME}_impl")
            if name in HOOKS and not marked:
                out.append(Finding(r.who, f"{r.module}.{name} is not marked as a hook, so the zoo "
                                          "never calls it: put @hookimpl (from zoo_core import "
                                          "hookimpl) above it"))
            elif name not in HOOKS:
                close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.8)
                if close:
                    out.append(Finding(r.who, f"{r.module}.{name} is not a hook; did you mean "
                                              f"{close[0]!r}?"))
    return out


_PROBE = ("import sys, zoo_core, importlib\n"
          "before = set(sys.modules)\n"
          "importlib.import_module(sys.argv[1])\n"
          "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n")


def heavy_imports(plugin_set: PluginSet, timeout: float = 60.0) -> list[Finding]:
    """Plugin modules that import TensorFlow (or another framework) when imported: each is
    imported in a fresh interpreter, never in this one."""
    out = []
    for r in plugin_set.reports:
        module = r.module.split(":")[0] if r.dist else ""
        if not module:
            continue
        try:
            probe = subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True,
                                   text=True, timeout=timeout, env={**os.environ,
                                                                    "TF_CPP_MIN_LOG_LEVEL": "3"})
        except subprocess.TimeoutExpired:
            continue  # a hang at import is already reported by the loader
        heavy = [m for m in _HEAVY if m in probe.stdout.split()]
        if heavy:  # the first: tensorflow brings tf_keras with it
            out.append(Finding(r.who, f"{module} imports {heavy[0]} at module level, which "
                                      "slows every zoo command (zoo list from 0.2 s to seconds): "
                                      "import it inside the builder instead"))
    return out


def path_findings() -> list[Finding]:
    """A ``zoo`` or ``pip`` on PATH from another environment than this one."""
    scripts = Path(sysconfig.get_path("scripts")).resolve()
    out = []
    for program in ("zoo", "pip"):
        found = shutil.which(program)
        if found is not None and Path(found).parent.resolve() != scripts:
            out.append(Finding(program, f"the `{program}` on PATH is {found}, from another "
                                        f"environment than this zoo's ({sys.prefix}): plugins "
                                        "installed with another environment's pip are not seen "
                                        f"here; install with {scripts / 'pip'}, or activate "
                                        f"{sys.prefix}"))
    return out


def diagnose(plugin_set: PluginSet, *, heavy: bool = True) -> list[Finding]:
    """Every near miss, in the order of the module docstring."""
    findings = misfiled_findings() + silent_distributions(plugin_set) + hook_findings(plugin_set)
    if heavy:
        findings += heavy_imports(plugin_set)
    return findings + path_findings()
