"""The ``sequence`` kernel: BasicRNNCell's function over a whole sequence, with a hand-written
backward pass.

``BasicRNNCell`` unrolled with ``static_rnn`` computes, at every step,
h_t = tanh(concat([x_t, h_{t-1}]) kernel + bias) (or ReLU, the IRNN's activation, when the
cell is given ``activation=tf.nn.relu``), and its gradient does one matmul per step
for the kernel's gradient, summed over the steps afterwards. Here:

forward   the input part of every step in ONE matmul ([T*B, D] x [D, H], bias added once),
          then h_t = tanh(that step's input part + h_{t-1} x W_h), step by step.
backward  (``tf.custom_gradient``) back through time step by step (da_t = TanhGrad(h_t,
          dh_t), or ReluGrad(dh_t, h_t) for ReLU, TensorFlow's own gradients of the two;
          dh_{t-1} = da_t x W_h^T), then the gradients of the kernel (both its x and
          its h rows) and of the bias for all the steps in ONE matmul:
          [x_t, h_{t-1}, 1]^T x da_all.

The variables are BasicRNNCell's (``kernel`` [D + H, H] with the scope's default
initializer, Glorot uniform or init=irnn's, ``bias`` [H] of zeros, with its names), so
checkpoints and parameter counts are the same. tests/test_rnn_sequence_kernel.py checks
that the outputs and the gradients with respect to every variable and to the images equal
BasicRNNCell + static_rnn's, up to float32 rounding.
"""

from __future__ import annotations

from contextlib import nullcontext


def rnn_layer(x, kernel, bias, *, reverse: bool = False, final_only: bool = False,
              activation: str = "tanh", state_mask=None):
    """One tanh (or ReLU) RNN layer over a whole sequence, time-major.

    Args:
        x: float32 [T, B, D], the inputs of every step.
        kernel: float32 [D + H, H], BasicRNNCell's kernel (the x rows, then the h rows).
        bias: float32 [H].
        reverse: run from the last step to the first (the backward direction of
            ``static_bidirectional_rnn``); the outputs stay in time order.
        final_only: return only the final state (h at the last step run; the first row's
            when ``reverse``), when nothing reads the others: the backward pass then skips
            the zero gradients of the other steps.
        activation: "tanh" (BasicRNNCell's default) or "relu" (init=irnn's).
        state_mask: float32 [B, H] or None: variational recurrent dropout's mask on h_{t-1}
            before every step's recurrent matmul (:func:`masked`); outputs are not masked.

    Returns:
        float32 [T, B, H]: h_t of every step, in time order (or [B, H], the final h_t, with
        ``final_only``). The state starts at zero.
    """
    import tensorflow as tf

    steps, _, depth = x.shape.as_list()
    units = kernel.shape.as_list()[1]
    order = list(range(steps))[::-1] if reverse else list(range(steps))
    act, act_grad = _activation(activation)

    @tf.custom_gradient
    def run(x, kernel, bias):
        w_x, w_h = kernel[:depth], kernel[depth:]
        batch = tf.shape(x)[1]
        x2 = tf.reshape(x, [-1, depth])  # [T*B, D], row t*B + b
        projected = tf.nn.bias_add(tf.matmul(x2, w_x), bias)
        inputs = tf.unstack(tf.reshape(projected, [steps, -1, units]))  # contiguous slices
        h = None
        outputs = [None] * steps
        for t in order:
            h = act(inputs[t] if h is None else inputs[t] + tf.matmul(masked(h, state_mask), w_h))
            outputs[t] = h
        y = tf.stack(outputs)  # [T, B, H]

        def grad(dy):
            dys = step_gradients(dy, steps, order[-1], final_only)
            w_h_t = tf.transpose(w_h)
            da = [None] * steps
            dh = None
            for k, t in enumerate(reversed(order)):
                dh_t = dys[t] if dh is None else dh if dys[t] is None else dys[t] + dh
                da[t] = act_grad(outputs[t], dh_t)
                if k < steps - 1:  # the first step's h_prev is the zero state
                    dh = masked(tf.matmul(da[t], w_h_t), state_mask)
            dg = tf.reshape(tf.stack(da), [-1, units])  # [T*B, H]
            return weight_gradients(x, masked(y, state_mask), dg, w_x, batch=batch,
                                    units=units, reverse=reverse)

        return (outputs[order[-1]] if final_only else y), grad

    return run(x, kernel, bias)


