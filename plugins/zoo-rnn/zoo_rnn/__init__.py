"""zoo-rnn: a vanilla RNN, ``BasicRNNCell`` unrolled with ``static_rnn``.

Each image row is one time step: a [batch, H, W, C] image is read as H steps of
W*C features, and the logits come from the last step's output. Hyperparameters added
later change what a step reads (``rows_per_step`` rows at once, through a dense
``projection``), add a second pass over the image's columns (``read``, the ReNet idea), or
start the cell as an IRNN (``init``); at their defaults the model is the original one.

Two kernels compute it: ``basic`` builds the original graph (BasicRNNCell, MultiRNNCell,
DropoutWrapper, static_rnn or static_bidirectional_rnn); ``sequence`` (zoo_rnn.sequence)
computes the same function with the same variables, a whole sequence at a time with a
hand-written gradient.
"""

from contextlib import nullcontext

from zoo_core import HParam, hookimpl

__version__ = "0.1.0"

HPARAMS = {
    "hidden": HParam(128, help="units per RNN cell", min=1, max=4096,
                     search="choice(64,128,256)"),
    "layers": HParam(1, help="stacked cells (MultiRNNCell when > 1)", min=1, max=8),
    "dropout": HParam(0.0, help="dropout on cell outputs, training only", min=0.0, max=0.95,
                      search="float(0,0.5)"),
    "bidirectional": HParam(False, help="read the rows both ways (static_bidirectional_rnn)"),
    "readout": HParam("last", help="what the logits see: the last step's output, or the mean or "
                                   "max of every step's output", choices=("last", "mean", "max")),
    # Added after the reference runs (issue 13): omit_default keeps their config ids.
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
    "init": HParam("glorot", help="glorot: BasicRNNCell's (Glorot uniform kernel, tanh); "
                                  "irnn: the recurrent kernel the identity, the input kernel "
                                  "N(0, 0.001), ReLU activation (Le et al. 2015)",
                   choices=("glorot", "irnn"), omit_default=True),
    # Issue 26: variational recurrent dropout (Gal and Ghahramani, 2016), omit_default too.
    "recurrent_dropout": HParam(0.0, help="variational recurrent dropout, training only: one "
                                          "mask a sequence on the state h fed back at every "
                                          "step (DropoutWrapper's state_keep_prob with "
                                          "variational_recurrent)",
                                min=0.0, max=0.95, omit_default=True, search="float(0,0.5)"),
    # The same function either way (tests/test_rnn_sequence_kernel.py), so not part of a
    # run's config id; basic stays the default: the rnn is BasicRNNCell + static_rnn.
    "kernel": HParam("basic", help="how the graph computes it: BasicRNNCell + static_rnn "
                                   "(basic), or the same function and variables a sequence at "
                                   "a time with a hand-written gradient (sequence); speed only, "
                                   "not part of the config id",
                     choices=("basic", "sequence"), speed_only=True),
}


