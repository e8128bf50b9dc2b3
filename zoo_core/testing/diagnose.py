"""Saying what went wrong: the builder's own errors, TensorFlow's run-time errors, and
where in the plugin's code each came from.

The core reports a builder's mistakes as :class:`~zoo_core.train.graph.BuilderError`
and :class:`~zoo_core.train.graph.LogitsError`; :func:`building` turns them into the
kit's own (:class:`BuildFailed`, :class:`~zoo_core.testing.kit.Fail`), worded for the
shapes and class counts a check builds with. Locations point at the deepest frame
outside the zoo, TensorFlow, NumPy and the standard library: the plugin's line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
import traceback
from typing import Any, Iterator, Mapping

import zoo_core
from zoo_core.errors import PluginError
from zoo_core.testing.kit import Fail, fmt_shape
from zoo_core.train.graph import BuilderError, LogitsError, LogitsProblem


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
    (:func:`~zoo_core.train.graph.logits_problem`)."""
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


_OP_NOISE = ("Graph execution error", "Detected at node", "Node:", "[[", "File ")


def describe_op_error(e) -> str:
    """The reason in a TensorFlow run-time error, and where the failing op was created."""
    lines = [ln.strip() for ln in (e.message or "").splitlines()]
    reasons = [ln for ln in lines if ln and not ln.startswith(_OP_NOISE)]
    reason = (reasons[0] if reasons else first_line(e))[:300]
    where = ""
    op = getattr(e, "op", None)
    if op is not None:
        where = f" in op {op.name!r}"
        frames = _plugin_frames(op.traceback or ())
        if frames:
            where += f" (created at {_relpath(frames[-1].filename)}:{frames[-1].lineno})"
    return f"{type(e).__name__}{where}: {reason}"


def first_line(e: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), or its type's name."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def location(e: BaseException) -> str:
    """`` (at file:line)``: the deepest frame of the failure in the plugin's own code."""
    frames = []
    while e is not None:
        frames += traceback.extract_tb(e.__traceback__)
        e = e.__cause__
    frames = _plugin_frames(frames)
    if not frames:
        return ""
    return f" (at {_relpath(frames[-1].filename)}:{frames[-1].lineno})"


def _plugin_frames(frames) -> list:
    """The frames outside the zoo, TensorFlow, Keras, NumPy and the standard library."""
    libs = _library_dirs()
    return [f for f in frames if not os.path.realpath(f.filename).startswith(libs)]


def _library_dirs() -> tuple[str, ...]:
    dirs = [os.path.dirname(zoo_core.__file__)]
    for key in ("stdlib", "platstdlib"):
        try:
            dirs.append(sysconfig.get_paths()[key])
        except KeyError:  # pragma: no cover
            pass
    for mod in ("tensorflow", "tf_keras", "keras", "numpy"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__file__", None):
            dirs.append(os.path.dirname(m.__file__))
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


def _relpath(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return path
    return path if rel.startswith("..") else rel
