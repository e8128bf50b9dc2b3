"""zoo-cnn: convolutional networks built from ``tf.compat.v1.layers.conv2d``: a plain
CNN (``cnn``, ``cnn-bn``) and a small residual network (``resnet``).

The zoo finds this module through the ``zoo`` entry point in pyproject.toml and
calls :func:`zoo_register_models`. TensorFlow is imported inside :func:`build`, so
listing models never pays for it.
"""

from zoo_core import HParam, hookimpl

__version__ = "0.1.0"

HPARAMS = {
    "blocks": HParam(2, help="conv blocks; each is conv2d + max pool, filters double", min=1, max=6),
    "filters": HParam(32, help="filters of the first conv block", min=1, max=1024,
                      search="choice(16,32,64)"),
    "kernel": HParam(3, help="conv kernel size", min=1, max=11),
    "dense": HParam(128, help="units of the dense layer before the logits (0: none)", min=0, max=16384,
                    search="choice(64,128,256)"),
    "dropout": HParam(0.0, help="dropout rate before the logits, training only", min=0.0, max=0.95,
                      search="float(0,0.5)"),
    "convs": HParam(1, help="conv2d layers per block, before its pooling", min=1, max=4),
    "batch_norm": HParam(False, help="batch normalization after each conv2d and the dense layer"),
}

# The batch-normalized CNN of the seed projects: two convs per block, BN, dropout.
BATCH_NORM = {**HPARAMS, "convs": HParam(2, help=HPARAMS["convs"].help, min=1, max=4),
              "batch_norm": HParam(True, help=HPARAMS["batch_norm"].help),
              "dropout": HParam(0.3, help=HPARAMS["dropout"].help, min=0.0, max=0.95)}

# A small ResNet (He et al. 2016, the CIFAR shape): a 3x3 stem, then stages of basic blocks
# (two 3x3 convs and a shortcut); each stage after the first halves the size and doubles
# the filters. 3 stages of 2 blocks from 32 filters: 696,042 parameters and 80.5M
# multiply-accumulates per 28x28x1 image (the zoo's tests/test_cost.py counts them by hand).
RESNET = {
    "stages": HParam(3, help="stages of residual blocks; each after the first halves the size "
                     "and doubles the filters", min=1, max=5),
    "blocks": HParam(2, help="basic residual blocks (two 3x3 conv2d) per stage", min=1, max=8,
                     search="choice(1,2,3)"),
    "filters": HParam(32, help="filters of the stem and the first stage", min=1, max=512,
                      search="choice(16,32,48)"),
    "dropout": HParam(0.0, help="dropout rate before the logits, training only", min=0.0,
                      max=0.95, search="float(0,0.5)"),
}


def build(images, *, num_classes, hparams, training):
    """Conv blocks, then a dense head.

    Args:
        images: float32 [batch, height, width, channels].
        num_classes: the number of logits.
        hparams: the values of :data:`HPARAMS`, merged by the core.
        training: boolean scalar tensor; switches dropout on.

    Returns:
        float32 logits [batch, num_classes].
    """
    import tensorflow as tf

    layers = tf.compat.v1.layers
    bn = hparams["batch_norm"]

    def activate(x, name):
        if bn:  # the trainer runs UPDATE_OPS, which keep the moving statistics
            x = layers.batch_normalization(x, training=training, name=f"{name}_bn")
        return tf.nn.relu(x)

    x = images
    for i in range(hparams["blocks"]):
        for j in range(hparams["convs"]):
            name = f"conv{i + 1}" + (f"_{j + 1}" if hparams["convs"] > 1 else "")
            x = layers.conv2d(x, hparams["filters"] * 2**i, hparams["kernel"], padding="same",
                              use_bias=not bn, name=name)
            x = activate(x, name)
        x = layers.max_pooling2d(x, 2, 2, padding="same", name=f"pool{i + 1}")
    x = layers.flatten(x)
    if hparams["dense"]:
        x = activate(layers.dense(x, hparams["dense"], use_bias=not bn, name="dense"), "dense")
    if hparams["dropout"]:
        x = layers.dropout(x, rate=hparams["dropout"], training=training)
    return layers.dense(x, num_classes, name="logits")


