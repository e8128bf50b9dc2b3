"""The checks in order (:data:`CHECKS`), bound to a model (:class:`BoundCheck`), and the
ways to run them: :func:`checks`, :func:`run_checks`, :func:`check_model`,
:func:`parametrize_checks`.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable

from zoo_core.catalogue import open_zoo
from zoo_core.catalogue.plugins import validate_model
from zoo_core.catalogue.specs import ModelSpec, valid_name
from zoo_core.errors import DataError, PluginError, UnknownNameError, UsageError, render
from zoo_core.settings import model_values
from zoo_core.testing import checks_graph, checks_hparams, checks_training
from zoo_core.testing.diagnose import BuildFailed, first_line, location
from zoo_core.testing.kit import (
    DEFAULT_SHAPES, Check, CheckFailure, CheckResult, Fail, NotApplicable,
)
from zoo_core.testing.subject import Subject

CHECKS: dict[str, Check] = {c.name: c for c in (
    checks_graph.fresh_graph,
    checks_graph.logits_shape,
    checks_graph.batch_independence,
    checks_training.training_flag,
    checks_training.seed_determinism,
    checks_training.all_variables_train,
    checks_training.overfit_one_batch,
    checks_training.short_run_evaluation,
    checks_hparams.hparams_honoured,
)}


class BoundCheck:
    """One check bound to one model: call it in a test, or :meth:`run` it for a result.

    Its ``__name__`` is the check's name, so pytest uses it as the test id.
    """

    def __init__(self, check: Check, subject: Subject, skip: str = ""):
        self.check, self.subject, self.skip = check, subject, skip
        self.__name__ = check.name

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def id(self) -> str:
        """``MODEL.CHECK``, for test ids when several models are checked."""
        return f"{self.subject.name}.{self.name}"

    def __repr__(self) -> str:
        return f"<check {self.name} of model {self.subject.name}>"

    def run(self) -> CheckResult:
        """Run the check; never raises for a failing model."""
        name, model = self.name, self.subject.name
        if self.skip:
            return CheckResult(name, model, "skipped", self.skip)
        start = time.perf_counter()
        try:
            status, template = "passed", self.check.func(self.subject)
        except NotApplicable as e:
            status, template = "skipped", f"not applicable: {e}"
        except Fail as e:
            status, template = "failed", str(e)
        except BuildFailed as e:
            status, template = "failed", e.describe(self.subject.spec.hparams)
        except (DataError, UsageError) as e:
            status, template = "failed", f"could not run: {e.template}"
        except Exception as e:  # noqa: BLE001 - whatever a plugin does is reported, not raised
            status = "failed"
            template = f"the check raised {type(e).__name__}: {first_line(e)}{location(e)}"
        return CheckResult(name, model, status, render(template), time.perf_counter() - start,
                           template)

    def __call__(self) -> CheckResult:
        """Run the check; raise :class:`CheckFailure` if it fails (skip in pytest if skipped)."""
        __tracebackhide__ = True
        result = self.run()
        if self.name == next(reversed(CHECKS)):  # the last check: free the sessions
            self.subject.close()
        if result.status == "failed":
            raise CheckFailure(result.describe())
        if result.status == "skipped" and "pytest" in sys.modules:
            import pytest  # only where pytest runs: it is no dependency of the zoo

            pytest.skip(result.message)
        return result


def _spec(model, hparams: dict | None, name: str | None) -> ModelSpec:
    """The model to check: a registered model's name, a ModelSpec, or a bare builder."""
    if isinstance(model, str):
        if hparams is not None:
            raise UsageError("hparams= declares a bare builder's hyperparameters; to set values "
                             "of a registered model's, use overrides=")
        try:
            return open_zoo().model(model)
        except UnknownNameError as e:
            hint = "is its plugin installed? pip install -e PLUGIN_FOLDER"
            raise UnknownNameError("model", model, e.known, hint=hint) from None
    if isinstance(model, ModelSpec):
        return model
    if callable(model):
        label = name or getattr(model, "__name__", "")
        if not valid_name(label):
            label = "builder"
        try:
            return validate_model(label, model, "a builder under test", hparams or {}, ("image",))
        except PluginError as e:
            raise UsageError(e.template) from None
    raise UsageError(f"expected a model name, a ModelSpec or a builder, got "
                     f"{type(model).__name__}")


