"""The test suite's own rules (issue 27, part 5), read from its source: a test module never
imports another test module (what they share is in conftest.py and helpers.py, reached as
fixtures), every test asserts something, and no assertion times anything."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = sorted(p for p in [*ROOT.glob("tests/test_*.py"), *ROOT.glob("plugins/*/tests/test_*.py")])
# what counts as checking: an assert, pytest.raises/fail/warns, numpy's assert_*, the conformance
# kit's check(), a run whose exit code is checked (check=True, the zoo fixture's code=), or a
# module helper that does one of these
CHECKS = {"raises", "fail", "warns", "deprecated_call", "check"}


def _checks(node: ast.AST, helpers: set[str]) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Assert):
            return True
        if isinstance(n, ast.Call):
            name = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            if name in CHECKS or name in helpers or name.startswith("assert"):
                return True
            if any(k.arg in ("check", "code") and not (isinstance(k.value, ast.Constant)
                                                       and k.value.value in {False, None}
                                                       and type(k.value.value) is not int)
                   for k in n.keywords):
                return True
    return False


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", TESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_test_module_imports_another(path):
    names = {p.stem for p in TESTS} | {"conftest"}
    found = []
    for n in ast.walk(_tree(path)):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] in names:
            found.append(f"line {n.lineno}: from {n.module}")
        elif isinstance(n, ast.Import):
            found += [f"line {n.lineno}: import {a.name}" for a in n.names
                      if a.name.split(".")[0] in names]
    assert not found, f"{path.name} imports a test module (make it a fixture in conftest.py): {found}"


@pytest.mark.parametrize("path", TESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_asserts_something(path):
    functions = {f.name: f for f in _tree(path).body if isinstance(f, ast.FunctionDef)}
    helpers: set[str] = set()
    while True:  # helpers that check, and helpers calling those
        more = {name for name, f in functions.items()
                if not name.startswith("test_") and name not in helpers and _checks(f, helpers)}
        if not more:
            break
        helpers |= more
    silent = [name for name, f in functions.items()
              if name.startswith("test_") and not _checks(f, helpers)]
    assert not silent, f"{path.name}: tests that cannot fail: {silent}"


def test_the_assertion_check_finds_a_silent_test():
    tree = ast.parse("def test_a():\n    x = 1\n\ndef test_b(zoo):\n    zoo('list', code=0)\n")
    assert [_checks(f, set()) for f in tree.body] == [False, True]
    unchecked = ast.parse("def test_c():\n    subprocess.run(['true'], check=False)\n")
    assert not _checks(unchecked.body[0], set())


CLOCKS = {"monotonic", "perf_counter", "time", "process_time"}


@pytest.mark.parametrize("path", TESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_assertion_times_anything(path):
    """A duration depends on the machine and its load: a test asserts what happened (a
    timeout's message, what a deadline stopped), never how long it took. (A deadline that
    stops a wait for a hung child is not a duration: ``assert time.monotonic() < deadline``.)"""
    tree = _tree(path)
    durations = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and _duration(n.value)
                 for t in n.targets if isinstance(t, ast.Name)}
    found = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)
             and isinstance(n.test, ast.Compare)
             and any(_duration(side) or (isinstance(side, ast.Name) and side.id in durations)
                     for side in (n.test.left, *n.test.comparators))]
    assert not found, f"{path.name}: timed assertions at lines {found}"


def test_the_timing_check_finds_a_duration_not_a_deadline():
    def flagged(source: str) -> bool:
        tree = ast.parse(source)
        return any(_duration(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign))

    assert flagged("took = time.monotonic() - start")
    assert not flagged("deadline = time.monotonic() + 60")


def _duration(node: ast.AST) -> bool:
    """Whether ``node`` subtracts a clock reading: a duration."""
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub)
               and any(isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
                       and c.func.attr in CLOCKS for c in ast.walk(n))
               for n in ast.walk(node))