def masked(h, mask):
    """``h`` times variational recurrent dropout's mask (Gal and Ghahramani;
    ``DropoutWrapper(state_keep_prob=..., variational_recurrent=True)``): the same mask, zeros
    and 1 / keep, at every step; or ``h`` when ``mask`` is None."""
    return h if mask is None else h * mask


def _activation(activation: str):
    """The activation and its gradient from its output, TensorFlow's own gradients of the
    two: tanh (dh * (1 - h^2)) or ReLU (dh where h > 0, that is, where a > 0)."""
    import tensorflow as tf

    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation must be tanh or relu, not {activation!r}")

    def act_grad(h, dh):
        if activation == "tanh":
            return tf.raw_ops.TanhGrad(y=h, dy=dh)
        return tf.raw_ops.ReluGrad(gradients=dh, features=h)

    return (tf.tanh if activation == "tanh" else tf.nn.relu), act_grad


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
    """dx, d kernel and d bias of all the steps at once, from ``dg`` [T*B, G] (each step's
    gradient of its pre-activations) and the outputs ``y`` [T, B, H]: every step's h_{t-1}
    is ``y`` shifted by one step, the zero state first, and ONE matmul [x_t, h_{t-1}, 1]^T x
    dg gives the kernel's rows (its x rows, then its h rows) and then the bias's."""
    import tensorflow as tf

    steps, _, depth = x.shape.as_list()
    zero = tf.zeros([1, batch, units])
    h_prev = (tf.concat([y[1:], zero], 0) if reverse else tf.concat([zero, y[:-1]], 0))
    ones = tf.ones([steps, batch, 1])
    z = tf.reshape(tf.concat([x, h_prev, ones], axis=2), [-1, depth + units + 1])
    dwb = tf.matmul(z, dg, transpose_a=True)  # [D + H + 1, G]: dW_x, dW_h, d bias
    dx = tf.reshape(tf.matmul(dg, w_x, transpose_b=True), tf.shape(x))
    return dx, dwb[:-1], dwb[-1]


def cell_variables(depth: int, units: int):
    """BasicRNNCell's variables in the current variable scope: ``kernel`` [D + H, H] with
    the scope's default initializer (Glorot uniform, or the one a caller set on the scope:
    init=irnn's) and ``bias`` [H] of zeros."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with v1.variable_scope("basic_rnn_cell"):
        kernel = v1.get_variable("kernel", [depth + units, units], tf.float32)
        bias = v1.get_variable("bias", [units], tf.float32, initializer=v1.zeros_initializer())
    return kernel, bias


def stack(x, *, units: int, layers: int, keep_prob=None, reverse: bool = False,
          final_only: bool = False, activation: str = "tanh", state_keep_prob=None):
    """``static_rnn`` over ``MultiRNNCell([DropoutWrapper(BasicRNNCell)] * layers)``, as
    whole sequences, in the current variable scope (``rnn``, or ``bidirectional_rnn/fw``).

    Args:
        x: float32 [T, B, D], time-major.
        keep_prob: DropoutWrapper's ``output_keep_prob`` (a tensor), or None for no dropout.
            Each layer's outputs are dropped before the next layer reads them; the last
            layer's are returned undropped, for the caller to drop (with :func:`drop`) only
            what it reads, as the basic graph computes the wrapper's dropout only there.

        final_only: the last layer returns its final state only (see ``rnn_layer``).
        activation: every layer's, "tanh" or "relu" (see ``rnn_layer``).
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
        x = rnn_layer(x, tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias),
                      reverse=reverse, final_only=final_only and n == layers - 1,
                      activation=activation, state_mask=mask)
    return x


def drop(x, keep_prob):
    """DropoutWrapper's output dropout (``dropout_v2`` at rate 1 - keep_prob), or ``x``."""
    import tensorflow as tf

    return x if keep_prob is None else tf.nn.dropout(x, rate=1.0 - keep_prob)
