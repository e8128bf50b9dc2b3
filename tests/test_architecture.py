"""The core's shape stays as docs/architecture.md draws it: every concern in one package,
packages importing only downwards, click only in the CLI, small modules and functions (in
plugins/ and benchmarks/ too), and plugins that use only the core's public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "zoo_core"
# Bottom to top: a module may import from its own layer or a lower one.
LAYERS = [
    {"errors", "paths", "_tf", "settings", "hparams", "searchspace"},
    {"catalogue", "registry"},
    {"data"},
    {"train"},
    {"store"},
    {"results"},
    {"runs"},
    {"serving"},
    {"testing", "scaffold"},
    {"web"},
    {"cli", "__main__"},
]
MODULES = sorted(p for p in CORE.rglob("*.py") if p != CORE / "__init__.py")
ROOT = CORE.parent
PLUGINS = sorted(p for p in (ROOT / "plugins").rglob("*.py")
                 if not {"build", ".venv"} & set(p.relative_to(ROOT).parts))
BENCHMARKS = sorted((ROOT / "benchmarks").rglob("*.py"))
# The core's public API (docs/architecture.md, "The public API"): these modules, and in each
# the names its __all__ lists. A plugin (its package, tests and scripts) imports nothing else.
PUBLIC = ("zoo_core", "zoo_core.testing", "zoo_core.catalogue", "zoo_core.cli")


def unit(path: Path) -> str:
    """The top-level package or module of zoo_core a file belongs to."""
    return path.relative_to(CORE).parts[0].removesuffix(".py")


def layer(name: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if name in names)


def zoo_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, the zoo_core unit imported) for every import of zoo_core in a module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "zoo_core":
                names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
                out += [(node.lineno, n) for n in names if n not in ("__version__", "hookimpl")]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[1]) for a in node.names
                    if a.name.startswith("zoo_core.")]
    return out


def module_name(path: Path) -> str:
    """``zoo_core/store/__init__.py`` -> ``zoo_core.store``; ``.../sql.py`` -> ``zoo_core.store.sql``."""
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, known: set[str]) -> set[str]:
    """Every zoo_core module a module imports, at its top or inside a function:
    ``from zoo_core.store import sql`` names ``zoo_core.store.sql``, ``from zoo_core.store
    import Store`` names ``zoo_core.store`` (the package's ``__init__``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out & known


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> the modules it imports): each strongly
    connected group of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_cycles():
    """No module imports, directly or through others, a module that imports it, not even
    inside a function: each module can be read (and moved) after the ones it imports."""
    paths = sorted(CORE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imported_modules(ast.parse(p.read_text()), known) - {module_name(p)}
             for p in paths}
    assert cycles(graph) == [], "import cycles (break each at a seam: a module both use)"


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("path", sorted([*(CORE / "serving").rglob("*.py"),
                                          *(CORE / "web").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(CORE)))
def test_serving_reads_the_store_and_results_not_the_code_that_runs(path):
    """A trained run is served through the store and results/ (what `zoo show` reads too),
    never through the code that runs it or another module's private names."""
    tree = ast.parse(path.read_text())
    forbidden = "zoo_core.runs" if unit(path) == "serving" else "zoo_core.runs.execute"
    found = [f"line {node.lineno}: {node.module}" for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module
             and (node.module.startswith(forbidden)
                  or any(a.name.startswith("_") and not a.name.endswith("__")
                         for a in node.names))]
    assert not found, f"{path.relative_to(CORE)} reaches into {found}"


def test_hooks_are_called_in_one_place():
    """Every hook call goes through catalogue/plugins.py's call_hook (pluggy's caller)."""
    calls = [f"{p.relative_to(CORE)}:{n}" for p in MODULES if p != CORE / "catalogue" / "plugins.py"
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if ".hook." in line or "get_hookimpls" in line]
    assert not calls, f"call hooks with catalogue.plugins.call_hook or call_each: {calls}"


def test_every_module_has_a_layer():
    assert {unit(p) for p in MODULES} <= set().union(*LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_nothing_imports_upwards(path):
    tree = ast.parse(path.read_text())
    mine = layer(unit(path))
    upward = [f"line {line}: zoo_core.{name}" for line, name in zoo_imports(tree)
              if layer(name) > mine]
    assert not upward, f"{path.relative_to(CORE)} imports from a higher layer: {upward}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_only_the_cli_imports_click(path):
    if unit(path) == "cli":
        return
    tree = ast.parse(path.read_text())
    found = [n.lineno for n in ast.walk(tree)
             if (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "click" for a in n.names))
             or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "click")]
    assert not found, f"{path.relative_to(CORE)} imports click (line {found[0]}): library code " \
                      "raises errors and takes callbacks; the CLI prints"


