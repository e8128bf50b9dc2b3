"""zoo-lstm: ``BasicLSTMCell`` unrolled with ``static_rnn`` over the image rows.

A [batch, H, W, C] image is read as H time steps of W*C features; the logits
come from the last step's output. Hyperparameters added later change what a step reads
(``rows_per_step`` rows at once, through a dense ``projection``) or add a second pass over
the image's columns (``read``, the ReNet idea); at their defaults the model is the
original one.

Two kernels compute it: ``basic`` builds the original graph (BasicLSTMCell, MultiRNNCell,
DropoutWrapper, static_rnn or static_bidirectional_rnn); ``sequence`` (zoo_lstm.sequence)
computes the same function with the same variables, a whole sequence at a time with a
hand-written gradient.
"""

from contextlib import nullcontext

from zoo_core import HParam, hookimpl

__version__ = "0.1.0"

HPARAMS = {
    "hidden": HParam(128, help="units per LSTM cell", min=1, max=4096,
                     search="choice(64,128,256)"),
    "layers": HParam(1, help="stacked cells (MultiRNNCell when > 1)", min=1, max=8),
    "forget_bias": HParam(1.0, help="added to the forget gate's bias"),
    "dropout": HParam(0.0, help="dropout on cell outputs, training only", min=0.0, max=0.95,
                      search="float(0,0.5)"),
    "bidirectional": HParam(False, help="read the rows both ways (static_bidirectional_rnn)"),
    "readout": HParam("last", help="what the logits see: the last step's output, or the mean or "
                                   "max of every step's output", choices=("last", "mean", "max")),
    # Added after the reference runs (issue 13): omit_default keeps their config ids. Declared
    # as zoo-rnn declares them, the same reading of the image (not shared: see _sequences).
    "rows_per_step": HParam(1, help="consecutive image rows each time step reads (W*C*rows "
                                    "features, height/rows steps); must divide the image "
                                    "height, 28 for Fashion-MNIST and MNIST",
                            choices=(1, 2, 4, 7, 14, 28), omit_default=True),
    "projection": HParam(0, help="units of a dense ReLU layer applied to every step's input "
                                 "before the cell, 0 for none (ReLU: a linear one would only "
                                 "factor the cell's own input kernel)", min=0, max=4096,
                         omit_default=True),
    "read": HParam("rows", help="rows, or rows+columns: a second pass, with its own variables, "
                                "over the columns (the transposed image; ReNet), its readout "
                                "concatenated with the rows' before the logits",
                   choices=("rows", "rows+columns"), omit_default=True),
    # Issue 26: variational recurrent dropout (Gal and Ghahramani, 2016), omit_default too.
    "recurrent_dropout": HParam(0.0, help="variational recurrent dropout, training only: one "
                                          "mask a sequence on the state h fed back at every "
                                          "step (DropoutWrapper's state_keep_prob with "
                                          "variational_recurrent; the cell's c is kept)",
                                min=0.0, max=0.95, omit_default=True, search="float(0,0.5)"),
    # The same function either way (tests/test_lstm_sequence_kernel.py), so not part of a
    # run's config id; sequence builds its graph 3-6x faster and trains ~5-10 % faster.
    "kernel": HParam("sequence", help="how the graph computes it: BasicLSTMCell + static_rnn "
                                      "(basic), or the same function and variables a sequence "
                                      "at a time with a hand-written gradient (sequence); speed "
                                      "only, not part of the config id",
                     choices=("basic", "sequence"), speed_only=True),
}

# The stacked LSTM of the seed projects: two layers of 128 with dropout.
STACKED = {**HPARAMS, "layers": HParam(2, help=HPARAMS["layers"].help, min=1, max=8),
           "dropout": HParam(0.2, help=HPARAMS["dropout"].help, min=0.0, max=0.95)}


def build(images, *, num_classes, hparams, training):
    """Unroll BasicLSTMCell over the image rows (and, with read=rows+columns, its columns).

    Args:
        images: float32 [batch, height, width, channels].
        num_classes: the number of logits.
        hparams: the values of :data:`HPARAMS`.
        training: boolean scalar tensor; switches dropout on.

    Returns:
        float32 logits [batch, num_classes].

    Raises:
        ValueError: rows_per_step does not divide the image's height (or, with
            read=rows+columns, its width).
    """
    import tensorflow as tf

    read = _read_sequence if hparams["kernel"] == "sequence" else _read_basic
    features = []
    for scope, steps in _sequences(tf, images, hparams):
        with scope():
            steps = _project(tf, steps, hparams["projection"])
            features.append(read(tf, steps, hparams=hparams, training=training))
    last = features[0] if len(features) == 1 else tf.concat(features, axis=1)
    return tf.compat.v1.layers.dense(last, num_classes, name="logits")


