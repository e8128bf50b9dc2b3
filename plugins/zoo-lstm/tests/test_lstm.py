"""zoo-lstm: the builder honours the contract on real images, and the zoo finds it."""

import numpy as np
import pytest

import zoo_lstm
from zoo_core import testing
from zoo_core.catalogue import open_zoo


def test_logits_for_a_batch_of_real_images():
    images, _ = testing.real_images(16)
    logits = testing.run_builder(zoo_lstm.build, images, zoo_lstm.HPARAMS)
    assert logits.shape == (16, 10)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("shape", [(20, 12, 1), (32, 32, 3)])
def test_other_image_sizes_and_channels(shape):
    images = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    logits = testing.run_builder(zoo_lstm.build, images, zoo_lstm.HPARAMS, num_classes=7)
    assert logits.shape == (3, 7)


def test_registered_through_the_entry_point():
    zoo = open_zoo()
    spec = zoo.models["lstm"]
    assert spec.plugin == "zoo-lstm"
    assert spec.build is zoo_lstm.build
    assert set(spec.hparams) == set(zoo_lstm.HPARAMS)


def test_stacked_layers_build():
    images, _ = testing.real_images(4)
    logits = testing.run_builder(zoo_lstm.build, images, zoo_lstm.HPARAMS,
                                 overrides={"layers": 2, "hidden": 16})
    assert logits.shape == (4, 10)


def test_the_stacked_lstm_is_its_own_registration():
    spec = open_zoo().models["lstm-stack"]
    assert spec.plugin == "zoo-lstm"
    assert spec.defaults()["layers"] == 2 and spec.defaults()["dropout"] > 0


def test_bidirectional_builds():
    images, _ = testing.real_images(4)
    logits = testing.run_builder(zoo_lstm.build, images, zoo_lstm.HPARAMS,
                                 overrides={"bidirectional": True, "hidden": 16})
    assert logits.shape == (4, 10)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooled_readouts_see_every_row(bidirectional):
    images, _ = testing.real_images(4)
    logits = {readout: testing.run_builder(
        zoo_lstm.build, images, zoo_lstm.HPARAMS,
        overrides={"readout": readout, "bidirectional": bidirectional})
        for readout in ("last", "mean", "max")}
    assert all(v.shape == (4, 10) and np.isfinite(v).all() for v in logits.values())
    assert not np.allclose(logits["last"], logits["mean"])
    assert not np.allclose(logits["mean"], logits["max"])
    assert zoo_lstm.HPARAMS["readout"].choices == ("last", "mean", "max")
