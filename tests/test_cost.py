"""Parameters and multiply-accumulates per example, counted from the graph (zoo_core/train/cost.py),
checked on graphs small enough to count by hand, on the shipped models, and against the
registry's reference rows."""

from __future__ import annotations

import pytest

from zoo_core._tf import tf as import_tf
from zoo_core.train.cost import CONVOLUTIONS, MATMULS, UncountableGraph, count_macs, model_cost

tf = import_tf()
v1 = tf.compat.v1
pytestmark = pytest.mark.filterwarnings("ignore:`tf.layers.*` is deprecated")


def in_graph(build):
    """What ``build()`` returns, built in a fresh graph."""
    with tf.Graph().as_default():
        return count_macs(build())


def test_a_dense_layer_costs_inputs_times_outputs_per_example():
    # 784 inputs, 10 outputs: 7,840 multiply-accumulates per example; the bias is not one
    assert in_graph(lambda: v1.layers.dense(v1.placeholder(tf.float32, [1, 784]), 10)) == 7_840
    # a batch of 4 costs four times as much: the count is for the batch the shapes hold
    assert in_graph(lambda: v1.layers.dense(v1.placeholder(tf.float32, [4, 784]), 10)) == 31_360


def test_a_convolution_costs_its_kernel_for_every_output_element():
    # 3x3 from 1 channel to 32, 'same' on 28x28: 28*28 outputs * 32 channels * 9 taps
    conv = lambda: v1.layers.conv2d(v1.placeholder(tf.float32, [1, 28, 28, 1]), 32, 3,  # noqa: E731
                                    padding="same")
    assert in_graph(conv) == 28 * 28 * 9 * 32 == 225_792
    # 'valid' with stride 2 on 28x28 -> 13x13, from 32 channels to 64: each output 3*3*32
    strided = lambda: v1.layers.conv2d(  # noqa: E731
        v1.placeholder(tf.float32, [1, 28, 28, 32]), 64, 3, strides=2)
    assert in_graph(strided) == 13 * 13 * 64 * 3 * 3 * 32


def test_depthwise_transposed_and_batched_products_are_counted():
    def depthwise():
        x = v1.placeholder(tf.float32, [1, 8, 8, 3])
        return tf.nn.depthwise_conv2d(x, tf.ones([3, 3, 3, 2]), [1, 1, 1, 1], "SAME")
    assert in_graph(depthwise) == 8 * 8 * (3 * 2) * 9  # each output: its own 3x3 taps

    def transposed():  # [5, 7]^T x [5, 3]: 7*3 outputs of 5 products each
        return tf.matmul(v1.placeholder(tf.float32, [5, 7]), tf.ones([5, 3]), transpose_a=True)
    assert in_graph(transposed) == 7 * 3 * 5

    def batched():  # 2 x 4 matrices [6, 5] x [5, 3]
        return tf.matmul(v1.placeholder(tf.float32, [2, 4, 6, 5]), tf.ones([2, 4, 5, 3]))
    assert in_graph(batched) == 2 * 4 * 6 * 3 * 5


def test_only_what_the_output_depends_on_is_counted():
    def two_heads():
        x = v1.placeholder(tf.float32, [1, 100])
        v1.layers.dense(x, 1000)  # another head: not on the way to the output
        return v1.layers.dense(x, 10)
    assert in_graph(two_heads) == 1_000


def test_a_graph_it_cannot_count_says_so_rather_than_guessing():
    with pytest.raises(UncountableGraph, match="not static"):
        in_graph(lambda: v1.layers.dense(v1.placeholder(tf.float32, [None, 784]), 10))

    def looped():  # the matmul runs inside a While op's body, which the graph does not show
        x = v1.placeholder(tf.float32, [1, 4])
        return tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, tf.matmul(y, tf.eye(4))),
                             [0, x])[1]
    with pytest.raises(UncountableGraph, match="While"):
        in_graph(looped)


def cost(the_zoo, model, **changes):
    resolved = the_zoo.resolve(model, "fashion")
    return model_cost(resolved.model, {**resolved.hparams, **changes}, (28, 28, 1), 10)


def test_the_cnn_by_hand(the_zoo):
    conv1 = 28 * 28 * 3 * 3 * 1 * 32  # 'same', then a 2x2 pool: 14x14
    conv2 = 14 * 14 * 3 * 3 * 32 * 64  # then 7x7x64 = 3,136 features
    dense = 7 * 7 * 64 * 128
    logits = 128 * 10
    found = cost(the_zoo, "cnn")  # the registry's: batch normalization after each layer
    assert found.macs == conv1 + conv2 + dense + logits == 4_241_152
    # batch normalization's offset replaces each layer's bias, and adds a scale
    assert found.params == (9 * 32 + 2 * 32) + (9 * 32 * 64 + 2 * 64) + (3136 * 128 + 2 * 128) \
        + (1280 + 10) == 421_866
    plain = cost(the_zoo, "cnn", batch_norm=False)  # issue 17's 30-second cnn
    assert plain.macs == found.macs
    assert plain.params == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (3136 * 128 + 128) + (1280 + 10)


