"""zoo-legacy: the 'legacy' model for zoo.

A small multilayer perceptron to start from: the image flattened, ``layers`` dense
ReLU layers of ``hidden`` units, each followed by dropout while training, then the
logits. Replace the body of :func:`build` with your own network; keep its
signature (see the zoo's docs/writing-plugins.md).

The zoo finds this module through the ``zoo`` entry point in pyproject.toml and
calls :func:`zoo_register_models`. TensorFlow is imported inside :func:`build`, so
``zoo list`` never pays for it.
"""

from zoo_core import HParam, hookimpl

__version__ = "0.1.0"

HPARAMS = {
    "hidden": HParam(256, help="units of each hidden layer", min=1, max=8192),
    "layers": HParam(1, help="hidden layers", min=1, max=8),
    "dropout": HParam(0.2, help="dropout after each hidden layer, training only",
                      min=0.0, max=0.95),
}


def build(images, *, num_classes, hparams, training):
    """Dense layers over the flattened image.

    Args:
        images: float32 [batch, height, width, channels], values in [0, 1].
        num_classes: the number of logits.
        hparams: the values of :data:`HPARAMS`, merged by the core.
        training: boolean scalar tensor; switches dropout on.

    Returns:
        float32 logits [batch, num_classes].
    """
    import tensorflow as tf

    layers = tf.compat.v1.layers
    x = layers.flatten(images)
    for i in range(hparams["layers"]):
        x = layers.dense(x, hparams["hidden"], activation=tf.nn.relu, name=f"hidden{i + 1}")
        x = layers.dropout(x, rate=hparams["dropout"], training=training)
    return layers.dense(x, num_classes, name="logits")


@hookimpl
def zoo_register_models(register):
    register(
        "legacy",
        build,
        summary="a multilayer perceptron (tf.compat.v1.layers.dense)",
        hparams=HPARAMS,
        inputs=("image",),  # documented by zoo-core 0.1.0's docs/hooks.md, not scaffolded
        description="zoo-core 0.1.0's `zoo new-plugin` output, kept as a compatibility fixture",
    )
