"""Whose fault, and where: a plugin's errors as one paragraph instead of a traceback.

:func:`~zoo_core.errors.location` finds the deepest frame of an error in the plugin's own
code (outside the zoo, TensorFlow, NumPy, click, pluggy, pytest, the standard library and
the scripts folder); :func:`describe_op_error` says what a TensorFlow run-time error means
and which op (created where) failed; :func:`graph_errors` turns a run-time error in a model's graph
into a :class:`GraphRunError` naming the plugin, the model, the op and the shapes. The
conformance kit (:mod:`zoo_core.testing.diagnose`) words the same facts for its checks.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from zoo_core.catalogue.specs import ModelSpec
from zoo_core.errors import PluginError, first_line, location, plugin_frames, relpath

__all__ = ["GraphRunError", "describe_op_error", "first_line", "graph_errors", "location"]

_OP_NOISE = ("Graph execution error", "Detected at node", "Node:", "[[", "File ")


class GraphRunError(PluginError):
    """A model's graph failed when it ran (a shape mismatch at the first step, ...)."""


# Grappler fuses a MatMul or a convolution with the bias add (and activation) after it into
# one kernel named after the LAST op (``model/add``), so TensorFlow blames that op for the
# MatMul's shapes. A reason that only these op types give names the op to blame instead.
_REASON_OPS = {
    "Matrix size-incompatible": ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"),
    "input depth must be evenly divisible by filter depth": ("Conv2D", "Conv3D"),
    "input and filter must have the same depth": ("Conv2D", "DepthwiseConv2dNative"),
}


def failing_op(e):
    """The op a TensorFlow run-time error is about: its own op, or, when that op was fused
    with the op the reason belongs to (a MatMul and the ``+ b`` after it), the latter."""
    op = getattr(e, "op", None)
    types = next((t for text, t in _REASON_OPS.items() if text in (e.message or "")), ())
    if op is None or not types or op.type in types:
        return op
    seen, frontier = set(), [op]
    for _ in range(3):  # a fused kernel is an op, its bias add and an activation
        frontier = [t.op for o in frontier for t in o.inputs if t.op.name not in seen]
        seen.update(o.name for o in frontier)
        found = [o for o in frontier if o.type in types]
        if found:
            return found[0]
    return op


def describe_op_error(e) -> str:
    """The reason in a TensorFlow run-time error, and where the failing op was created."""
    lines = [ln.strip() for ln in (e.message or "").splitlines()]
    reasons = [ln for ln in lines if ln and not ln.startswith(_OP_NOISE)]
    reason = (reasons[0] if reasons else first_line(e))[:300]
    where = ""
    op = failing_op(e)
    if op is not None:
        where = f" in op {op.name!r}"
        frames = plugin_frames(op.traceback or ())
        if frames:
            where += f" (created at {relpath(frames[-1].filename)}:{frames[-1].lineno})"
    return f"{type(e).__name__}{where}: {reason}"


def _op_inputs(e) -> str:
    op = failing_op(e)
    try:
        shapes = [str(t.shape) for t in op.inputs] if op is not None else []
    except Exception:  # noqa: BLE001 - only a detail of the message
        shapes = []
    return f"; its inputs have static shapes {', '.join(shapes)}" if shapes else ""


@contextlib.contextmanager
def graph_errors(model: ModelSpec, image_shape, num_classes: int,
                 doing: str) -> Iterator[dict[str, str]]:
    """Around running ``model``'s graph: a TensorFlow run-time error becomes a
    :class:`GraphRunError`, one paragraph, with the original as its cause.

    Yields a dict whose ``"doing"`` (initially ``doing``) the body may update
    ("at epoch 3"), for the message."""
    from zoo_core._tf import tf as import_tf  # TF is loaded by now: a graph is running

    tf = import_tf()
    state = {"doing": doing}
    try:
        yield state
    except tf.errors.OpError as e:
        doing = state["doing"]
        h, w, c = image_shape
        raise GraphRunError(
            f"model {model.name!r} (plugin {model.plugin}) built a graph that fails when it runs, "
            f"{doing}: {describe_op_error(e)}{_op_inputs(e)}. The images were "
            f"[batch, {h}, {w}, {c}] with {num_classes} classes. Check the shapes the builder "
            "assumes: take sizes from images.shape, reshape with -1 for the batch, end with "
            f"num_classes logits; `zoo check {model.name}` builds it for several shapes and "
            "says which fails") from e
