"""``zoo new-plugin``: write a working plugin package from ``zoo_core/templates/plugin``.

The templates are plain files with ``${name}`` placeholders (:class:`string.Template`);
a ``.tmpl`` suffix keeps tools from mistaking them for code. What they produce::

    zoo-NAME/
        pyproject.toml            [project.entry-points.zoo] NAME = "zoo_NAME"
        README.md
        .gitignore
        zoo_NAME/__init__.py      the builder, its HParams, the zoo_register_models hook
        tests/test_NAME.py        the conformance kit, through pytest

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from zoo_core import __version__
from zoo_core.catalogue.specs import valid_name
from zoo_core.errors import UsageError, setting

# Template file (relative to templates/plugin) -> output path, and what it is for.
FILES: tuple[tuple[str, str, str], ...] = (
    ("pyproject.toml.tmpl", "pyproject.toml",
     "the distribution, its zoo-core pin and the `zoo` entry point"),
    ("README.md.tmpl", "README.md", "how to install, check, run and release it"),
    ("gitignore.tmpl", ".gitignore", "build output to keep out of version control"),
    ("package/__init__.py.tmpl", "${package}/__init__.py",
     "the builder, its hyperparameters and the hook"),
    ("tests/test_model.py.tmpl", "tests/test_${package_suffix}.py",
     "runs the conformance kit under pytest"),
)

# Stricter than a model name: the name also makes a distribution and a package name,
# so no separator may follow another or end it.
_SEPARATOR_RUN = re.compile(r"[-_]{2}|[-_]\Z")
MAX_NAME = 40


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin uses, all derived from its model's name."""

    model: str  # mynet: the model's name in `zoo list`, and the entry point's
    dist: str  # zoo-mynet: the distribution on PyPI
    package: str  # zoo_mynet: the Python package

    @property
    def package_suffix(self) -> str:
        return self.package.removeprefix("zoo_")


def plugin_names(name: str) -> PluginNames:
    """Validate a new plugin's model name; raise :class:`UsageError` saying what is wrong.

    A leading ``zoo-`` or ``zoo_`` is dropped: ``zoo-mynet`` and ``mynet`` both give
    the model ``mynet`` in the distribution ``zoo-mynet``.
    """
    raw = name
    for prefix in ("zoo-", "zoo_"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix):]
    if not valid_name(name) or _SEPARATOR_RUN.search(name):
        raise UsageError(
            f"invalid plugin name {raw!r}: use lower-case letters and digits, starting with a "
            "letter, optionally joined by single '-' or '_' (e.g. mynet, wide-resnet)"
        )
    if len(name) > MAX_NAME:
        raise UsageError(f"invalid plugin name {raw!r}: at most {MAX_NAME} characters")
    package = "zoo_" + name.replace("-", "_")
    if name == "core":
        raise UsageError(f"invalid plugin name {raw!r}: zoo-{name} would clash with the zoo's "
                         "own names; choose another")
    dist = f"zoo-{name}"
    try:
        installed = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        installed = None
    if installed is not None:
        raise UsageError(f"a distribution named {dist} is already installed (version "
                         f"{installed.version}); choose another NAME")
    return PluginNames(model=name, dist=dist, package=package)


def core_pin(version: str = __version__) -> str:
    """The dependency on zoo-core a new plugin declares: this release's minor series.

    While zoo-core is 0.x a minor release may change the plugin contract, so
    0.1.3 gives ``>=0.1.3,<0.2``; from 1.0 on, ``>=1.4,<2``.
    """
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0]
    major, minor = parts[0], parts[1]
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={version},<{upper}"


def render(names: PluginNames) -> dict[str, str]:
    """The plugin's files: output path (relative to its folder) -> text."""
    values = {"model": names.model, "dist": names.dist, "package": names.package,
              "package_suffix": names.package_suffix, "core_version": __version__,
              "core_pin": core_pin()}
    root = resources.files("zoo_core").joinpath("templates", "plugin")
    out = {}
    for template, target, _ in FILES:
        text = root.joinpath(*template.split("/")).read_text(encoding="utf-8")
        out[string.Template(target).substitute(values)] = string.Template(text).substitute(values)
    return out


def create(names: PluginNames, parent: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Write the plugin into ``parent/zoo-NAME``; return the folder and (file, purpose) rows.

    Raises:
        UsageError: the folder exists and is not empty, or is a file.
    """
    folder = Path(parent) / names.dist
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is a file; choose another {setting('dir')} or NAME")
    if folder.is_dir() and any(folder.iterdir()):
        raise UsageError(f"{folder} already exists and is not empty; choose another "
                         f"{setting('dir')} or NAME, or remove it")
    files = render(names)
    created_folder = not folder.exists()
    written: list[Path] = []
    try:
        for rel, text in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as e:
        for path in written:  # leave nothing half-written behind
            path.unlink(missing_ok=True)
        if created_folder:
            for d in sorted({p.parent for p in written} | {folder}, key=lambda p: -len(p.parts)):
                try:
                    d.rmdir()
                except OSError:
                    pass
        raise UsageError(f"cannot write the plugin into {folder}: {e.strerror or e}") from None
    purposes = {string.Template(t).substitute(package=names.package,
                                              package_suffix=names.package_suffix): p
                for _, t, p in FILES}
    return folder, [(os.path.join(names.dist, rel), purposes[rel]) for rel in files]
