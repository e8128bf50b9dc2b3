"""The ``sequence`` kernel: BasicLSTMCell's function over a whole sequence, with a hand-written
backward pass.

``BasicLSTMCell`` unrolled with ``static_rnn`` does, at every step, one matmul of
``concat([x_t, h_{t-1}])`` with the cell's ``kernel``, and its gradient does, at every
step, one matmul for the kernel's gradient, summed over the steps afterwards. Here:

forward   the input part of every step in ONE matmul ([T*B, D] x [D, 4H]; the bias, with
          ``forget_bias`` added to its f part, added once), then the recurrent part step by
          step (h_{t-1} x [H, 4H] + that step's input part), the gates in BasicLSTMCell's
          order i, j, f, o: c_t = c_{t-1} * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j),
          h_t = tanh(c_t) * sigmoid(o).
backward  (``tf.custom_gradient``) back through time step by step for the recurrent part
          (dGates_t, then dh_{t-1} = dGates_t x W_h^T), then the weight gradients of all the
          steps at once, as cuDNN and PyTorch do. dW_x = X^T dGates_all, dW_h =
          H_prev_all^T dGates_all and db = the column sums of dGates_all are computed as ONE
          matmul, [X, H_prev, 1]^T dGates_all, whose rows are the kernel's (in its order) and
          then the bias's: a single pass over dGates_all, which measured faster than three.
          dX = dGates_all W_x^T, one matmul.

The variables are BasicLSTMCell's, with its names, shapes and initializers (one ``kernel``
[D + H, 4H], split into its x and h rows inside the graph, and one ``bias`` [4H]), so a
checkpoint of either kernel loads into the other and the parameter count is the same.
tests/test_lstm_sequence_kernel.py checks that the outputs and the gradients with respect to
every variable and to the images equal BasicLSTMCell + static_rnn's, up to float32 rounding.

TensorFlow is imported inside the functions, as the plugin contract asks.
"""

from __future__ import annotations

from contextlib import nullcontext


def lstm_layer(x, kernel, bias, *, forget_bias: float, reverse: bool = False,
               final_only: bool = False, state_mask=None):
    """One LSTM layer over a whole sequence, time-major.

    Args:
        x: float32 [T, B, D], the inputs of every step.
        kernel: float32 [D + H, 4H], BasicLSTMCell's kernel (the x rows, then the h rows).
        bias: float32 [4H].
        forget_bias: added to the forget gate, as BasicLSTMCell does.
        reverse: run from the last step to the first (the backward direction of
            ``static_bidirectional_rnn``); the outputs stay in time order.
        final_only: return only the final state (h at the last step run; the first row's
            when ``reverse``), when nothing reads the others: the backward pass then skips
            the zero gradients of the other steps.
        state_mask: float32 [B, H] or None: variational recurrent dropout's mask on h_{t-1}
            before every step's recurrent matmul (:func:`masked`); outputs are not masked.

    Returns:
        float32 [T, B, H]: h_t of every step, in time order (or [B, H], the final h_t, with
        ``final_only``). The state starts at zero.
    """
    import tensorflow as tf

    steps, _, depth = x.shape.as_list()
    units = kernel.shape.as_list()[1] // 4
    order = list(range(steps))[::-1] if reverse else list(range(steps))

    @tf.custom_gradient
    def run(x, kernel, bias):
        w_x, w_h = kernel[:depth], kernel[depth:]
        batch = tf.shape(x)[1]
        x2 = tf.reshape(x, [-1, depth])  # [T*B, D], row t*B + b
        # forget_bias joins the bias of the f gate once, not once per step
        shift = tf.constant([0.0] * 2 * units + [forget_bias] * units + [0.0] * units)
        projected = tf.nn.bias_add(tf.matmul(x2, w_x), bias + shift)
        inputs = tf.unstack(tf.reshape(projected, [steps, -1, 4 * units]))  # contiguous slices
        outputs, saved = _unroll(inputs, w_h, order, state_mask)
        y = tf.stack(outputs)  # [T, B, H]

        def grad(dy):
            dys = step_gradients(dy, steps, order[-1], final_only)
            w_h_t = tf.transpose(w_h)
            dgates = [None] * steps
            dh = dc = None
            for k, t in enumerate(reversed(order)):
                dh_t = dys[t] if dh is None else dh if dys[t] is None else dys[t] + dh
                dgates[t], dc = _cell_gradients(saved[t], dh_t, dc)
                if k < steps - 1:  # the first step's h_prev is the zero state
                    dh = masked(tf.matmul(dgates[t], w_h_t), state_mask)
            dg = tf.reshape(tf.stack(dgates), [-1, 4 * units])  # [T*B, 4H]
            return weight_gradients(x, masked(y, state_mask), dg, w_x, batch=batch,
                                    units=units, reverse=reverse)

        return (outputs[order[-1]] if final_only else y), grad

    return run(x, kernel, bias)


