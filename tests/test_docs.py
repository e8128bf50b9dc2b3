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

from zoo_core import hookimpl, testing
from zoo_core.catalogue import hookspecs, plugins, specs
from zoo_core.store.records import RunRecord

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The pages whose commands are checked (architecture.md's are a diagram of the flow).
COMMAND_DOCS = [ROOT / "README.md", *sorted(p for p in DOCS.glob("*.md")
                                             if p.name != "architecture.md")]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")]
# The callback each registration hook hands to plugins: documented as a Protocol in
# zoo_core/catalogue/specs.py, made in zoo_core/catalogue/plugins.py (_collect).
REGISTER_CALLBACKS = {"zoo_register_models": specs.RegisterModel,
                      "zoo_register_datasets": specs.RegisterDataset}


def sections(text: str, level: str) -> dict[str, str]:
    """Headings of one level (``## `` or ``### ``) -> the text under each."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def heading_for(name: str, text: str, level: str = "##") -> tuple[str, str]:
    for heading, body in sections(text, level).items():
        if heading.strip("`").startswith(f"{name}("):
            return heading.strip("`"), body
    pytest.fail(f"docs/hooks.md has no `{level} {name}(...)` heading: document the hook")


def arguments(signature: str) -> list[tuple]:
    """A documented signature's arguments as (name, kind, default), for comparison."""
    args = ast.parse(f"def f{signature[signature.index('('):]}: pass").body[0].args
    assert not (args.posonlyargs or args.vararg or args.kwarg), signature
    empty = inspect.Parameter.empty
    defaults = [empty] * (len(args.args) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults]
    out = [(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, d) for a, d in zip(args.args, defaults)]
    return out + [(a.arg, inspect.Parameter.KEYWORD_ONLY, empty if d is None else ast.literal_eval(d))
                  for a, d in zip(args.kwonlyargs, args.kw_defaults)]


def parameters(fn) -> list[tuple]:
    """A function's arguments as (name, kind, default), without ``self``."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()
            if p.name != "self"]


def bare(signature: inspect.Signature) -> str:
    """A signature without its annotations, as the docs write it."""
    return str(signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty))


def test_the_hooks_are_found():
    assert set(HOOKS) >= {"zoo_register_models", "zoo_register_datasets", "zoo_run_finished"}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    text = (DOCS / "hooks.md").read_text()
    heading, _ = heading_for(hook, text)
    actual = f"{hook}{bare(inspect.signature(getattr(hookspecs, hook)))}"
    assert heading == actual, f"docs/hooks.md documents {heading!r}, the hookspec is {actual!r}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_argument_has_a_row(hook):
    _, body = heading_for(hook, (DOCS / "hooks.md").read_text())
    for arg in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f"| `{arg}` |" in body, f"docs/hooks.md: {hook} has no row for `{arg}`"


def test_every_registration_hook_documents_its_callback():
    for hook in HOOKS:
        register = inspect.signature(getattr(hookspecs, hook)).parameters.get("register")
        if register is not None:
            assert hook in REGISTER_CALLBACKS, f"{hook} takes a register callback: add it here"
            assert register.annotation == REGISTER_CALLBACKS[hook].__name__, (
                f"{hook}'s register should be annotated with its protocol")


def _received() -> dict[str, object]:
    """The register callbacks a plugin receives, by hook."""
    received = {}

    def keep(hook):
        return hookimpl(lambda register: received.setdefault(hook, register))

    plugin = type("Recorder", (), {hook: staticmethod(keep(hook)) for hook in REGISTER_CALLBACKS})
    report, = plugins.load([plugin], entry_points=False).reports
    assert report.status == "ok", report.error
    return received


@pytest.mark.parametrize("hook", sorted(REGISTER_CALLBACKS))
def test_every_hookspec_docstring_shows_its_register_call_whole(hook):
    """A plugin author reading hookspecs.py sees every argument register() takes."""
    doc = " ".join(inspect.getdoc(getattr(hookspecs, hook)).split())
    call = bare(inspect.signature(REGISTER_CALLBACKS[hook].__call__))
    call = "register(" + call.removeprefix("(self, ").replace("'", '"')
    assert f"``{call}``" in doc, f"hookspecs.{hook}'s docstring should show ``{call}``"


@pytest.mark.parametrize("hook", sorted(REGISTER_CALLBACKS))
def test_every_register_callback_is_documented_with_its_exact_signature(hook):
    _, body = heading_for(hook, (DOCS / "hooks.md").read_text())
    heading, rows = heading_for("register", body, "###")
    protocol = REGISTER_CALLBACKS[hook]
    assert arguments(heading) == parameters(protocol.__call__), (
        f"docs/hooks.md documents {heading!r} under {hook}; specs.{protocol.__name__} has "
        f"register{bare(inspect.signature(protocol.__call__))}")
    for arg, _, _ in parameters(protocol.__call__):
        assert f"| `{arg}` |" in rows, f"docs/hooks.md: register() of {hook} has no row for `{arg}`"


@pytest.mark.parametrize("hook", sorted(REGISTER_CALLBACKS))
def test_the_register_callbacks_plugins_receive_are_their_protocols(hook):
    protocol = REGISTER_CALLBACKS[hook]
    assert parameters(_received()[hook]) == parameters(protocol.__call__), (
        f"the register callback of {hook} (plugins._collect) differs from specs.{protocol.__name__}")


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


def test_the_cli_reference_has_every_command():
    from zoo_core.cli import cli, packs

    text = (DOCS / "cli.md").read_text()
    aliases = {command.name for command in packs.ALIASES}  # named in their command's section
    missing = [name for name in sorted(cli.commands) if name not in aliases
               and not re.search(rf"^## `zoo {re.escape(name)}[ `]", text, re.M)]
    missing += [name for name in sorted(aliases) if f"`zoo {name} " not in text]
    assert not missing, f"docs/cli.md has no section for: {', '.join(missing)}"


def test_the_cli_reference_lists_every_check():
    _, body = next((h, b) for h, b in sections((DOCS / "cli.md").read_text(), "##").items()
                   if h.startswith("`zoo check "))
    for name in testing.CHECKS:
        assert f"`{name}`" in body


def test_the_results_page_shows_every_reference_result_with_its_command():
    from zoo_core.catalogue import open_zoo

    text = (DOCS / "results.md").read_text()
    for name, entry in open_zoo().catalogue.models.items():
        for dataset, ref in entry.reference.items():
            accuracy = f"{100 * ref['test_accuracy']:.2f} ± {100 * ref['test_accuracy_std']:.2f} %"
            row = next((line for line in text.splitlines()
                        if line.startswith("|") and f"`{ref['command']}`" in line), None)
            assert row is not None, f"docs/results.md has no row with `{ref['command']}`"
            assert accuracy in row, f"docs/results.md shows other figures for {name} on {dataset}"


def _samples():
    import importlib.util

    spec = importlib.util.spec_from_file_location("samples", DOCS / "samples.py")
    samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(samples)
    return samples


@pytest.mark.parametrize("page", [p for p in COMMAND_DOCS + [DOCS / "architecture.md"]
                                  if "<!-- sample" in p.read_text()], ids=lambda p: p.name)
def test_the_samples_are_what_the_commands_print(page):
    """A page's `<!-- sample -->` blocks, regenerated by docs/samples.py, are current (the
    slow ones, which import TensorFlow, are regenerated by the script and only parsed here)."""
    samples = _samples()
    text = page.read_text()
    if page.name == "cli.md":
        assert len(samples.SAMPLE.findall(text)) >= 10
    fresh = samples.regenerate(text, slow=False)
    stale = [f"$ {samples.commands(m)[0]}" for m, new in
             zip(samples.SAMPLE.finditer(text), samples.SAMPLE.finditer(fresh))
             if m[0] != new[0]]
    assert fresh == text, (f"{page.name} shows output its commands no longer print "
                           f"({', '.join(stale)}): run python docs/samples.py")


def test_the_plugin_guides_zoo_check_sample_has_the_rows_zoo_check_prints():
    """writing-plugins.md §7 quotes a real `zoo check cnn` (its timings vary, so it is not
    regenerated): its rows are the checks zoo check runs, in order, then one per dataset
    cnn declares weights for; its summary counts them."""
    from zoo_core.catalogue import open_zoo

    text = (DOCS / "writing-plugins.md").read_text()
    block = re.search(r"```\n\$ zoo check cnn\n(.*?)```", text, re.S)[1]
    rows = [line.split()[:2] for line in block.splitlines()[3:]
            if line and not line.startswith(" ") and line.split()[1:2] in (
                ["passed"], ["failed"], ["skipped"])]
    expected = list(testing.CHECKS) + [f"weights:{d}" for d in open_zoo().model("cnn").weights]
    assert [name for name, _ in rows] == expected
    counts = [sum(status == s for _, status in rows) for s in ("passed", "failed", "skipped")]
    assert "\n{} passed, {} failed, {} skipped in ".format(*counts) in block


# -- every zoo command the docs show parses (issue 31) -------------------------------------------


def doc_commands(text: str) -> list[str]:
    """The ``zoo ...`` commands in a page's shell blocks: lines ``$ zoo ...`` (in a block of
    commands without ``$``, lines ``zoo ...``), cut at a comment (``#`` or two spaces), a
    redirection, ``;``, ``&&``, ``|`` or ``&``."""
    found = []
    for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        if lang not in ("", "sh", "bash", "console", "shell"):
            continue
        prompt = r"\$ " if re.search(r"^\$ ", block, re.M) else ""  # else: output is not shown
        for line in block.splitlines():
            m = re.match(rf"^{prompt}(zoo .*)$", line)
            if not m:
                continue
            line = re.split(r"\s+#|\s{2,}", m[1])[0]
            parts = [re.split(r"\s[0-9]?>", part)[0].strip()
                     for part in re.split(r";|&&|\|\||\||&", line)]
            found += [part for part in parts if part.startswith("zoo ")]
    return found


def parse_command(args: list[str]) -> None:
    """Parse ``zoo ARGS`` as the CLI would, down to its last subcommand, without running it.

    Raises:
        click.UsageError: an unknown command or option, a missing argument, a bad choice.
    """
    import click

    from zoo_core.cli import cli

    def rest_of(ctx) -> list[str]:
        # click 8.2+ keeps a group's subcommand in _protected_args (protected_args is
        # deprecated there, to go in 9); older ones in protected_args
        protected = getattr(ctx, "_protected_args", None)
        return [*(getattr(ctx, "protected_args", []) if protected is None else protected),
                *ctx.args]

    ctx, command = cli.make_context("zoo", list(args)), cli
    rest = rest_of(ctx)
    while isinstance(command, click.Group) and rest:
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
        rest = rest_of(ctx)


@pytest.mark.parametrize("page", COMMAND_DOCS, ids=lambda p: p.name)
def test_every_zoo_command_the_docs_show_parses(page):
    """Each command README.md and docs/ show (samples and quoted sessions alike) names
    commands and options that exist, with the arguments they need: a renamed option
    cannot leave a page behind."""
    import shlex

    import click

    bad = []
    for command in doc_commands(page.read_text()):
        try:
            parse_command(shlex.split(command)[1:])
        except click.exceptions.Exit:  # --help, --version
            pass
        except click.ClickException as e:
            bad.append(f"{command!r}: {e.format_message()}")
    assert not bad, f"{page.name} shows commands zoo does not accept:\n" + "\n".join(bad)


def test_the_command_parser_catches_what_it_should():
    import click

    for args in (["run", "cnn", "--bogus"], ["nosuch"], ["store", "copy", "a.db"],
                 ["sweep", "status"]):
        with pytest.raises(click.UsageError):
            parse_command(args)
    assert doc_commands("```\n$ zoo run cnn --epochs 2  # two\nzoo serve: its output\n```\n"
                        "```\nzoo list > x; zoo plugins\n```\n"
                        ) == ["zoo run cnn --epochs 2", "zoo list", "zoo plugins"]