def build_resnet(images, *, num_classes, hparams, training):
    """A residual network: stem, stages of basic blocks, global average pooling, logits.

    Every conv2d is followed by batch normalization (the trainer runs UPDATE_OPS and
    re-estimates the moving statistics before it evaluates: ``bn_batches``). Each block's
    last normalization starts with a zero scale, so a block starts as the identity and a
    deep network trains like a shallow one at first (Goyal et al. 2017).
    """
    import tensorflow as tf

    layers = tf.compat.v1.layers

    def conv_bn(x, filters, name, strides=1, kernel=3, zero=False):
        x = layers.conv2d(x, filters, kernel, strides, padding="same", use_bias=False,
                          name=name)
        return layers.batch_normalization(
            x, training=training, name=f"{name}_bn",
            gamma_initializer=(tf.compat.v1.zeros_initializer() if zero
                               else tf.compat.v1.ones_initializer()))

    x = tf.nn.relu(conv_bn(images, hparams["filters"], "stem"))
    for s in range(hparams["stages"]):
        filters = hparams["filters"] * 2**s
        for b in range(hparams["blocks"]):
            name, strides = f"stage{s + 1}_block{b + 1}", 2 if s and not b else 1
            y = tf.nn.relu(conv_bn(x, filters, f"{name}_conv1", strides))
            y = conv_bn(y, filters, f"{name}_conv2", zero=True)
            if strides != 1 or x.shape[-1] != filters:  # a 1x1 projection where shapes change
                x = conv_bn(x, filters, f"{name}_shortcut", strides, kernel=1)
            x = tf.nn.relu(x + y)
    x = tf.reduce_mean(x, axis=[1, 2], name="global_pool")
    if hparams["dropout"]:
        x = layers.dropout(x, rate=hparams["dropout"], training=training)
    return layers.dense(x, num_classes, name="logits")


@hookimpl
def zoo_register_models(register):
    register(
        "cnn",
        build,
        summary="conv2d 32-64 blocks with max pooling and a dense head (tf.compat.v1.layers)",
        hparams=HPARAMS,
        # Its Fashion-MNIST weights, shipped in this package (`zoo pull cnn`, and
        # `zoo predict cnn IMAGE` with no training): `zoo run cnn --dataset fashion --seed 0`,
        # then `zoo pack RUN -o .../weights/cnn-fashion.zoopack` (bfloat16: its
        # precision is auto).
        weights={"fashion": {
            "file": "weights/cnn-fashion.zoopack",
            "sha256": "0e4afd15047d70d44ed34d583c540232fa3e3b33ffcd8d6874199ff709b13a12",
            "config_id": "298f2e828a",
            "test_accuracy": 0.9302,
        }},
    )
    register(
        "cnn-bn",
        build,
        summary="conv2d blocks of two convs with batch normalization, max pooling and dropout",
        hparams=BATCH_NORM,
        # `zoo run cnn-bn --dataset fashion --seed 0` (bfloat16), packed as the cnn's
        weights={"fashion": {
            "file": "weights/cnn-bn-fashion.zoopack",
            "sha256": "537a1968b6803c9a8a7327bd074cc66cdfb4fa97b032d36997aa08401f70e646",
            "config_id": "adb78b474a",
            "test_accuracy": 0.9445,
        }},
    )
    register(
        "resnet",
        build_resnet,
        summary="a small ResNet: conv2d basic residual blocks with batch normalization, "
                "global average pooling",
        hparams=RESNET,
        # Its trainer settings: cnn-bn's recipe (a cosine schedule from 2e-3, shifts and
        # flips, bfloat16 where the CPU has it) in 30 epochs. Not yet in registry.toml's
        # curated catalogue: a row there needs 3 measured seeds (docs/results.md).
        defaults={"epochs": 30, "lr": 0.002, "lr_schedule": "cosine", "augment_shift": 2,
                  "augment_flip": True, "precision": "auto"},
    )
