"""The one call of a plugin's builder: :func:`forward` calls ``model.build`` under the
``model`` variable scope and checks what it returned (:func:`logits_problem`); a builder's
mistakes are :class:`BuilderError` and :class:`LogitsError`, one paragraph each that names the
plugin's file and line. The training graph (:mod:`zoo_core.train.graph`), its step loop, the
cost count, inference and the conformance kit all build a model through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from zoo_core._tf import tf as import_tf
from zoo_core.catalogue.specs import ModelSpec
from zoo_core.errors import PluginError
from zoo_core.train.blame import first_line, location


class BuilderError(PluginError):
    """The plugin's builder raised; ``error`` is what it raised."""

    def __init__(self, model: ModelSpec, error: BaseException):
        if isinstance(error, SystemExit):
            text = f"{_where(model)}: the builder called sys.exit({error.code!r}){location(error)}"
        else:
            text = (f"{_where(model)}: the builder raised {type(error).__name__}: "
                    f"{first_line(error)}{location(error)}")
        super().__init__(text)
        self.error = error


@dataclass(frozen=True)
class LogitsProblem:
    """What is wrong with a builder's return value."""

    kind: str  # which rule it breaks: "tensor", "dtype", "shape" or "batch"
    rule: str  # "logits must be float32"
    got: str  # "float64"
    hint: str  # what to change in the builder


class LogitsError(PluginError):
    """The builder returned something other than ``[batch, num_classes]`` float32 logits."""

    def __init__(self, model: ModelSpec, problem: LogitsProblem):
        super().__init__(f"model {model.name!r} ({model.plugin}): {problem.rule}, got {problem.got}")
        self.problem = problem


def _where(model: ModelSpec) -> str:
    return f"model {model.name!r} ({model.plugin})"


def logits_problem(logits: Any, num_classes: int) -> LogitsProblem | None:
    """What is wrong with ``logits`` as a builder's return value, or None."""
    tf = import_tf()
    if not isinstance(logits, tf.Tensor):
        return LogitsProblem("tensor", "the builder must return a logits tensor", type(logits).__name__,
                             "return the output of the last layer")
    if logits.dtype != tf.float32:
        return LogitsProblem("dtype", "logits must be float32", logits.dtype.name,
                             "cast the last layer's output with tf.cast(logits, tf.float32)")
    shape = logits.shape.as_list() if logits.shape.ndims is not None else None
    if shape is None or len(shape) != 2 or shape[1] != num_classes:
        return LogitsProblem("shape", f"logits must have shape [batch, {num_classes}]", str(shape),
                             "end with a dense layer of num_classes units")
    if shape[0] is not None:
        return LogitsProblem("batch", f"logits must have a free batch dimension ([None, {num_classes}])",
                             str(shape), "do not hard-code the batch size; reshape with -1")
    return None


@dataclass
class Forward:
    """A builder's forward pass, as built in the current graph."""

    logits: Any  # float32 [batch, num_classes]
    trainable: list  # the trainable variables it created
    params: int  # their total size


MODEL_SCOPE = "model"  # the variable scope of the builder: the model's own variables


def forward(model: ModelSpec, images, training, *, num_classes: int,
            hparams: Mapping[str, Any], reuse: bool = False) -> Forward:
    """Call ``model.build`` the one way the zoo calls it, in the current graph.

    Under ``variable_scope("model")``, with a copy of ``hparams``; the logits are checked.
    ``reuse``: the variables exist already (a second call, in :class:`StepLoop`).

    Raises:
        BuilderError: the builder raised.
        LogitsError: it returned no ``[batch, num_classes]`` float32 tensor.
        PluginError: it created no trainable variable.
    """
    v1 = import_tf().compat.v1
    with v1.variable_scope(MODEL_SCOPE, reuse=True if reuse else None):
        try:
            logits = model.build(images, num_classes=num_classes, hparams=dict(hparams),
                                 training=training)
        except (Exception, SystemExit) as e:  # sys.exit() in a plugin is the plugin's failure
            raise BuilderError(model, e) from e
    problem = logits_problem(logits, num_classes)
    if problem is not None:
        raise LogitsError(model, problem)
    trainable = v1.trainable_variables()
    if not trainable:
        raise PluginError(f"{_where(model)}: the builder created no trainable variables")
    return Forward(logits, trainable, int(sum(np.prod(v.shape.as_list()) for v in trainable)))
