"""zoo-cnn: the builder honours the contract on real images, and the zoo finds it."""

import numpy as np
import pytest

import zoo_cnn
from zoo_core import testing
from zoo_core.catalogue import open_zoo


def test_logits_for_a_batch_of_real_images():
    images, _ = testing.real_images(16)
    logits = testing.run_builder(zoo_cnn.build, images, zoo_cnn.HPARAMS)
    assert logits.shape == (16, 10)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("shape", [(20, 12, 1), (32, 32, 3)])
def test_other_image_sizes_and_channels(shape):
    images = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    logits = testing.run_builder(zoo_cnn.build, images, zoo_cnn.HPARAMS, num_classes=7)
    assert logits.shape == (3, 7)


def test_registered_through_the_entry_point():
    zoo = open_zoo()
    spec = zoo.models["cnn"]
    assert spec.plugin == "zoo-cnn"
    assert spec.build is zoo_cnn.build
    assert set(spec.hparams) == set(zoo_cnn.HPARAMS)


def test_dropout_only_in_training():
    images, _ = testing.real_images(8)
    run = lambda training: testing.run_builder(  # noqa: E731
        zoo_cnn.build, images, zoo_cnn.HPARAMS, training=training, overrides={"dropout": 0.5})
    assert np.array_equal(run(False), run(False))
    assert not np.allclose(run(False), run(True))


def test_the_batch_norm_cnn_is_its_own_registration_and_uses_training():
    spec = open_zoo().models["cnn-bn"]
    assert spec.plugin == "zoo-cnn" and spec.defaults()["batch_norm"] is True
    images, _ = testing.real_images(8)
    run = lambda training: testing.run_builder(  # noqa: E731
        zoo_cnn.build, images, zoo_cnn.BATCH_NORM, training=training, overrides={"dropout": 0.0})
    # batch statistics in training, moving averages in inference
    assert not np.allclose(run(False), run(True))
