"""What the conformance kit (tests/test_rnn_conformance.py) does not check of zoo-rnn: its
registration, and what bidirectional, stacked and pooled readings change."""

import numpy as np
import pytest

import zoo_rnn
from zoo_core import testing
from zoo_core.catalogue import open_zoo


def test_registered_through_the_entry_point():
    zoo = open_zoo()
    spec = zoo.models["rnn"]
    assert spec.plugin == "zoo-rnn"
    assert spec.build is zoo_rnn.build
    assert set(spec.hparams) == set(zoo_rnn.HPARAMS)


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
