"""zoo-lstm: ``BasicLSTMCell`` unrolled with ``static_rnn`` over the image rows.

A [batch, H, W, C] image is read as H time steps of W*C features; the logits
come from the last step's output.
"""

from zoo_core import HParam, hookimpl

__version__ = "0.1.0"

HPARAMS = {
    "hidden": HParam(128, help="units per LSTM cell", min=1, max=4096),
    "layers": HParam(1, help="stacked cells (MultiRNNCell when > 1)", min=1, max=8),
    "forget_bias": HParam(1.0, help="added to the forget gate's bias"),
    "dropout": HParam(0.0, help="dropout on cell outputs, training only", min=0.0, max=0.95),
    "bidirectional": HParam(False, help="read the rows both ways (static_bidirectional_rnn)"),
    "readout": HParam("last", help="what the logits see: the last step's output, or the mean or "
                                   "max of every step's output", choices=("last", "mean", "max")),
}

# The stacked LSTM of the seed projects: two layers of 128 with dropout.
STACKED = {**HPARAMS, "layers": HParam(2, help=HPARAMS["layers"].help, min=1, max=8),
           "dropout": HParam(0.2, help=HPARAMS["dropout"].help, min=0.0, max=0.95)}


def build(images, *, num_classes, hparams, training):
    """Unroll BasicLSTMCell over the image rows.

    Args:
        images: float32 [batch, height, width, channels].
        num_classes: the number of logits.
        hparams: the values of :data:`HPARAMS`.
        training: boolean scalar tensor; switches dropout on.

    Returns:
        float32 logits [batch, num_classes].
    """
    import tensorflow as tf

    rnn = tf.compat.v1.nn.rnn_cell
    _, height, width, channels = images.shape.as_list()
    rows = tf.unstack(tf.reshape(images, [-1, height, width * channels]), axis=1)

    def cell():
        c = rnn.BasicLSTMCell(hparams["hidden"], forget_bias=hparams["forget_bias"])
        if not hparams["dropout"]:
            return c
        rate = hparams["dropout"] * tf.cast(training, tf.float32)
        return rnn.DropoutWrapper(c, output_keep_prob=1.0 - rate)

    def stack():
        cells = [cell() for _ in range(hparams["layers"])]
        return cells[0] if len(cells) == 1 else rnn.MultiRNNCell(cells)

    if hparams["bidirectional"]:
        outputs, _, _ = tf.compat.v1.nn.static_bidirectional_rnn(stack(), stack(), rows,
                                                                 dtype=tf.float32)
        hidden = hparams["hidden"]
        # the forward pass ends at the last row, the backward pass at the first
        last = tf.concat([outputs[-1][:, :hidden], outputs[0][:, hidden:]], axis=1)
    else:
        outputs, _ = tf.compat.v1.nn.static_rnn(stack(), rows, dtype=tf.float32)
        last = outputs[-1]
    if hparams["readout"] != "last":  # pool over the rows: every row reaches the logits directly
        pool = tf.reduce_mean if hparams["readout"] == "mean" else tf.reduce_max
        last = pool(tf.stack(outputs, axis=1), axis=1)
    return tf.compat.v1.layers.dense(last, num_classes, name="logits")


@hookimpl
def zoo_register_models(register):
    register(
        "lstm",
        build,
        summary="BasicLSTMCell (128 units) unrolled with static_rnn over the image rows",
        hparams=HPARAMS,
    )
    register(
        "lstm-stack",
        build,
        summary="two stacked BasicLSTMCell layers of 128 with dropout, unrolled with static_rnn",
        hparams=STACKED,
    )
