"""The kit's vocabulary: what a check is, how it ends, what it reports, and its numbers.

A check is a function of a :class:`~zoo_core.testing.subject.Subject` (the model under
test) that returns a one-line summary, raises :class:`Fail` (what was expected, what
happened, what to do) or :class:`NotApplicable`. :func:`check` turns such a function
into a named :class:`Check`; :mod:`zoo_core.testing.suite` lists them in order.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# A check takes a Subject (zoo_core.testing.subject, which builds on this module: it is not
# imported here, so that the kit's vocabulary stands below everything that uses it).
Subject = Any

# The image shapes every model registered for ("image",) inputs should accept.
DEFAULT_SHAPES: tuple[tuple[int, int, int], ...] = ((28, 28, 1), (20, 12, 1), (32, 32, 3))
BATCH_SIZES = (1, 3, 17)
CLASS_COUNTS = (10, 7, 4)  # one per shape, in turn: catches a hard-coded 10
TRAIN_IMAGES = 32  # the real batch the training checks use
SEED_STEPS = 3  # Adam steps compared between two runs, and checked for moving variables
OVERFIT_STEPS = 200
OVERFIT_TARGET = 0.9
SHORT_RUN_STEPS = 30  # training steps before a batch-normalized model is evaluated
SHORT_RUN_GAP = 0.25  # how far evaluation may fall below training mode's accuracy then
DROPOUT_LIKE = re.compile(r"drop|keep_prob")


class CheckFailure(AssertionError):
    """A conformance check failed; the message names the check, the model and why."""


class Fail(Exception):
    """Raised inside a check: what was expected, what happened, and what to do."""

    def __init__(self, expected: str, got: str, hint: str = ""):
        super().__init__(f"expected {expected}, got {got}" + (f"; {hint}" if hint else ""))


class NotApplicable(Exception):
    """Raised inside a check that has nothing to check on this model; says why."""


@dataclass(frozen=True)
class Check:
    """A named conformance check: ``func(subject)`` returns a one-line summary."""

    name: str
    summary: str
    func: Callable[[Subject], str]


def check(name: str, summary: str) -> Callable[[Callable[[Subject], str]], Check]:
    """Decorator: the function becomes the :class:`Check` ``name``."""
    def make(func: Callable[[Subject], str]) -> Check:
        return Check(name, summary, func)
    return make


@dataclass
class CheckResult:
    """The outcome of one check on one model.

    ``template`` is ``message`` with the settings it names left as markers
    (:func:`zoo_core.errors.setting`), for a front end that spells them its own way
    (``zoo check``); it defaults to ``message`` and is not part of :meth:`to_dict`.
    """

    check: str
    model: str
    status: str  # passed | failed | skipped
    message: str
    seconds: float = 0.0
    template: str = field(default="", repr=False, compare=False)

    def __post_init__(self):
        self.template = self.template or self.message

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        return f"check {self.check!r} {self.status} for model {self.model!r}: {self.message}"

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        del out["template"]
        return out


# ------------------------------------------------------------------ numbers and words


def random_images(n: int, shape, seed: int = 1) -> np.ndarray:
    """``n`` images of ``shape`` with uniform random pixels in [0, 1)."""
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def fmt_shape(shape) -> str:
    """``28x28x1``."""
    return "x".join(str(d) for d in shape)
