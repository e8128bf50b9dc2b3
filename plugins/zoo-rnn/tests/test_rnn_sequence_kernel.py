"""zoo-rnn's sequence kernel (zoo_rnn.sequence) against its original graph, BasicRNNCell +
static_rnn: for every configuration below zoo_core.testing.assert_same_function shows the
same variables, and for the same weights on real Fashion-MNIST rows the same logits and
gradients (every variable, the images) up to float32 rounding. The plugin offers
kernel=sequence only because of this test (DESIGN.md, "Precision and speed")."""

import numpy as np
import pytest

import zoo_rnn
from zoo_core import testing

# float32 rounding only: the sequence kernel sums the same products in another order
RTOL, ATOL = 1e-5, 1e-6

CASES = {
    "one layer": {},
    "two layers": {"layers": 2},
    "bidirectional, dropout 0.2": {"bidirectional": True, "dropout": 0.2},
    "two bidirectional layers, mean readout": {"bidirectional": True, "layers": 2,
                                               "readout": "mean", "hidden": 32},
    "max readout": {"readout": "max", "hidden": 48},
    "registry default: two bidirectional layers": {"bidirectional": True, "layers": 2},
    "two layers, dropout 0.2": dict(layers=2, dropout=0.2),
    # issue 13's hyperparameters change the sequences either kernel reads, or (init=irnn)
    # the activation both kernels apply: ReLU, with ReluGrad in the sequence kernel
    "two rows per step through a projection of 32": {"rows_per_step": 2, "projection": 32},
    "rows and columns, bidirectional, 4 rows per step, mean readout": {
        "read": "rows+columns", "bidirectional": True, "rows_per_step": 4, "hidden": 32,
        "readout": "mean"},
    "irnn, two layers": {"init": "irnn", "layers": 2, "hidden": 48},
    # issue 26: the masks are drawn while training only (test_recurrent_dropout_... below)
    "registry default with recurrent dropout 0.3": {"bidirectional": True, "layers": 2,
                                                    "recurrent_dropout": 0.3},
    "irnn, rows and columns, bidirectional, projection, dropout, max readout": {
        "init": "irnn", "read": "rows+columns", "bidirectional": True, "projection": 24,
        "rows_per_step": 4, "dropout": 0.2, "readout": "max", "hidden": 32},
}


@pytest.mark.parametrize("overrides", list(CASES.values()), ids=list(CASES))
def test_sequence_kernel_matches_basic_rnn_cell_and_static_rnn(overrides):
    # the same variables, then random weights, biases far from their zero init, so that every
    # path matters; the kernels small enough (eigenvalues of the recurrent part within ~0.6)
    # that the RNN is not chaotic: in a chaotic one float32 rounding grows over the 28 steps
    # whatever the kernel (measured with std 0.15, one layer: basic's logits are 1.1e-5 from a
    # float64 numpy reference, the sequence kernel's 0.7e-5, and 1.6e-5 from each other)
    testing.assert_same_function(zoo_rnn.build, zoo_rnn.HPARAMS, overrides=overrides,
                                 weight_std=0.05, rtol=RTOL, atol=ATOL)


def test_dropout_is_on_while_training_only():
    x, _ = testing.real_images(4)
    over = {"dropout": 0.5, "kernel": "sequence", "layers": 2, "hidden": 16}
    off = testing.run_builder(zoo_rnn.build, x, zoo_rnn.HPARAMS, overrides=over)
    again = testing.run_builder(zoo_rnn.build, x, zoo_rnn.HPARAMS, overrides=over)
    on = testing.run_builder(zoo_rnn.build, x, zoo_rnn.HPARAMS, overrides=over, training=True)
    np.testing.assert_array_equal(off, again)
    assert not np.allclose(off, on)


@pytest.mark.parametrize("reverse, final_only, activation",
                         [(False, False, "tanh"), (True, True, "tanh"), (False, False, "relu")])
def test_recurrent_dropout_masks_the_state_fed_back_forward_and_backward(reverse, final_only,
                                                                          activation):
    """With a given mask on h_{t-1} (variational recurrent dropout), the sequence kernel's
    outputs and its hand-written gradients equal TensorFlow's own gradients of the RNN
    written out step by step with the same mask."""
    import tensorflow as tf
    from zoo_rnn.sequence import rnn_layer

    rng = np.random.default_rng(0)
    steps, batch, depth, units = 6, 5, 7, 8
    x = rng.normal(size=(steps, batch, depth)).astype(np.float32)
    kernel = rng.normal(scale=0.3, size=(depth + units, units)).astype(np.float32)
    bias = rng.normal(scale=0.5, size=units).astype(np.float32)
    mask = (rng.random((batch, units)) > 0.3).astype(np.float32) / 0.7
    weights = rng.normal(size=(batch, units) if final_only else (steps, batch, units))

    def by_hand(x, kernel, bias):
        act = tf.tanh if activation == "tanh" else tf.nn.relu
        h = tf.zeros([batch, units])
        outputs = [None] * steps
        for t in (reversed(range(steps)) if reverse else range(steps)):
            h = outputs[t] = act(tf.matmul(tf.concat([x[t], h * mask], 1), kernel) + bias)
        return h if final_only else tf.stack(outputs)

    results = {}
    for name in ("kernel", "by hand"):
        with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
            inputs = [tf.constant(x), tf.constant(kernel), tf.constant(bias)]
            y = (rnn_layer(*inputs, reverse=reverse, final_only=final_only,
                           activation=activation, state_mask=tf.constant(mask))
                 if name == "kernel" else by_hand(*inputs))
            loss = tf.reduce_sum(y * tf.constant(weights, tf.float32))
            results[name] = sess.run([y, *tf.gradients(loss, inputs)])
    for what, ours, theirs in zip(("outputs", "dx", "dkernel", "dbias"), results["kernel"],
                                  results["by hand"]):
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)
