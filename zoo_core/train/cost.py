"""What a model costs: its parameters and its multiply-accumulates (MACs) per example.

Counted from the graph, not declared: :func:`model_cost` builds the model's forward pass
alone, for one example, in a fresh graph (the inference path: ``training`` is the constant
False, no loss, no gradients), and :func:`count_macs` adds up the multiply-accumulates of
the ops that do nearly all of a small classifier's arithmetic:

- ``MatMul`` [m, k] x [k, n]: m·k·n (a dense layer 784 -> 10 on one example: 7,840);
- ``BatchMatMul`` (V2, V3): the same per matrix, times the batch dimensions;
- ``Conv2D``: every output element costs kh·kw·c_in (a 3x3 conv from 1 to 32 channels,
  'same' on 28x28: 28·28·9·32 = 225,792);
- ``DepthwiseConv2dNative``: every output element costs kh·kw.

Additions of biases, activations, pooling and normalization are not counted (nor by
torchvision's or timm's figures, which count the same ops). Every shape must be static;
the counted ops are those the logits depend on. Functional control flow (``While``,
``If``, function calls) hides its ops from the graph, so a model that uses it has no count
(:class:`UncountableGraph`) rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from zoo_core._tf import tf as import_tf
from zoo_core.train.forward import forward

MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
CONVOLUTIONS = ("Conv2D", "DepthwiseConv2dNative")
# Ops whose bodies are functions the graph does not show: their MACs cannot be counted here.
HIDDEN_BODIES = ("While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase",
                 "PartitionedCall", "StatefulPartitionedCall")


class UncountableGraph(ValueError):
    """The graph's MACs cannot be counted: a shape is not static, or ops hide in a function."""


@dataclass(frozen=True)
class Cost:
    """A model's size and arithmetic: ``params`` (trainable values), ``macs`` per example
    (None when the graph cannot be counted, ``why`` says why)."""

    params: int
    macs: int | None
    why: str = ""


def count_macs(outputs: Iterable[Any] | Any) -> int:
    """The multiply-accumulates of the MatMul, BatchMatMul and convolution ops that
    ``outputs`` (a tensor, or several) depend on, for the batch their shapes hold.

    Raises:
        UncountableGraph: a counted op's shapes are not static, or an op the outputs depend
            on runs a function body (While, If, a call) whose ops the graph does not show.
    """
    total = 0
    for op in _ancestors(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
        if op.type in HIDDEN_BODIES:
            raise UncountableGraph(f"op {op.name!r} ({op.type}) runs a function body whose "
                                   "MACs the graph does not show")
        if op.type in MATMULS:
            total += _matmul_macs(op)
        elif op.type in CONVOLUTIONS:
            total += _conv_macs(op)
    return total


def _ancestors(outputs: list) -> list:
    """Every op the tensors in ``outputs`` depend on (through data and control inputs)."""
    seen: dict[str, Any] = {}
    todo = [t.op for t in outputs]
    while todo:
        op = todo.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        todo.extend(t.op for t in op.inputs)
        todo.extend(op.control_inputs)
    return list(seen.values())


def _static(op, tensor) -> list[int]:
    dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        raise UncountableGraph(f"op {op.name!r} ({op.type}) has a shape that is not static: "
                               f"{tensor.shape}")
    return dims


def _matmul_macs(op) -> int:
    a, b = (_static(op, t) for t in op.inputs[:2])
    out = _static(op, op.outputs[0])
    if op.type == "MatMul":
        transpose_a = op.get_attr("transpose_a")
    else:
        transpose_a = op.get_attr("adj_x")
    inner = a[-2] if transpose_a else a[-1]
    batch = 1
    for d in out[:-2]:
        batch *= d
    return batch * out[-2] * out[-1] * inner


def _conv_macs(op) -> int:
    out = _static(op, op.outputs[0])
    kernel = _static(op, op.inputs[1])  # [kh, kw, c_in, c_out] or [kh, kw, c_in, multiplier]
    elements = 1
    for d in out:
        elements *= d
    per_output = kernel[0] * kernel[1] * (kernel[2] if op.type == "Conv2D" else 1)
    return elements * per_output


# A process counts each (builder, settings, input) once: the seeds of a batch share it.
_COUNTED: dict[tuple, Cost] = {}


def model_cost(model, hparams: Mapping[str, Any], image_shape, num_classes: int) -> Cost:
    """Parameters and MACs per example of ``model`` with ``hparams``, counted from its
    forward pass for one example in a fresh graph (nothing trains or runs); once per process
    for the same builder, hyperparameters and input.

    Args:
        model: a registered :class:`~zoo_core.catalogue.specs.ModelSpec`.
        hparams: its merged hyperparameters.
        image_shape: (height, width, channels).
        num_classes: the number of logits.

    Raises:
        the builder's errors, as :func:`zoo_core.train.forward.forward` raises them.
    """
    key = (model.build, model.name, tuple(sorted((k, repr(v)) for k, v in hparams.items())),
           tuple(image_shape), num_classes)
    try:
        found = _COUNTED.get(key)
    except TypeError:  # a builder that cannot be a key (an unhashable callable): not kept
        return _count(model, hparams, image_shape, num_classes)
    if found is None:
        found = _COUNTED[key] = _count(model, hparams, image_shape, num_classes)
    return found


def _count(model, hparams: Mapping[str, Any], image_shape, num_classes: int) -> Cost:
    tf = import_tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default() as built:  # the builder's graph, with a free batch dimension
        images = v1.placeholder(tf.float32, [None, *image_shape], name="images")
        net = forward(model, images, tf.constant(False), num_classes=num_classes,
                      hparams=hparams)
    # the same graph imported for one example: every shape is inferred again, static now
    with tf.Graph().as_default():
        one = v1.placeholder(tf.float32, [1, *image_shape], name="images")
        [logits] = v1.import_graph_def(built.as_graph_def(), {images.name: one},
                                       return_elements=[net.logits.name], name="one")
        try:
            return Cost(net.params, count_macs(logits))
        except UncountableGraph as e:
            return Cost(net.params, None, str(e))