def _subject(model, *, hparams=None, overrides=None, shapes=None, seed=0, name=None) -> Subject:
    spec = _spec(model, hparams, name)
    values = model_values(spec.name, spec.hparams, values=overrides or {})
    shapes = tuple(tuple(int(d) for d in sh) for sh in (shapes or DEFAULT_SHAPES))
    for sh in shapes:
        if len(sh) != 3 or min(sh) < 1:
            raise UsageError(f"image shapes are (height, width, channels), got {sh}")
    return Subject(spec, values, shapes, seed)


def checks(model, *, hparams: dict | None = None, overrides: dict | None = None,
           skip: Iterable[str] = (), shapes=None, seed: int = 0,
           name: str | None = None) -> list[BoundCheck]:
    """The conformance checks bound to one model, in order.

    Args:
        model: a registered model's name (its plugin must be installed), a
            :class:`~zoo_core.catalogue.specs.ModelSpec`, or a bare builder function.
        hparams: for a bare builder, its declared hyperparameters (HParam or
            defaults), as given to ``register``.
        overrides: hyperparameter values to check with instead of the defaults
            (each is validated against its declaration).
        skip: names of checks to report as skipped.
        shapes: the image shapes (height, width, channels) the model accepts;
            default 28x28x1, 20x12x1 and 32x32x3. Narrow it only for a model that
            truly cannot take other sizes, and say so in its README.
        seed: the graph seed to build with.
        name: for a bare builder, the name to report.

    Returns:
        one :class:`BoundCheck` per check; ``check()`` raises
        :class:`CheckFailure` on failure, ``check.run()`` returns a
        :class:`CheckResult`.

    Raises:
        UsageError: an unknown model, check name or hyperparameter.
    """
    skip = list(skip)
    for s in skip:
        if s not in CHECKS:
            raise UnknownNameError("check", s, CHECKS)
    subject = _subject(model, hparams=hparams, overrides=overrides, shapes=shapes, seed=seed,
                       name=name)
    return [BoundCheck(c, subject, "skipped on request" if c.name in skip else "")
            for c in CHECKS.values()]


def run_checks(model, **kwargs) -> list[CheckResult]:
    """Run every check on one model (arguments as for :func:`checks`); never raises for
    a failing model."""
    bound = checks(model, **kwargs)
    bound[0].subject.prepare()
    try:
        return [c.run() for c in bound]
    finally:
        if bound:
            bound[0].subject.close()


def check_model(model, **kwargs) -> list[CheckResult]:
    """Run every check; raise one :class:`CheckFailure` listing all failures, if any."""
    __tracebackhide__ = True
    results = run_checks(model, **kwargs)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise CheckFailure(f"{len(failed)} of {len(results)} checks failed:\n"
                           + "\n".join(r.describe() for r in failed))
    return results


def parametrize_checks(*models, argname: str = "check", **kwargs):
    """``pytest.mark.parametrize`` over the checks of one or more models, with skipped
    checks marked as skipped. Test ids are the check names for one model, and
    ``MODEL.CHECK`` for several::

        @testing.parametrize_checks("mynet", "mynet-large", skip=["overfit_one_batch"])
        def test_conformance(check):
            check()

    Other arguments are those of :func:`checks`, applied to every model.
    """
    import pytest  # only where pytest runs: it is no dependency of the zoo

    if not models:
        raise UsageError("parametrize_checks needs at least one model")
    bound = [c for m in models for c in checks(m, **kwargs)]
    params = [pytest.param(c, id=c.name if len(models) == 1 else c.id,
                           marks=[pytest.mark.skip(reason=c.skip)] if c.skip else [])
              for c in bound]
    return pytest.mark.parametrize(argname, params)
