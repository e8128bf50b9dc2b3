"""A declared hyperparameter (:class:`HParam`) and :func:`as_hparam`: what a plugin's
``register(..., hparams=...)`` and the trainer settings (:mod:`zoo_core.settings`, which
re-exports both) declare, and how a value given as text or in a file is checked against it.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from zoo_core.errors import HParamError, short_repr

_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}

# The largest integer setting a run accepts: TensorFlow's int64 tensors (settings are kept
# in the store as JSON, of any size). A value above it fails only once a run started, so it
# is refused where it is given.
MAX_INT = 2**63 - 1
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class HParam:
    """A declared hyperparameter.

    Attributes:
        default: the value used when nothing else sets it.
        type: bool, int, float or str; taken from ``default`` when omitted.
        help: one line for ``zoo list --details`` and error messages.
        min, max: inclusive bounds for numbers (None for unbounded).
        choices: the allowed values, for strings.
        speed_only: the value changes how the model's graph computes the same function
            (a faster kernel), not what it computes: a run records it (config.json's
            ``speed``), but its config and config id leave it out, so runs that differ
            only in it are one configuration on the leaderboard.
        omit_default: a setting added after runs were recorded without it: a run's config
            names it only when it is set to another value than its default, so the config
            ids of the runs made before it existed (and registry.toml's reference rows) still
            hold. A run that does not name it computed with the default.
        search: the range ``zoo sweep --search`` draws it from when no ``--space`` names it,
            ``log(a,b)``, ``float(a,b)``, ``int(a,b)`` or ``choice(a,...)`` (searchspace.py).
    """

    default: Any
    type: type | None = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    speed_only: bool = False
    omit_default: bool = False
    search: str | None = None

    def __post_init__(self):
        t = self.type if self.type is not None else type(self.default)
        if t not in _TYPES:
            raise TypeError(
                f"hyperparameter type must be bool, int, float or str, not {t.__name__}"
            )
        object.__setattr__(self, "type", t)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        # A default that does not fit is reported when the declaration is used
        # (as_hparam: a plugin's registration), where the message can name the
        # hyperparameter, the model and the plugin; an import-time error could not.
        try:
            self.check("default", self.default)
        except HParamError as e:
            object.__setattr__(self, "_problem", str(e))

    @property
    def problem(self) -> str:
        """What is wrong with the declaration ("default must be int, got '64' (str)"), or ""."""
        return getattr(self, "_problem", "")

    @property
    def type_name(self) -> str:
        return _TYPES[self.type]

    def describe(self) -> str:
        parts = [self.type_name]
        if self.choices:
            parts.append("one of " + "|".join(map(str, self.choices)))
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return ", ".join(parts)

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` coerced to this type, or raise :class:`HParamError`."""
        t = self.type
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise HParamError(f"{name} must be a finite number, got {short_repr(value)}") from None
        if not isinstance(value, t) or (t is int and isinstance(value, bool)):
            raise HParamError(
                f"{name} must be {self.describe()}, got {short_repr(value)} ({type(value).__name__})"
            )
        if t is float and not math.isfinite(value):
            raise HParamError(f"{name} must be a finite number, got {short_repr(value)}")
        if ((self.min is not None and value < self.min)
                or (self.max is not None and value > self.max)
                or (self.choices is not None and value not in self.choices)):
            raise HParamError(f"{name} must be {self.describe()}, got {short_repr(value)}")
        if t is int and not -MAX_INT <= value <= MAX_INT:
            raise HParamError(f"{name} must be {self.describe()} and within ±(2**63 - 1) "
                              f"(a 64-bit integer), got {short_repr(value)}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """Parse a value given as text (the command line's ``--set name=text``) and check it."""
        t = self.type
        s = text.strip()
        try:
            if t is bool:
                if s.lower() in _TRUE:
                    value = True
                elif s.lower() in _FALSE:
                    value = False
                else:
                    raise ValueError
            elif t is int:
                value = int(s)
            elif t is float:
                value = float(s)
            else:
                value = text
        except ValueError:
            raise HParamError(f"{name} must be {self.describe()}, got {short_repr(text)}") from None
        return self.check(name, value)


def as_hparam(name: str, declared: Any) -> HParam:
    """Turn a declaration (an HParam or a bare default) into an HParam."""
    try:
        hparam = declared if isinstance(declared, HParam) else HParam(declared)
    except TypeError as e:
        raise HParamError(f"hyperparameter {name!r}: {e}") from None
    if hparam.problem:
        raise HParamError(f"hyperparameter {name!r}: {hparam.problem}")
    return hparam
