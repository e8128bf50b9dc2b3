"""zoo-lstm beyond the builder contract (tests/test_lstm_conformance.py has that):
lstm and lstm-stack registered, stacked and bidirectional builds, the pooled readouts."""

import numpy as np
import pytest

import zoo_lstm
from zoo_core import testing
from zoo_core.catalogue import open_zoo


def test_both_models_are_registered_through_the_entry_point():
    models = open_zoo().models
    assert models["lstm"].plugin == models["lstm-stack"].plugin == "zoo-lstm"
    assert models["lstm"].build is models["lstm-stack"].build is zoo_lstm.build
    assert set(models["lstm"].hparams) == set(zoo_lstm.HPARAMS) == set(zoo_lstm.STACKED)
    stacked = models["lstm-stack"].defaults()
    assert stacked["layers"] == 2 and stacked["dropout"] > 0


def test_stacked_layers_build():
    images, _ = testing.real_images(4)
    logits = testing.run_builder(zoo_lstm.build, images, zoo_lstm.HPARAMS,
                                 overrides={"layers": 2, "hidden": 16})
    assert logits.shape == (4, 10)


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
