"""The sequence kernel (zoo_lstm.sequence), zoo-lstm's default, against BasicLSTMCell +
static_rnn (kernel=basic): zoo_core.testing.assert_same_function for each configuration below
(the same variables; the same logits and gradients for the same weights, within float32
rounding), and a checkpoint of either restored into the other. This is what lets the plugin
offer the sequence kernel, and make it its default (DESIGN.md, "Precision and speed"). That
its dropout is on while training only is the conformance kit's training_flag check on
lstm-stack (two layers, dropout 0.2) with kernel=sequence (test_lstm_conformance.py)."""

import numpy as np
import pytest

import zoo_lstm
from zoo_core import testing

# float32 rounding only: the sequence kernel sums the same products in another order
RTOL, ATOL = 1e-5, 1e-6

CASES = {
    "one layer": {},
    "two layers": {"layers": 2},
    "registry default: bidirectional, dropout 0.2": {"bidirectional": True, "dropout": 0.2},
    "two bidirectional layers, mean readout": {"bidirectional": True, "layers": 2,
                                               "readout": "mean", "hidden": 32},
    "max readout, forget_bias 0": {"readout": "max", "forget_bias": 0.0, "hidden": 48},
    "lstm-stack: two layers, dropout 0.2": dict(layers=2, dropout=0.2),
    # issue 13's hyperparameters change the sequences either kernel reads
    "two rows per step through a projection of 32": {"rows_per_step": 2, "projection": 32},
    "rows and columns, bidirectional, 4 rows per step, mean readout": {
        "read": "rows+columns", "bidirectional": True, "rows_per_step": 4, "hidden": 32,
        "readout": "mean"},
    # issue 26: the masks are drawn while training only (test_recurrent_dropout_... below)
    "recurrent dropout 0.3, bidirectional": {"recurrent_dropout": 0.3, "bidirectional": True},
    "lstm-stack, rows and columns, 7 rows per step, projection": dict(
        layers=2, dropout=0.2, read="rows+columns", rows_per_step=7, projection=16,
        hidden=32),
}


@pytest.mark.parametrize("overrides", list(CASES.values()), ids=list(CASES))
def test_sequence_kernel_matches_basic_lstm_cell_and_static_rnn(overrides):
    # the same variables, then random weights, biases far from their zero init, so that every
    # gate and path matters
    testing.assert_same_function(zoo_lstm.build, zoo_lstm.HPARAMS, overrides=overrides,
                                 weight_std=0.15, rtol=RTOL, atol=ATOL)


def test_a_checkpoint_of_either_kernel_loads_into_the_other(tmp_path):
    import tensorflow as tf

    x, y = testing.real_images(8)
    hparams = {**testing.defaults(zoo_lstm.HPARAMS), "bidirectional": True, "dropout": 0.2}
    logits = {}

    def built(kernel):  # the registry's lstm
        return testing.loss_graph(zoo_lstm.build, {**hparams, "kernel": kernel}, x.shape, y)

    for kernel, other in (("basic", "sequence"), ("sequence", "basic")):
        g = built(kernel)
        with g.graph.as_default(), tf.compat.v1.Session(graph=g.graph) as sess:
            sess.run(g.init)
            tf.compat.v1.train.Saver().save(sess, str(tmp_path / kernel))
            logits[kernel] = sess.run(g.logits, {g.images: x})
        g = built(other)
        with g.graph.as_default(), tf.compat.v1.Session(graph=g.graph) as sess:
            tf.compat.v1.train.Saver().restore(sess, str(tmp_path / kernel))
            np.testing.assert_allclose(sess.run(g.logits, {g.images: x}), logits[kernel],
                                       rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reverse, final_only", [(False, False), (True, False), (True, True)])
def test_recurrent_dropout_masks_the_state_fed_back_forward_and_backward(reverse, final_only):
    """With a given mask on h_{t-1} (variational recurrent dropout), the sequence kernel's
    outputs and its hand-written gradients equal TensorFlow's own gradients of the LSTM
    written out step by step with the same mask."""
    import tensorflow as tf
    from zoo_lstm.sequence import lstm_layer

    rng = np.random.default_rng(0)
    steps, batch, depth, units = 6, 5, 7, 8
    x = rng.normal(size=(steps, batch, depth)).astype(np.float32)
    kernel = rng.normal(scale=0.3, size=(depth + units, 4 * units)).astype(np.float32)
    bias = rng.normal(scale=0.5, size=4 * units).astype(np.float32)
    mask = (rng.random((batch, units)) > 0.3).astype(np.float32) / 0.7
    weights = rng.normal(size=(batch, units) if final_only else (steps, batch, units))

    def by_hand(x, kernel, bias):
        h = c = tf.zeros([batch, units])
        outputs = [None] * steps
        for t in (reversed(range(steps)) if reverse else range(steps)):
            z = tf.matmul(tf.concat([x[t], h * mask], 1), kernel) + bias
            i, j, f, o = tf.split(z, 4, axis=1)
            c = c * tf.sigmoid(f + 1.0) + tf.sigmoid(i) * tf.tanh(j)
            h = outputs[t] = tf.tanh(c) * tf.sigmoid(o)
        return h if final_only else tf.stack(outputs)

    results = {}
    for name in ("kernel", "by hand"):
        with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
            inputs = [tf.constant(x), tf.constant(kernel), tf.constant(bias)]
            y = (lstm_layer(*inputs, forget_bias=1.0, reverse=reverse, final_only=final_only,
                            state_mask=tf.constant(mask)) if name == "kernel" else by_hand(*inputs))
            loss = tf.reduce_sum(y * tf.constant(weights, tf.float32))
            results[name] = sess.run([y, *tf.gradients(loss, inputs)])
    for what, ours, theirs in zip(("outputs", "dx", "dkernel", "dbias"), results["kernel"],
                                  results["by hand"]):
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)