def _unroll(inputs, w_h, order, state_mask):
    """The recurrent part, step by step in ``order``: each step's h_t (a list in time order)
    and what its gradient needs (:func:`_cell`), by step."""
    import tensorflow as tf

    h = c = None
    saved = {}  # t -> (c_prev, sigmoid(i), tanh(j), sigmoid(f), sigmoid(o), tanh(c))
    outputs = [None] * len(order)
    for t in order:
        h, c, saved[t] = _cell(inputs[t] if h is None else
                               inputs[t] + tf.matmul(masked(h, state_mask), w_h), c)
        outputs[t] = h
    return outputs, saved


def _cell(gates, c):
    """One step of BasicLSTMCell from its gates' pre-activations (i, j, f, o) and c_{t-1}
    (None: the zero state): h_t, c_t, and what its gradient needs (c_{t-1}, sigmoid(i),
    tanh(j), sigmoid(f), sigmoid(o), tanh(c_t))."""
    import tensorflow as tf

    i, j, f, o = tf.split(gates, 4, axis=1)
    i, j, f, o = tf.sigmoid(i), tf.tanh(j), tf.sigmoid(f), tf.sigmoid(o)
    c_prev = tf.zeros_like(i) if c is None else c
    c = i * j if c is None else c * f + i * j
    tanh_c = tf.tanh(c)
    return tanh_c * o, c, (c_prev, i, j, f, o, tanh_c)


def _cell_gradients(saved, dh_t, dc):
    """One step back through BasicLSTMCell: the gradient of its gates' pre-activations, in
    the kernel's order i, j, f, o, and of c_{t-1}, from the gradient of h_t (``dh_t``) and of
    c_t from the step after (``dc``; None at the last step). TensorFlow's own gradients of
    sigmoid and tanh, each one op: SigmoidGrad dy * y * (1 - y), TanhGrad dy * (1 - y^2)."""
    import tensorflow as tf

    sigmoid_grad, tanh_grad = tf.raw_ops.SigmoidGrad, tf.raw_ops.TanhGrad
    c_prev, i, j, f, o, tanh_c = saved
    do = sigmoid_grad(y=o, dy=dh_t * tanh_c)
    dc_t = tanh_grad(y=tanh_c, dy=dh_t * o)
    if dc is not None:
        dc_t = dc_t + dc
    di = sigmoid_grad(y=i, dy=dc_t * j)
    dj = tanh_grad(y=j, dy=dc_t * i)
    df = sigmoid_grad(y=f, dy=dc_t * c_prev)
    dc = dc_t * f
    return tf.concat([di, dj, df, do], axis=1), dc


# step_gradients, weight_gradients, drop and masked are zoo_rnn.sequence's too, copied for the
# reason zoo_lstm._sequences is: two plugins share no code but the core's.
def step_gradients(dy, steps: int, last: int, final_only: bool) -> list:
    """The gradient reaching each step's output: ``dy`` [T, B, H] unstacked, or, with
    ``final_only``, ``dy`` [B, H] at the final step (``last``) and None at the others."""
    import tensorflow as tf

    if final_only:  # the gradient reaches the final step only
        dys = [None] * steps
        dys[last] = dy
        return dys
    return tf.unstack(dy)