# A copy of zoo_rnn._sequences, kept so because each zoo plugin is a distribution of its own
# that depends on zoo-core alone, as a third party's does, and reading an image as a sequence
# is a model's business, not the core's.
def _sequences(tf, images, hparams):
    """The input sequences of the recurrent passes, whichever kernel reads them.

    Returns [(the variable scope of the pass's own variables, float32 [batch, steps,
    depth])]: the rows (in no scope of its own: the original model's variables keep their
    names), then with read=rows+columns the columns (the transposed image) in scope
    ``columns``. A step is ``rows_per_step`` consecutive rows (columns), their pixels in
    reading order.
    """
    passes = [(nullcontext, images, "height")]
    if hparams["read"] == "rows+columns":
        passes.append((lambda: tf.compat.v1.variable_scope("columns"),
                       tf.transpose(images, [0, 2, 1, 3]), "width"))
    rows = hparams["rows_per_step"]
    out = []
    for scope, x, side in passes:
        _, height, width, channels = x.shape.as_list()
        if height % rows:
            divisors = ", ".join(str(d) for d in range(1, height + 1) if height % d == 0)
            raise ValueError(f"rows_per_step={rows} does not divide the image {side} "
                             f"({height}); use one of {divisors}")
        out.append((scope, tf.reshape(x, [-1, height // rows, rows * width * channels])))
    return out


# A copy of zoo_rnn._project, for the reason _sequences is one.
def _project(tf, x, units):
    """``x`` [batch, steps, depth] through a dense ReLU layer of ``units`` (``projection``),
    the same weights at every step, as one matmul over [batch * steps, depth]; or ``x``."""
    if not units:
        return x
    _, steps, depth = x.shape.as_list()
    y = tf.compat.v1.layers.dense(tf.reshape(x, [-1, depth]), units, activation=tf.nn.relu,
                                  name="projection")
    return tf.reshape(y, [-1, steps, units])


def _read_basic(tf, x, *, hparams, training):
    """One pass of the original graph over ``x`` [batch, steps, depth]: BasicLSTMCell (with
    DropoutWrapper, MultiRNNCell) unrolled with static_rnn, one way or both; returns what
    the readout reads, [batch, H] (or [batch, 2H] both ways)."""
    rnn = tf.compat.v1.nn.rnn_cell
    rows = tf.unstack(x, axis=1)

    def cell():
        c = rnn.BasicLSTMCell(hparams["hidden"], forget_bias=hparams["forget_bias"])
        if hparams["recurrent_dropout"]:  # h's mask only: the wrapper's default keeps c
            rate = hparams["recurrent_dropout"] * tf.cast(training, tf.float32)
            c = rnn.DropoutWrapper(c, state_keep_prob=1.0 - rate, variational_recurrent=True,
                                   dtype=tf.float32)
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
    return last


def _read_sequence(tf, x, *, hparams, training):
    """What :func:`_read_basic` computes, with zoo_lstm.sequence's kernel: the same
    variables (names, shapes, initializers), dropout, directions and readouts."""
    from zoo_lstm.sequence import drop, stack

    v1 = tf.compat.v1
    # [T, B, D]: time-major, so that a step's slice and a stack over steps are contiguous
    rows = tf.transpose(x, [1, 0, 2])
    keep = None
    if hparams["dropout"]:  # DropoutWrapper(output_keep_prob=1 - rate), as the basic graph
        keep = 1.0 - hparams["dropout"] * tf.cast(training, tf.float32)
    state_keep = None
    if hparams["recurrent_dropout"]:
        state_keep = 1.0 - hparams["recurrent_dropout"] * tf.cast(training, tf.float32)
    layer = dict(units=hparams["hidden"], layers=hparams["layers"],
                 forget_bias=hparams["forget_bias"], keep_prob=keep, state_keep_prob=state_keep)
    # "last" reads only the final states (the forward pass ends at the last row, the backward
    # pass at the first); dropout is drawn only for what the readout reads, as in basic
    final = hparams["readout"] == "last"
    if hparams["bidirectional"]:
        with v1.variable_scope("bidirectional_rnn"):
            with v1.variable_scope("fw"):
                fw = stack(rows, final_only=final, **layer)
            with v1.variable_scope("bw"):
                bw = stack(rows, reverse=True, final_only=final, **layer)
        outputs = tf.concat([drop(fw, keep), drop(bw, keep)], axis=-1)
    else:
        with v1.variable_scope("rnn"):
            outputs = drop(stack(rows, final_only=final, **layer), keep)
    last = outputs
    if not final:
        pool = tf.reduce_mean if hparams["readout"] == "mean" else tf.reduce_max
        last = pool(outputs, axis=0)
    return last


@hookimpl
def zoo_register_models(register):
    register(
        "lstm",
        build,
        summary="BasicLSTMCell (128 units) unrolled with static_rnn over the image rows",
        hparams=HPARAMS,
        # Its Fashion-MNIST weights, shipped in this package (`zoo pull lstm`, and
        # `zoo predict lstm IMAGE` with no training): `zoo run lstm --dataset fashion --seed 0`
        # (the registry default: precision auto, bfloat16 on an Intel Xeon with AMX), then
        # `zoo pack RUN -o .../weights/lstm-fashion.zoopack`.
        weights={"fashion": {
            "file": "weights/lstm-fashion.zoopack",
            "sha256": "ed81a0459a23dfa197e787f77fabdb572d5e5a51754c5fade017f20c5c716f73",
            "config_id": "384ac47f96",
            "test_accuracy": 0.9154,
        }},
    )
    register(
        "lstm-stack",
        build,
        summary="two stacked BasicLSTMCell layers of 128 with dropout, unrolled with static_rnn",
        hparams=STACKED,
        # `zoo run lstm-stack --dataset fashion --seed 0` (the default kernel=sequence;
        # float32, the registry's precision), packed as the lstm's
        weights={"fashion": {
            "file": "weights/lstm-stack-fashion.zoopack",
            "sha256": "a010f8459f6f83cf9f7a8b50a3f14e078b80b5b30bb7579123531e56c5c4997a",
            "config_id": "9103bf71dc",
            "test_accuracy": 0.9071,
        }},
    )
