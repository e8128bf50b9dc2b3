"""zoo-cnn's own tests: its registrations, and batch norm switched by ``training`` (the
builder contract itself is checked by the kit: tests/test_cnn_conformance.py; the resnet's
parameters and arithmetic are counted by hand in the zoo's tests/test_cost.py)."""

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

