"""kernel=sequence computes what kernel=basic (BasicLSTMCell + static_rnn) computes.

For the same weights and real Fashion-MNIST rows: the same logits, and the same gradients of
the loss with respect to every variable and to the images, up to float32 rounding. This test
is what lets the plugin offer the sequence kernel at all (DESIGN.md, "Precision and speed").
"""

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
    "lstm-stack, rows and columns, 7 rows per step, projection": dict(
        layers=2, dropout=0.2, read="rows+columns", rows_per_step=7, projection=16,
        hidden=32),
}


def _graph(kernel, overrides, images_shape, labels):
    """The model's logits, loss and gradients (w.r.t. every variable and the images)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        images = v1.placeholder(tf.float32, images_shape)
        training = v1.placeholder_with_default(False, [])
        hparams = {**{k: p.default for k, p in zoo_lstm.HPARAMS.items()}, **overrides,
                   "kernel": kernel}
        with v1.variable_scope("model"):
            logits = zoo_lstm.build(images, num_classes=10, hparams=hparams, training=training)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))
        variables = v1.trainable_variables()
        grads = tf.gradients(loss, variables + [images])
    return graph, images, logits, variables, grads


def _evaluate(kernel, overrides, x, y, weights=None):
    """(logits, {name: gradient}, {name: weight}) with ``weights`` loaded by name."""
    import tensorflow as tf

    graph, images, logits, variables, grads = _graph(kernel, overrides, x.shape, y)
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        if weights is not None:
            assert set(weights) == {v.name for v in variables}, "the same variables"
            for v in variables:
                v.load(weights[v.name], sess)
        values = {v.name: w for v, w in zip(variables, sess.run(variables))}
        out, g = sess.run([logits, grads], {images: x})
    names = [v.name for v in variables] + ["images"]
    return out, dict(zip(names, g)), values


@pytest.mark.parametrize("overrides", list(CASES.values()), ids=list(CASES))
def test_sequence_kernel_matches_basic_lstm_cell_and_static_rnn(overrides):
    x, y = testing.real_images(32)
    x = x.astype(np.float32)
    # random weights, biases far from their zero init, so every gate and path matters
    _, _, init = _evaluate("basic", overrides, x, y)
    rng = np.random.default_rng(0)
    weights = {name: rng.normal(0, 0.5 if "bias" in name else 0.15, w.shape).astype(np.float32)
               for name, w in init.items()}
    basic_logits, basic_grads, _ = _evaluate("basic", overrides, x, y, weights)
    seq_logits, seq_grads, _ = _evaluate("sequence", overrides, x, y, weights)

    np.testing.assert_allclose(seq_logits, basic_logits, rtol=RTOL, atol=ATOL)
    assert set(seq_grads) == set(basic_grads)
    for name, g in basic_grads.items():
        assert np.abs(g).max() > 0, f"{name}: a gradient that is zero tests nothing"
        np.testing.assert_allclose(seq_grads[name], g, rtol=RTOL, atol=ATOL, err_msg=name)


def test_the_sequence_kernel_keeps_the_basic_variables_and_parameter_count():
    x, y = testing.real_images(2)
    for overrides in CASES.values():
        shapes = {}
        for kernel in ("basic", "sequence"):
            variables = _graph(kernel, overrides, x.shape, y)[3]
            shapes[kernel] = [(v.name, v.shape.as_list()) for v in variables]
        assert shapes["sequence"] == shapes["basic"], overrides


def test_dropout_is_on_while_training_only():
    x, _ = testing.real_images(4)
    over = {"dropout": 0.5, "kernel": "sequence", "layers": 2, "hidden": 16}
    off = testing.run_builder(zoo_lstm.build, x, zoo_lstm.HPARAMS, overrides=over)
    again = testing.run_builder(zoo_lstm.build, x, zoo_lstm.HPARAMS, overrides=over)
    on = testing.run_builder(zoo_lstm.build, x, zoo_lstm.HPARAMS, overrides=over, training=True)
    np.testing.assert_array_equal(off, again)
    assert not np.allclose(off, on)


def test_a_checkpoint_of_either_kernel_loads_into_the_other(tmp_path):
    import tensorflow as tf

    x, y = testing.real_images(8)
    overrides = {"bidirectional": True, "dropout": 0.2}  # the registry's lstm
    logits = {}
    for kernel, other in (("basic", "sequence"), ("sequence", "basic")):
        graph, images, out, _, _ = _graph(kernel, overrides, x.shape, y)
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(sess, str(tmp_path / kernel))
            logits[kernel] = sess.run(out, {images: x})
        graph, images, out, _, _ = _graph(other, overrides, x.shape, y)
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            tf.compat.v1.train.Saver().restore(sess, str(tmp_path / kernel))
            np.testing.assert_allclose(sess.run(out, {images: x}), logits[kernel],
                                       rtol=RTOL, atol=ATOL)