def test_the_resnet_by_hand(the_zoo):
    """zoo-cnn's resnet (issue 26's stretch: under a million parameters)."""
    def conv(k, cin, cout):  # batch normalization's scale and offset replace the bias
        return k * k * cin * cout + 2 * cout

    stage1 = 4 * conv(3, 32, 32)
    stage2 = conv(3, 32, 64) + conv(3, 64, 64) + conv(1, 32, 64) + 2 * conv(3, 64, 64)
    stage3 = conv(3, 64, 128) + conv(3, 128, 128) + conv(1, 64, 128) + 2 * conv(3, 128, 128)
    found = cost(the_zoo, "resnet")
    assert found.params == conv(3, 1, 32) + stage1 + stage2 + stage3 + 128 * 10 + 10 == 696_042
    # each output element of a convolution costs its taps times the input channels: 3 stages
    # of about 25.7M each, at 28x28, 14x14 and 7x7; global average pooling is not one
    assert found.macs == 28 * 28 * (9 * 32 + 4 * 9 * 32 * 32) + 14 * 14 * (
        9 * 32 * 64 + 3 * 9 * 64 * 64 + 32 * 64) + 7 * 7 * (
        9 * 64 * 128 + 3 * 9 * 128 * 128 + 64 * 128) + 128 * 10 == 80_508_672


def test_the_rnn_by_hand(the_zoo):
    # the registry's rnn: 2 layers of 128 each way over 28 rows of 28 pixels, then the same
    # over the 28 columns (read=rows+columns). BasicRNNCell multiplies [x_t, h_{t-1}] by its
    # kernel at every step, the zero state's too.
    first = 28 * (28 + 128) * 128  # per direction and pass
    second = 28 * (128 + 128) * 128
    logits = 2 * 2 * 128 * 10  # the last outputs of both directions of both passes
    basic = cost(the_zoo, "rnn", kernel="basic")
    assert basic.macs == 2 * 2 * (first + second) + logits == 5_911_552
    # the sequence kernel computes the same function and skips the zero state's product
    assert cost(the_zoo, "rnn", kernel="sequence").macs == basic.macs - 2 * 2 * 2 * 128 * 128
    per_pass = 2 * ((28 + 128) * 128 + 128 + (256 * 128 + 128))
    assert basic.params == 2 * per_pass + 512 * 10 + 10 == 217_098
    # reading the rows only, as before issue 13
    rows = cost(the_zoo, "rnn", kernel="basic", read="rows")
    assert rows.macs == 2 * (first + second) + 2 * 128 * 10 == 2_955_776
    assert rows.params == per_pass + 256 * 10 + 10


@pytest.mark.parametrize("model, gates", [("rnn", 1), ("lstm", 4)])
def test_two_rows_a_projection_and_both_passes_by_hand(the_zoo, model, gates):
    # issue 13's reading, one layer of 128 one way: each pass (the rows, then the columns)
    # projects 14 steps of 2 x 28 pixels to 64 features, then the cell multiplies
    # [x_t, h_{t-1}] (64 + 128) by its kernel (gates x 128 columns) at every step
    reading = dict(layers=1, bidirectional=False, dropout=0.0, rows_per_step=2, projection=64,
                   read="rows+columns")
    projection = 14 * 56 * 64
    cell = 14 * (64 + 128) * gates * 128
    logits = 2 * 128 * 10
    basic = cost(the_zoo, model, kernel="basic", **reading)
    assert basic.macs == 2 * (projection + cell) + logits == {1: 791_040, 4: 2_855_424}[gates]
    # the sequence kernels skip each pass's product with the zero state
    sequence = cost(the_zoo, model, kernel="sequence", **reading)
    assert sequence.macs == basic.macs - 2 * 128 * gates * 128
    per_pass = (56 * 64 + 64) + (64 + 128) * gates * 128 + gates * 128
    assert basic.params == sequence.params == 2 * per_pass + 2 * 128 * 10 + 10


def test_the_counts_agree_with_tensorflows_profiler(the_zoo):
    """tf.compat.v1.profiler counts 2 float operations per multiply-accumulate of MatMul and
    Conv2D (and, unlike the zoo, also biases, activations and pooling: left out here)."""
    resolved = the_zoo.resolve("cnn", "fashion")
    from zoo_core.train.forward import forward

    with tf.Graph().as_default() as graph:
        images = v1.placeholder(tf.float32, [None, 28, 28, 1])
        net = forward(resolved.model, images, tf.constant(False), num_classes=10,
                      hparams=resolved.hparams)
    with tf.Graph().as_default() as one:
        fixed = v1.placeholder(tf.float32, [1, 28, 28, 1])
        [logits] = v1.import_graph_def(graph.as_graph_def(), {images.name: fixed},
                                       return_elements=[net.logits.name], name="one")
        options = {**v1.profiler.ProfileOptionBuilder.float_operation(), "output": "none"}
        profile = v1.profiler.profile(one, cmd="scope", options=options)
    flops, todo = {}, [profile]
    while todo:
        node = todo.pop()
        flops[node.name] = node.float_ops
        todo.extend(node.children)
    types = {op.name: op.type for op in one.get_operations()}
    counted = sum(f for name, f in flops.items() if types.get(name) in MATMULS + CONVOLUTIONS)
    assert counted == 2 * count_macs(logits) == 2 * 4_241_152


def test_the_registry_states_every_models_params_and_macs_as_the_graph_counts_them(the_zoo):
    """registry.toml's params and macs cannot go stale: a changed default is counted again."""
    checked = 0
    for name, entry in the_zoo.catalogue.models.items():
        for dataset, ref in entry.reference.items():
            resolved = the_zoo.resolve(name, dataset)
            found = model_cost(resolved.model, resolved.hparams, resolved.dataset.image_shape,
                               len(resolved.dataset.classes))
            assert (ref.get("params"), ref.get("macs")) == (found.params, found.macs), (
                f"registry.toml's [models.{name}.reference.{dataset}] should say params = "
                f"{found.params:_}, macs = {found.macs:_}")
            checked += 1
    assert checked >= 5
