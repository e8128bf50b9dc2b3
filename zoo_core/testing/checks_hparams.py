"""The check of a model's declared hyperparameters: ``hparams_honoured``.

The builder may read only what the model declares, and every declared hyperparameter,
set to another valid value, must change the model: its parameter count, its variables,
or its logits (with ``training`` off or on). A search range a hyperparameter declares
(``HParam(search=...)``, what ``zoo sweep --search`` draws from) must parse and lie within
its own bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.specs import HParam
from zoo_core.errors import UsageError
from zoo_core.searchspace import FORMS, parse_dim
from zoo_core.testing.diagnose import BuildFailed, first_line, location
from zoo_core.testing.kit import CLASS_COUNTS, Fail, NotApplicable, check, random_images
from zoo_core.testing.subject import ForwardPass, Subject, Trace, session


@check("hparams_honoured", "reads only declared hyperparameters, and each declared one "
       "changes the parameter count or the outputs; declared search ranges fit the bounds")
def hparams_honoured(s: Subject) -> str:
    declared = s.spec.hparams
    _search_ranges_fit(declared)
    shape, k = s.shapes[0], CLASS_COUNTS[0]
    base = s.forward(shape, k)
    _reads_only_declared(base.trace, declared)
    if not declared:
        raise NotApplicable("the model declares no hyperparameters, and reads none")
    x = random_images(8, shape)
    base_out = _outputs(base, x)
    effects, no_effect, untried = [], [], []
    for name, p in declared.items():
        current = s.hparams[name]
        value = _other_value(p, current)
        if value is None:
            untried.append(name)
            continue
        f = _built_with(s, shape, k, name, value)
        effect = _effect(base, base_out, f, x)
        if effect:
            effects.append(f"{name} ({effect})")
        else:
            never = "" if base.trace.read_all or name in base.trace.read else ", never read"
            no_effect.append(f"{name} ({current!r} -> {value!r}{never})")
    if no_effect:
        raise Fail("every declared hyperparameter to change the parameter count or the outputs",
                   f"no effect from {', '.join(no_effect)}",
                   "use them in build(), or stop declaring them")
    msg = f"{len(effects)} hyperparameter(s) each change the model: {', '.join(effects)}"
    if untried:
        msg += f"; not varied (free-form strings): {', '.join(untried)}"
    return msg


def _search_ranges_fit(declared: dict[str, HParam]) -> None:
    """Every ``search=`` range parses and gives only values its hyperparameter accepts."""
    bad = []
    for name, p in declared.items():
        if p.search is None:
            continue
        try:
            problem = parse_dim(p.search).problem(p)
        except ValueError as e:
            problem = str(e)
        if problem:
            bad.append(f"{name} search={p.search!r}: {problem}")
    if bad:
        raise Fail("each declared search range to lie within its hyperparameter's bounds",
                   "; ".join(bad), f"give search= one of {FORMS} inside min/max/choices")


def _reads_only_declared(trace: Trace, declared: dict[str, HParam]) -> None:
    undeclared = sorted(str(n) for n in trace.read if n not in declared)
    if undeclared:
        raise Fail("build() to read only the hyperparameters it declares"
                   + (f" ({', '.join(declared)})" if declared else " (none)"),
                   f"it also looks up {', '.join(map(repr, undeclared))}",
                   "declare them in register(..., hparams=...), so that runs can set them "
                   "and record them")


def _built_with(s: Subject, shape, k: int, name: str, value: Any) -> ForwardPass:
    """The forward pass with one hyperparameter set to ``value``, which its declaration allows."""
    p = s.spec.hparams[name]
    try:
        return s.forward(shape, k, {**s.hparams, name: value}, cache=False)
    except BuildFailed as e:
        raise Fail(f"the model to build with {name}={value!r} (a value its declaration "
                   f"{p.describe()} allows)", f"{type(e.error).__name__}: "
                   f"{first_line(e.error)}{location(e.error)}",
                   "narrow the declaration (min=, max=, choices=) or support the value")
    except Fail as e:
        raise Fail(f"the model to build with {name}={value!r} (allowed by {p.describe()})",
                   str(e).removeprefix("expected ")) from None


def _effect(base: ForwardPass, base_out: tuple, f: ForwardPass, x: np.ndarray) -> str:
    """How ``f`` differs from ``base``: "parameters", "variables", "outputs", or ""."""
    if f.params != base.params:
        return "parameters"
    if f.variables != base.variables:
        return "variables"
    out = _outputs(f, x)
    if not np.array_equal(out[0], base_out[0]):
        return "outputs"
    if not np.array_equal(out[1], base_out[1]):
        return "training outputs"
    return ""


def _outputs(f: ForwardPass, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits with training off and on, in a fresh session (same seed, same weights)."""
    tf = import_tf()
    with session(f.graph) as sess:
        sess.run(f.init)
        return f.run(tf, sess, x, False), f.run(tf, sess, x, True)


def _other_value(p: HParam, current):
    """Another valid value for a hyperparameter, or None when none can be guessed."""
    if p.type is bool:
        return not current
    if p.type is str:
        if p.choices:
            others = [c for c in p.choices if c != current]
            return others[0] if others else None
        return None
    if p.type is int:
        candidates = [current + 1, current - 1]
    else:
        candidates = [0.5 if current == 0 else current * 2, 0.5 * current, current + 0.1,
                      current - 0.1]
    for value in candidates:
        if p.type is float:
            value = float(value)
        try:
            p.check("x", value)
        except UsageError:
            continue
        if value != current:
            return value
    return None
