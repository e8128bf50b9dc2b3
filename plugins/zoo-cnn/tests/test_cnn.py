"""zoo-cnn's own tests: its two registrations, and batch norm switched by ``training``
(the builder contract itself is checked by the kit: tests/test_cnn_conformance.py)."""

import numpy as np

import zoo_cnn
from zoo_core import testing
from zoo_core.catalogue import open_zoo


def test_both_models_are_registered_through_the_entry_point():
    models = open_zoo().models
    assert models["cnn"].plugin == models["cnn-bn"].plugin == "zoo-cnn"
    assert models["cnn"].build is models["cnn-bn"].build is zoo_cnn.build
    assert set(models["cnn"].hparams) == set(zoo_cnn.HPARAMS) == set(zoo_cnn.BATCH_NORM)


def test_the_batch_norm_cnn_is_its_own_registration_and_uses_training():
    spec = open_zoo().models["cnn-bn"]
    assert spec.plugin == "zoo-cnn" and spec.defaults()["batch_norm"] is True
    images, _ = testing.real_images(8)
    run = lambda training: testing.run_builder(  # noqa: E731
        zoo_cnn.build, images, zoo_cnn.BATCH_NORM, training=training, overrides={"dropout": 0.0})
    # batch statistics in training, moving averages in inference
    assert not np.allclose(run(False), run(True))


def test_the_resnet_is_registered_with_its_own_builder_and_trainer_settings():
    spec = open_zoo().models["resnet"]
    assert spec.plugin == "zoo-cnn" and spec.build is zoo_cnn.build_resnet
    assert set(spec.hparams) == set(zoo_cnn.RESNET)
    trainer = open_zoo().resolve("resnet", "fashion").trainer
    assert (trainer.epochs, trainer.lr_schedule, trainer.precision) == (30, "cosine", "auto")


def test_the_resnet_stays_under_a_million_parameters_counted_by_hand():
    def conv(k, cin, cout):  # batch normalization's scale and offset replace the bias
        return k * k * cin * cout + 2 * cout

    stage1 = 4 * conv(3, 32, 32)
    stage2 = conv(3, 32, 64) + conv(3, 64, 64) + conv(1, 32, 64) + 2 * conv(3, 64, 64)
    stage3 = conv(3, 64, 128) + conv(3, 128, 128) + conv(1, 64, 128) + 2 * conv(3, 128, 128)
    f = testing.forward_graph(zoo_cnn.build_resnet, zoo_cnn.RESNET)
    assert f.params == conv(3, 1, 32) + stage1 + stage2 + stage3 + 128 * 10 + 10 == 696_042
    # multiply-accumulates of its convolutions (with the logits': 80.5M, as the zoo counts):
    # each output element costs its kernel's taps times the input channels; 3 stages of
    # about 25.7M each, at 28x28, 14x14 and 7x7
    macs = 0
    for op in f.graph.get_operations():
        if op.type == "Conv2D":
            kh, kw, cin, _ = op.inputs[1].shape.as_list()
            macs += int(np.prod(op.outputs[0].shape.as_list()[1:])) * kh * kw * cin
    assert macs == 28 * 28 * (9 * 32 + 4 * 9 * 32 * 32) + 14 * 14 * (
        9 * 32 * 64 + 3 * 9 * 64 * 64 + 32 * 64) + 7 * 7 * (
        9 * 64 * 128 + 3 * 9 * 128 * 128 + 64 * 128) == 80_507_392  # + the logits' 1,280
