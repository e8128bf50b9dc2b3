"""zoo-rnn: the builder honours the contract on real images, and the zoo finds it."""

import numpy as np
import pytest

import zoo_rnn
from zoo_core import testing
from zoo_core.catalogue import open_zoo


def test_logits_for_a_batch_of_real_images():
    images, _ = testing.real_images(16)
    logits = testing.run_builder(zoo_rnn.build, images, zoo_rnn.HPARAMS)
    assert logits.shape == (16, 10)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("shape", [(20, 12, 1), (32, 32, 3)])
def test_other_image_sizes_and_channels(shape):
    images = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    logits = testing.run_builder(zoo_rnn.build, images, zoo_rnn.HPARAMS, num_classes=7)
    assert logits.shape == (3, 7)


def test_registered_through_the_entry_point():
    zoo = open_zoo()
    spec = zoo.models["rnn"]
    assert spec.plugin == "zoo-rnn"
    assert spec.build is zoo_rnn.build
    assert set(spec.hparams) == set(zoo_rnn.HPARAMS)


def test_dropout_only_in_training():
    images, _ = testing.real_images(8)
    run = lambda training: testing.run_builder(  # noqa: E731
        zoo_rnn.build, images, zoo_rnn.HPARAMS, training=training, overrides={"dropout": 0.5})
    assert np.array_equal(run(False), run(False))
    assert not np.allclose(run(False), run(True))


def test_bidirectional_stacked_builds_and_reads_both_ways():
    images, _ = testing.real_images(4)
    one_way = testing.run_builder(zoo_rnn.build, images, zoo_rnn.HPARAMS)
    both = testing.run_builder(zoo_rnn.build, images, zoo_rnn.HPARAMS,
                               overrides={"bidirectional": True, "layers": 2})
    assert both.shape == (4, 10) and not np.allclose(one_way, both)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooled_readouts_see_every_row(bidirectional):
    images, _ = testing.real_images(4)
    logits = {readout: testing.run_builder(
        zoo_rnn.build, images, zoo_rnn.HPARAMS,
        overrides={"readout": readout, "bidirectional": bidirectional})
        for readout in ("last", "mean", "max")}
    assert all(v.shape == (4, 10) and np.isfinite(v).all() for v in logits.values())
    assert not np.allclose(logits["last"], logits["mean"])
    assert not np.allclose(logits["mean"], logits["max"])
    assert zoo_rnn.HPARAMS["readout"].choices == ("last", "mean", "max")
