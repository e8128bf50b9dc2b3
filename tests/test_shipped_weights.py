"""The zoo's own models ship their Fashion-MNIST weights (issue 14): each pack is the
registry default's seed-0 run, its declaration matches the file, and `zoo predict MODEL`
then works in a fresh home with no training, reproducing the declared test accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo_core import data
from zoo_core.serving import weights
from zoo_core.settings import cpu_has_bf16

SHIPPED = ["cnn", "cnn-bn", "rnn", "lstm", "lstm-stack"]


@pytest.mark.parametrize("model", SHIPPED)
def test_a_shipped_pack_is_the_registry_defaults_seed_0_run(the_zoo, model, monkeypatch):
    from zoo_core import settings as settings_module

    declared = weights.declared(the_zoo, model)["fashion"]
    assert weights.shipped_file(the_zoo, model, declared) is not None
    # the registry's reference rows were measured on a CPU with bfloat16 ("auto" computed in it)
    monkeypatch.setattr(settings_module, "cpu_has_bf16", lambda: True)
    assert declared.config_id == the_zoo.resolve(model, "fashion").settings.config_id
    assert declared.config_id == the_zoo.catalogue.models[model].reference["fashion"]["config_id"]
    # the file's sha256, its run's config id and test accuracy: what `zoo check` verifies
    [(name, status, message)] = weights.check_declared(the_zoo, model)
    assert (name, status) == ("weights:fashion", "passed"), message


def test_a_shipped_pack_is_small(the_zoo):
    for model in SHIPPED:
        path = weights.shipped_file(the_zoo, model, weights.declared(the_zoo, model)["fashion"])
        assert path.stat().st_size < 5 * 2**20, f"{model}: {path.stat().st_size:,} bytes"


@pytest.mark.slow
@pytest.mark.parametrize("model", SHIPPED)
def test_predict_with_no_training_uses_the_shipped_weights_and_they_reproduce_the_row(
        zoo, the_zoo, model, tmp_path):
    test = data.load(the_zoo.dataset("fashion"))
    np.save(tmp_path / "first.npy", test.x_test[:5])
    shown = zoo("predict", model, str(tmp_path / "first.npy"), "--json")
    assert shown.exit_code == 0, shown.output
    predicted = json.loads(shown.stdout)
    declared = weights.declared(the_zoo, model)["fashion"]
    top = [p["top"][0]["class_id"] for p in predicted["predictions"]]
    assert np.mean(np.array(top) == test.y_test[:5]) >= 0.6  # a trained model, not chance

    listed = zoo("leaderboard", "--json")
    assert "imported" in listed.stdout
    # the shipped packs carry no predictions.npz: the import evaluated the best checkpoint
    # on the test split as `zoo evaluate` does, saved every prediction and drew the picture
    shown = json.loads(zoo("show", predicted["run_id"], "--json").stdout)
    assert {"predictions.png", "predictions.npz"} <= set(shown["files"])
    with np.load(shown["files"]["predictions.npz"]) as saved:
        accuracy = float(np.mean(saved["test_predicted"] == test.y_test))
    recorded = the_zoo.resolve(model, "fashion").settings.trainer.precision
    if recorded == "float32" or cpu_has_bf16():
        assert accuracy == pytest.approx(declared.test_accuracy, abs=5e-5)  # to 4 decimals
    else:  # a bfloat16 run evaluated in float32 on a CPU without it: rounding differs
        assert accuracy == pytest.approx(declared.test_accuracy, abs=0.005)
