"""Saying what went wrong: the builder's own errors, TensorFlow's run-time errors, and
where in the plugin's code each came from.

The core reports a builder's mistakes as :class:`~zoo_core.train.forward.BuilderError`
and :class:`~zoo_core.train.forward.LogitsError`; :func:`building` turns them into the
kit's own (:class:`BuildFailed`, :class:`~zoo_core.testing.kit.Fail`), worded for the
shapes and class counts a check builds with. Locations point at the deepest frame
outside the zoo, TensorFlow, NumPy and the standard library: the plugin's line.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from zoo_core.errors import PluginError
from zoo_core.testing.kit import Fail, fmt_shape
from zoo_core.train.blame import describe_op_error, first_line, location
from zoo_core.train.forward import BuilderError, LogitsError, LogitsProblem


class BuildFailed(Exception):
    """The builder raised; carries what it raised and with which settings."""

    def __init__(self, error: BaseException, hparams: Mapping[str, Any], shape):
        self.error, self.hparams, self.shape = error, dict(hparams), tuple(shape)
        super().__init__(str(error))

    def describe(self, declared: Mapping[str, Any]) -> str:
        e = self.error
        msg = (f"the builder to return logits for {fmt_shape(self.shape)} images, got "
               f"{type(e).__name__}: {first_line(e)}{location(e)}")
        if isinstance(e, KeyError) and e.args and e.args[0] not in declared:
            msg += (f"; it looks up hyperparameter {e.args[0]!r}, which the model does not "
                    "declare: add it to hparams= in register()")
        return "expected " + msg


@contextlib.contextmanager
def building(hparams: Mapping[str, Any], shape, num_classes: int) -> Iterator[None]:
    """Around building a model for ``shape`` images: the core's errors as the kit's.

    Raises:
        BuildFailed: the builder raised.
        Fail: it returned no logits the trainer accepts, or a graph it cannot use.
    """
    try:
        yield
    except BuilderError as e:
        raise BuildFailed(e.error, hparams, shape) from e
    except LogitsError as e:
        raise logits_failure(e.problem, num_classes, shape) from None
    except PluginError as e:  # e.g. no trainable variables
        raise Fail("a graph the trainer can use", str(e).split(": ", 1)[-1]) from e


# What each of the core's logits rules expects, in the kit's words, by LogitsProblem.kind:
# (expected, got), formatted with k (classes), shape (28x28x1), dims (28, 28, 1).
_LOGITS_WORDS = {
    "tensor": ("build() to return a logits tf.Tensor", "{got}"),
    "dtype": ("float32 logits", "{got}"),
    "shape": ("logits of shape [batch, {k}] for {shape} images and num_classes={k}",
              "shape {got}"),
    "batch": ("a free batch dimension (static shape [None, {k}]) for images of shape "
              "[None, {dims}]", "{got}"),
}


def logits_failure(problem: LogitsProblem, num_classes: int, shape) -> Fail:
    """The kit's failure for logits the core refuses
    (:func:`~zoo_core.train.forward.logits_problem`)."""
    words = {"k": num_classes, "shape": fmt_shape(shape), "dims": ", ".join(map(str, shape)),
             "got": problem.got}
    expected, got = _LOGITS_WORDS[problem.kind]
    return Fail(expected.format(**words), got.format(**words), problem.hint)


def run(tf, sess, fetch, feed, what: str):
    """``sess.run(fetch, feed)``; a TensorFlow run-time error fails the check, saying where."""
    try:
        return sess.run(fetch, feed)
    except tf.errors.OpError as e:
        raise Fail(f"{what} to run", describe_op_error(e)) from e


# One definition each, in the trainer (zoo_core.train.blame); re-exported for the kit.
__all__ = ["BuildFailed", "building", "logits_failure", "run", "describe_op_error",
           "first_line", "location"]