def weight_gradients(x, y, dg, w_x, *, batch, units: int, reverse: bool):
    """dx, d kernel and d bias of all the steps at once, from ``dg`` [T*B, 4H] (each step's
    gradient of its gates) and the outputs ``y`` [T, B, H], as cuDNN and PyTorch do: every
    step's h_{t-1} is ``y`` shifted by one step, the zero state first, and ONE matmul [x_t,
    h_{t-1}, 1]^T x dg gives dW_x, dW_h (the kernel's rows, in its order) and d bias (the
    last row): a single pass over dg, which measured faster than three."""
    import tensorflow as tf

    steps, _, depth = x.shape.as_list()
    zero = tf.zeros([1, batch, units])
    h_prev = (tf.concat([y[1:], zero], 0) if reverse else tf.concat([zero, y[:-1]], 0))
    ones = tf.ones([steps, batch, 1])
    z = tf.reshape(tf.concat([x, h_prev, ones], axis=2), [-1, depth + units + 1])
    dwb = tf.matmul(z, dg, transpose_a=True)  # [D + H + 1, 4H]
    dx = tf.reshape(tf.matmul(dg, w_x, transpose_b=True), tf.shape(x))
    return dx, dwb[:-1], dwb[-1]


def cell_variables(depth: int, units: int):
    """BasicLSTMCell's variables in the current variable scope: ``kernel`` [D + H, 4H] with
    the scope's default initializer (Glorot uniform) and ``bias`` [4H] of zeros."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with v1.variable_scope("basic_lstm_cell"):
        kernel = v1.get_variable("kernel", [depth + units, 4 * units], tf.float32)
        bias = v1.get_variable("bias", [4 * units], tf.float32,
                               initializer=v1.zeros_initializer())
    return kernel, bias


def stack(x, *, units: int, layers: int, forget_bias: float, keep_prob=None,
          reverse: bool = False, final_only: bool = False, state_keep_prob=None):
    """``static_rnn`` over ``MultiRNNCell([DropoutWrapper(BasicLSTMCell)] * layers)``, as
    whole sequences, in the current variable scope (``rnn``, or ``bidirectional_rnn/fw``).

    Args:
        x: float32 [T, B, D], time-major.
        keep_prob: DropoutWrapper's ``output_keep_prob`` (a tensor), or None for no dropout.
            Each layer's outputs are dropped, as the wrapper drops each cell's output: the
            next layer sees them dropped, the recurrence does not. The last layer's outputs
            are returned undropped: the caller drops (with :func:`drop`) only what it reads,
            as the basic graph computes the wrapper's dropout only for the steps read.

        final_only: the last layer returns its final state only (see ``lstm_layer``).
        state_keep_prob: variational recurrent dropout's keep probability (a tensor), or
            None: each layer draws one mask [B, H] per batch (``state_mask``).

    Returns:
        float32 [T, B, H], the last layer's outputs in time order, before dropout (or [B, H],
        its final state, with ``final_only``).
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    for n in range(layers):
        scope = v1.variable_scope(f"multi_rnn_cell/cell_{n}") if layers > 1 else nullcontext()
        with scope:
            kernel, bias = cell_variables(x.shape.as_list()[-1], units)
        if n:
            x = drop(x, keep_prob)
        mask = None
        if state_keep_prob is not None:  # one mask a sequence, as variational_recurrent draws
            mask = drop(tf.ones([tf.shape(x)[1], units]), state_keep_prob)
        x = lstm_layer(x, tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias),
                       forget_bias=forget_bias, reverse=reverse,
                       final_only=final_only and n == layers - 1, state_mask=mask)
    return x


def drop(x, keep_prob):
    """DropoutWrapper's output dropout (``dropout_v2`` at rate 1 - keep_prob), or ``x``."""
    import tensorflow as tf

    return x if keep_prob is None else tf.nn.dropout(x, rate=1.0 - keep_prob)


def masked(h, mask):
    """``h`` times variational recurrent dropout's mask (Gal and Ghahramani;
    ``DropoutWrapper(state_keep_prob=..., variational_recurrent=True)``): the same mask, zeros
    and 1 / keep, at every step; or ``h`` when ``mask`` is None."""
    return h if mask is None else h * mask
