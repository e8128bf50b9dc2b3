"""The docs cannot drift from the code: every hook is documented with its exact
signature (like datasette's tests/test_docs.py), code the plugin guide quotes from
zoo-cnn is still in zoo-cnn, and the CLI reference covers the plugin-author commands."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from zoo_core import hookspecs, plugins, testing
from zoo_core.store import RunRecord

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")]
# The callback each registration hook hands to plugins, as defined in plugins._collect.
REGISTER_CALLBACKS = {"zoo_register_models": "register_model",
                      "zoo_register_datasets": "register_dataset"}


def sections(text: str, level: str) -> dict[str, str]:
    """Headings of one level (``## `` or ``### ``) -> the text under each."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def heading_for(name: str, text: str, level: str = "##") -> tuple[str, str]:
    for heading, body in sections(text, level).items():
        if heading.strip("`").startswith(f"{name}("):
            return heading.strip("`"), body
    pytest.fail(f"docs/hooks.md has no `{level} {name}(...)` heading: document the hook")


def arguments(signature: str) -> str:
    """A signature's argument list, normalised (quotes, spacing) for comparison."""
    tree = ast.parse(f"def f{signature[signature.index('('):]}: pass")
    return ast.dump(tree.body[0].args)


def test_the_hooks_are_found():
    assert set(HOOKS) >= {"zoo_register_models", "zoo_register_datasets", "zoo_run_finished"}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    text = (DOCS / "hooks.md").read_text()
    heading, _ = heading_for(hook, text)
    actual = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    assert heading == actual, f"docs/hooks.md documents {heading!r}, the hookspec is {actual!r}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_argument_has_a_row(hook):
    _, body = heading_for(hook, (DOCS / "hooks.md").read_text())
    for arg in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"| `{arg}` |" in body, f"docs/hooks.md: {hook} has no row for `{arg}`"


def test_every_registration_hook_documents_its_callback():
    for hook in HOOKS:
        if "register" in inspect.signature(getattr(hookspecs, hook)).parameters:
            assert hook in REGISTER_CALLBACKS, f"{hook} takes a register callback: add it here"


def _callbacks() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(Path(plugins.__file__).read_text())
    return {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("hook, callback", sorted(REGISTER_CALLBACKS.items()))
def test_every_register_callback_is_documented_with_its_exact_signature(hook, callback):
    _, body = heading_for(hook, (DOCS / "hooks.md").read_text())
    heading, rows = heading_for("register", body, "###")
    node = _callbacks()[callback]
    actual = ast.dump(node.args)
    assert arguments(heading) == actual, (
        f"docs/hooks.md documents {heading!r} under {hook}; plugins.py has "
        f"register({ast.unparse(node.args)})")
    for arg in [a.arg for a in node.args.args + node.args.kwonlyargs]:
        assert f"| `{arg}` |" in rows, f"docs/hooks.md: register() of {hook} has no row for `{arg}`"


def test_every_run_record_field_is_documented():
    _, body = heading_for("zoo_run_finished", (DOCS / "hooks.md").read_text())
    for f in dataclasses.fields(RunRecord):
        assert f"`{f.name}`" in body, f"docs/hooks.md: RunRecord field `{f.name}` is not documented"


def test_no_hook_is_documented_that_does_not_exist():
    documented = [h.strip("`").split("(")[0] for h in sections((DOCS / "hooks.md").read_text(), "##")]
    assert sorted(documented) == sorted(HOOKS)


QUOTE = re.compile(r"<!-- from (\S+) -->\n```\w*\n(.*?)```", re.S)


def test_code_the_plugin_guide_quotes_is_still_in_the_quoted_file():
    quotes = QUOTE.findall((DOCS / "writing-plugins.md").read_text())
    assert len(quotes) >= 4
    for path, block in quotes:
        assert block in (ROOT / path).read_text(), (
            f"docs/writing-plugins.md quotes {path}, which no longer contains:\n{block}")


def test_the_plugin_guide_covers_every_check_and_hook():
    text = (DOCS / "writing-plugins.md").read_text()
    for name in testing.CHECKS:
        assert f"`{name}`" in text, f"docs/writing-plugins.md does not explain the check {name}"
    for hook in ("zoo_register_models", "zoo_register_datasets"):
        assert f"`{hook}`" in text


@pytest.mark.parametrize("command", ["zoo check", "zoo new-plugin"])
def test_the_cli_reference_has_the_plugin_author_commands(command):
    text = (DOCS / "cli.md").read_text()
    assert re.search(rf"^## `{command} ", text, re.M), f"docs/cli.md has no section for {command}"


def test_the_cli_reference_lists_every_check():
    _, body = next((h, b) for h, b in sections((DOCS / "cli.md").read_text(), "##").items()
                   if h.startswith("`zoo check "))
    for name in testing.CHECKS:
        assert f"`{name}`" in body


def test_the_results_page_shows_every_reference_result_with_its_command():
    from zoo_core.registry import open_zoo

    text = (DOCS / "results.md").read_text()
    for name, entry in open_zoo().catalogue.models.items():
        for dataset, ref in entry.reference.items():
            accuracy = f"{100 * ref['test_accuracy']:.2f} ± {100 * ref['test_accuracy_std']:.2f} %"
            row = next((line for line in text.splitlines()
                        if line.startswith("|") and f"`{ref['command']}`" in line), None)
            assert row is not None, f"docs/results.md has no row with `{ref['command']}`"
            assert accuracy in row, f"docs/results.md shows other figures for {name} on {dataset}"