@pytest.mark.parametrize("path", [*MODULES, *PLUGINS, *BENCHMARKS],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    text, name = path.read_text(), path.relative_to(ROOT)
    assert text.count("\n") <= 500, f"{name} is over 500 lines: split it"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{name}:{node.lineno} {node.name} is {length} lines: split it"


def public_names(module: str) -> set[str]:
    """What a public module offers: the names its ``__init__``'s ``__all__`` lists (read from
    the source, nothing imported)."""
    path = ROOT / module.replace(".", "/") / "__init__.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__"
                                                for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def private_uses(tree: ast.AST) -> list[str]:
    """Every use of the core beyond its public API in a module: an import of another module
    of zoo_core or of a name no public ``__all__`` lists, and an attribute of a public
    module (``testing.real_images``) that its ``__all__`` does not list."""
    found, bound = [], {}  # bound: a local name -> the public module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zoo_core":
            for a in node.names:
                if f"{node.module}.{a.name}" in PUBLIC:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
                elif node.module not in PUBLIC or a.name not in public_names(node.module):
                    found.append(f"line {node.lineno}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] != "zoo_core":
                    continue
                if a.name not in PUBLIC:
                    found.append(f"line {node.lineno}: import {a.name}")
                elif a.asname:
                    bound[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in bound \
                and node.attr not in public_names(bound[node.value.id]):
            found.append(f"line {node.lineno}: {bound[node.value.id]}.{node.attr}")
    return found


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_the_public_api(path):
    """A plugin, its tests and its scripts use what the core promises to keep, so that the
    core's modules can move between releases (docs/architecture.md, "The public API")."""
    found = private_uses(ast.parse(path.read_text()))
    assert not found, (f"{path.relative_to(ROOT)} reaches into zoo_core's internals: {found}; "
                       "use the public API, or make what it needs public (docs/architecture.md)")


def test_the_public_api_check_finds_private_uses():
    tree = ast.parse("from zoo_core import testing, HParam\n"
                     "from zoo_core.train.loop import train\n"
                     "from zoo_core.testing import _private, real_images\n"
                     "import zoo_core.data\n"
                     "testing.real_images(4); testing.helpers.forward_pass()\n")
    assert private_uses(tree) == ["line 2: from zoo_core.train.loop import train",
                                  "line 3: from zoo_core.testing import _private",
                                  "line 4: import zoo_core.data",
                                  "line 5: zoo_core.testing.helpers"]


def test_the_public_api_is_the_documented_one():
    text = (ROOT / "docs" / "architecture.md").read_text()
    documented = text[text.index("## The public API"):].split("\n## ")[0]
    for module in PUBLIC:
        assert f"`{module}`" in documented, f"docs/architecture.md does not list {module}"
        assert public_names(module), f"{module} has no __all__"


def test_the_architecture_page_names_real_modules():
    text = (CORE.parent / "docs" / "architecture.md").read_text()
    for path in MODULES:
        rel = path.relative_to(CORE)
        if rel.name in ("__init__.py", "__main__.py") or rel.parts[0] == "testing":
            continue  # the kit is described in zoo_core/testing/__init__.py
        if rel == Path("registry.py"):  # the deprecated alias
            continue
        assert rel.name in text, f"docs/architecture.md does not mention {rel}"