def build(images, *, num_classes, hparams, training):
    """Unroll BasicRNNCell over the image rows (and, with read=rows+columns, its columns).

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


def _project(tf, x, units):
    """``x`` [batch, steps, depth] through a dense ReLU layer of ``units`` (``projection``),
    the same weights at every step, as one matmul over [batch * steps, depth]; or ``x``."""
    if not units:
        return x
    _, steps, depth = x.shape.as_list()
    y = tf.compat.v1.layers.dense(tf.reshape(x, [-1, depth]), units, activation=tf.nn.relu,
                                  name="projection")
    return tf.reshape(y, [-1, steps, units])


def irnn_initializer(tf):
    """The initializer of BasicRNNCell's ``kernel`` for init=irnn (Le et al. 2015).

    BasicRNNCell keeps ONE kernel [D + H, H] and computes act([x_t, h_{t-1}] kernel + bias):
    its first D rows multiply the input, its last H rows the previous state. The identity
    goes on those last H rows (the recurrent kernel), N(0, 0.001) on the first D (the input
    kernel); the bias is BasicRNNCell's zeros already. The cell takes no initializer
    argument, but creates its kernel with the enclosing variable scope's default
    initializer: the builders set this one on the scope the cells are called in (and on no
    other variable: the projection and the logits are built outside it). The shape decides
    D, so it serves every layer of a stack, whatever feeds it.
    """
    small = tf.compat.v1.random_normal_initializer(stddev=0.001)

    def init(shape, dtype=tf.float32, partition_info=None):
        depth, units = shape[0] - shape[1], shape[1]
        return tf.concat([small([depth, units], dtype), tf.eye(units, dtype=dtype)], axis=0)

    return init


def _cell_scope(tf, name, hparams, *, basic):
    """The variable scope the cells are called in, ``name`` (``rnn`` or ``bidirectional_rnn``,
    as static_rnn names it), with the IRNN initializer when init=irnn.

    With init=glorot and ``basic``: a context that gives None, for static_rnn to open its own
    scope as it always did (the same graph, op names included, as before ``init`` existed).
    """
    if hparams["init"] != "irnn":
        return nullcontext() if basic else tf.compat.v1.variable_scope(name)
    return tf.compat.v1.variable_scope(name, initializer=irnn_initializer(tf))


def _read_basic(tf, x, *, hparams, training):
    """One pass of the original graph over ``x`` [batch, steps, depth]: BasicRNNCell (with
    DropoutWrapper, MultiRNNCell) unrolled with static_rnn, one way or both; returns what
    the readout reads, [batch, H] (or [batch, 2H] both ways)."""
    rnn = tf.compat.v1.nn.rnn_cell
    steps = tf.unstack(x, axis=1)
    keep = 1.0 - hparams["dropout"] * tf.cast(training, tf.float32)
    activation = tf.nn.relu if hparams["init"] == "irnn" else None  # None: tanh

    def stack():
        cells = []
        for _ in range(hparams["layers"]):
            cell = rnn.BasicRNNCell(hparams["hidden"], activation=activation)
            if hparams["recurrent_dropout"]:
                rate = hparams["recurrent_dropout"] * tf.cast(training, tf.float32)
                cell = rnn.DropoutWrapper(cell, state_keep_prob=1.0 - rate,
                                          variational_recurrent=True, dtype=tf.float32)
            if hparams["dropout"]:
                cell = rnn.DropoutWrapper(cell, output_keep_prob=keep)
            cells.append(cell)
        return cells[0] if len(cells) == 1 else rnn.MultiRNNCell(cells)

    if hparams["bidirectional"]:
        with _cell_scope(tf, "bidirectional_rnn", hparams, basic=True) as scope:
            outputs, _, _ = tf.compat.v1.nn.static_bidirectional_rnn(
                stack(), stack(), steps, dtype=tf.float32, scope=scope)
        hidden = hparams["hidden"]
        # the forward pass ends at the last row, the backward pass at the first
        last = tf.concat([outputs[-1][:, :hidden], outputs[0][:, hidden:]], axis=1)
    else:
        with _cell_scope(tf, "rnn", hparams, basic=True) as scope:
            outputs, _ = tf.compat.v1.nn.static_rnn(stack(), steps, dtype=tf.float32,
                                                    scope=scope)
        last = outputs[-1]
    if hparams["readout"] != "last":  # pool over the rows: every row reaches the logits directly
        pool = tf.reduce_mean if hparams["readout"] == "mean" else tf.reduce_max
        last = pool(tf.stack(outputs, axis=1), axis=1)
    return last


def _read_sequence(tf, x, *, hparams, training):
    """What :func:`_read_basic` computes, with zoo_rnn.sequence's kernel: the same
    variables (names, shapes, initializers), activation, dropout, directions and readouts."""
    from zoo_rnn.sequence import drop, stack

    v1 = tf.compat.v1
    # [T, B, D]: time-major, so that a step's slice and a stack over steps are contiguous
    steps = tf.transpose(x, [1, 0, 2])
    keep = None
    if hparams["dropout"]:  # DropoutWrapper(output_keep_prob=1 - rate), as the basic graph
        keep = 1.0 - hparams["dropout"] * tf.cast(training, tf.float32)
    state_keep = None
    if hparams["recurrent_dropout"]:
        state_keep = 1.0 - hparams["recurrent_dropout"] * tf.cast(training, tf.float32)
    layer = dict(units=hparams["hidden"], layers=hparams["layers"], keep_prob=keep,
                 activation="relu" if hparams["init"] == "irnn" else "tanh",
                 state_keep_prob=state_keep)
    # "last" reads only the final states (the forward pass ends at the last row, the backward
    # pass at the first); dropout is drawn only for what the readout reads, as in basic
    final = hparams["readout"] == "last"
    if hparams["bidirectional"]:
        with _cell_scope(tf, "bidirectional_rnn", hparams, basic=False):
            with v1.variable_scope("fw"):
                fw = stack(steps, final_only=final, **layer)
            with v1.variable_scope("bw"):
                bw = stack(steps, reverse=True, final_only=final, **layer)
        outputs = tf.concat([drop(fw, keep), drop(bw, keep)], axis=-1)
    else:
        with _cell_scope(tf, "rnn", hparams, basic=False):
            outputs = drop(stack(steps, final_only=final, **layer), keep)
    last = outputs
    if not final:
        pool = tf.reduce_mean if hparams["readout"] == "mean" else tf.reduce_max
        last = pool(outputs, axis=0)
    return last


@hookimpl
def zoo_register_models(register):
    register(
        "rnn",
        build,
        summary="BasicRNNCell (128 units) unrolled with static_rnn over the image rows",
        hparams=HPARAMS,
        # Its Fashion-MNIST weights, shipped in this package (`zoo pull rnn`, and
        # `zoo predict rnn IMAGE` with no training): `zoo run rnn --dataset fashion --seed 0`
        # (the registry default: precision auto, bfloat16 on this machine's CPU), then
        # `zoo pack RUN -o .../weights/rnn-fashion.zoopack`.
        weights={"fashion": {
            "file": "weights/rnn-fashion.zoopack",
            "sha256": "2af4570df2eadb4544060c0cc48a7afad1ddaf59d5a2d1f728e53e8ba4bd7f00",
            "config_id": "dbe058c9d3",
            "test_accuracy": 0.9081,
        }},
    )
