"""Search spaces: the range and scale a hyperparameter search draws a setting from.

One spelling everywhere: ``zoo sweep --search ... --space 'lr=log(1e-4,1e-2)'``, a plugin's
``HParam(..., search="int(1,4)")`` and the trainer settings' own declarations
(:mod:`zoo_core.settings`). :func:`parse_dim` reads it into a :class:`Dim`, whose ``str()``
spells it back; :meth:`Dim.problem` says whether it lies within a setting's declared bounds.
Nothing here imports Optuna (:mod:`zoo_core.runs.search` turns a Dim into its distribution).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

FORMS = "log(a,b), float(a,b), int(a,b) or choice(a,b,...)"
KINDS = ("log", "float", "int", "choice")
_FORM = re.compile(r"\s*(log|float|int|choice)\s*\((.*)\)\s*", re.DOTALL)


@dataclass(frozen=True)
class Dim:
    """One setting's search range.

    ``kind``: "log" (a..b on a log scale, a > 0), "float" (a..b uniform), "int" (the whole
    numbers a..b) or "choice" (one of ``choices``, each as ``--set`` would spell it).
    """

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "choice":
            return f"choice({','.join(self.choices)})"
        if self.kind == "int":
            return f"int({int(self.low)},{int(self.high)})"
        return f"{self.kind}({self.low:g},{self.high:g})"

    def problem(self, hparam: Any) -> str:
        """What makes this range unfit for a setting declared as ``hparam`` (an
        :class:`~zoo_core.settings.HParam`), or "": every value it can give must be one the
        setting accepts (its type, bounds and choices)."""
        if self.kind == "choice":
            bad = []
            for text in self.choices:
                try:
                    hparam.parse("value", text)
                except Exception:  # noqa: BLE001 - HParamError; settings imports this module
                    bad.append(text)
            return (f"{', '.join(bad)} not accepted: the setting is {hparam.describe()}"
                    if bad else "")
        if hparam.type not in (int, float):
            return f"the setting is {hparam.describe()}: give choice(...)"
        if hparam.type is int and self.kind == "float":
            return f"the setting is {hparam.describe()}: give int(a,b) or log(a,b)"
        if hparam.type is int and self.kind == "log" and not (
                self.low.is_integer() and self.high.is_integer()):
            return f"the setting is {hparam.describe()}: give whole numbers"
        if (hparam.min is not None and self.low < hparam.min) or (
                hparam.max is not None and self.high > hparam.max):
            return f"outside the setting's bounds ({hparam.describe()})"
        return ""


def parse_dim(text: str) -> Dim:
    """``log(a,b)``, ``float(a,b)``, ``int(a,b)`` (a < b) or ``choice(a,b,...)`` (values
    as ``--set`` takes them, at least two, each once).

    Raises:
        ValueError: anything else, naming the accepted forms (the caller adds which setting).
    """
    found = _FORM.fullmatch(text or "")
    if not found:
        raise ValueError(f"{text!r} is not a search range: give {FORMS}")
    kind, inside = found.group(1), found.group(2)
    values = [v.strip() for v in inside.split(",")]
    if kind == "choice":
        if len(values) < 2 or any(not v for v in values) or len(set(values)) < len(values):
            raise ValueError(f"{text!r}: choice(...) takes two or more different values, "
                             "separated by commas, e.g. choice(adam,nesterov)")
        return Dim("choice", choices=tuple(values))
    if len(values) != 2:
        raise ValueError(f"{text!r}: {kind}(a,b) takes two numbers, the lowest and highest")
    try:
        low, high = (int(v) if kind == "int" else float(v) for v in values)
    except ValueError:
        what = "whole numbers" if kind == "int" else "numbers"
        raise ValueError(f"{text!r}: {kind}(a,b) takes two {what}, e.g. "
                         f"{'int(1,4)' if kind == 'int' else kind + '(1e-4,1e-2)'}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise ValueError(f"{text!r}: the lowest value must be below the highest")
    if kind == "log" and low <= 0:
        raise ValueError(f"{text!r}: log(a,b) needs a > 0 (use float(a,b) for a range from 0)")
    return Dim(kind, float(low), float(high))
