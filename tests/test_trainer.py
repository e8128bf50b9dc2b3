"""The shared trainer on real Fashion-MNIST subsets: it learns, it is deterministic,
it selects on validation, and it fails clearly."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import pytest

from zoo_core import data, hookimpl
from zoo_core.catalogue import open_zoo
from zoo_core.errors import PluginError, TrainingError
from zoo_core.paths import RunFiles
from zoo_core.runs import execute
from zoo_core.runs.plan import RunRequest, plan
from zoo_core.store import open_store
from zoo_core.train import checkpoints
from zoo_core.train.evaluate import evaluate_checkpoint
from zoo_core.train.graph import build_graph
from zoo_core.train.loop import train
from zoo_core.train.metrics import summarize

# the rnn with one layer read one way over the rows, a graph an eighth of the registry's: for
# the tests of checkpoints, early stopping and resuming, which do not depend on its size
ONE_PASS = {"layers": 1, "bidirectional": False, "read": "rows"}


@pytest.fixture(scope="module")
def subset(the_zoo):
    return data.load(the_zoo.dataset("fashion"), limit=3000)


def planned(the_zoo, model, **kwargs):
    """The one run `zoo run MODEL --limit 3000` plans."""
    return plan(the_zoo, RunRequest([model], "fashion", limit=3000, **kwargs)).runs[0]


# The registry's cnn normalizes its batches and uses dropout; these tests train it for 48
# steps, which its moving statistics alone would not survive: the trainer estimates them
# again before each evaluation (bn_batches, zoo_core/train/batchnorm.py).
def fit(the_zoo, subset, tmp_path, model, seed=0, **overrides):
    r = the_zoo.resolve(model, "fashion", overrides={"epochs": 2, **overrides})
    return train(r.model, r.hparams, r.trainer, subset, seed, tmp_path)


@pytest.mark.parametrize("model, floor", [("cnn", 0.65), ("lstm", 0.45), ("rnn", 0.40)])
def test_each_builtin_model_learns_on_real_data(the_zoo, subset, tmp_path, model, floor):
    result = fit(the_zoo, subset, tmp_path, model)
    assert result.test.examples == 10_000  # the full test split, once
    assert result.test.accuracy > floor, f"{model}: {result.test.accuracy:.3f} (chance is 0.10)"
    assert result.epochs[-1]["train_loss"] < result.epochs[0]["train_loss"]
    assert result.test.confusion.sum() == 10_000


def test_the_same_seed_gives_the_same_result(the_zoo, subset, tmp_path):
    a = fit(the_zoo, subset, tmp_path / "a", "cnn", seed=3, epochs=1)
    b = fit(the_zoo, subset, tmp_path / "b", "cnn", seed=3, epochs=1)
    c = fit(the_zoo, subset, tmp_path / "c", "cnn", seed=4, epochs=1)
    assert a.test.accuracy == b.test.accuracy and a.test.loss == b.test.loss
    assert a.epochs[0]["train_loss"] == b.epochs[0]["train_loss"]
    assert c.test.loss != a.test.loss


def test_uint8_images_train_exactly_as_their_float32_scaling(the_zoo, subset, tmp_path):
    """The loader keeps uint8 pixels (a quarter of the memory) and the graph scales each
    batch; a run must be the one it was when the trainer held float32 [0, 1] images."""
    assert subset.x_train.dtype == np.uint8
    floats = dataclasses.replace(subset, **{k: data.to_float(getattr(subset, k))
                                            for k in ("x_train", "x_val", "x_test")})
    a = fit(the_zoo, subset, tmp_path / "a", "cnn", seed=1, epochs=1, augment_shift=2,
            steps_per_call=4)
    b = fit(the_zoo, floats, tmp_path / "b", "cnn", seed=1, epochs=1, augment_shift=2,
            steps_per_call=4)
    assert a.epochs[0]["train_loss"] == b.epochs[0]["train_loss"]
    assert (a.test.loss, a.test.accuracy) == (b.test.loss, b.test.accuracy)


def test_a_graph_refuses_training_images_of_another_dtype(the_zoo, subset):
    r = the_zoo.resolve("cnn", "fashion")
    g = build_graph(r.model, r.hparams, r.trainer, (28, 28, 1), 10, 0, n_train=8)
    with pytest.raises(TypeError, match="train_dtype='uint8'"):
        g.hold(None, subset.x_train[:8], subset.y_train[:8])


def test_the_best_validation_epoch_is_restored_for_the_test(the_zoo, subset, tmp_path):
    result = fit(the_zoo, subset, tmp_path, "rnn", epochs=3, **ONE_PASS)
    best = max(result.epochs, key=lambda e: e["val_accuracy"])
    assert result.best_epoch == best["epoch"]
    assert result.val_accuracy == best["val_accuracy"]
    index = checkpoints.read_index(tmp_path)
    assert index["prefix"] == f"ckpt/best-{best['epoch']}" and index["epoch"] == best["epoch"]
    assert index["last"] == "ckpt/last-3"
    # older checkpoints are removed: one best and one last remain
    assert [p.name for p in (tmp_path / "ckpt").glob("best-*.index")] == [f"best-{best['epoch']}.index"]
    assert [p.name for p in (tmp_path / "ckpt").glob("last-*.index")] == ["last-3.index"]
    r = the_zoo.resolve("rnn", "fashion", overrides=ONE_PASS)
    val = evaluate_checkpoint(r.model, r.hparams, r.trainer, tmp_path, subset.x_val,
                                      subset.y_val, 10)
    assert val.accuracy == pytest.approx(result.val_accuracy)


def test_shared_features_train(the_zoo, subset, tmp_path):
    result = fit(the_zoo, subset, tmp_path, "cnn", epochs=2, lr=0.002, lr_schedule="constant")
    r = the_zoo.resolve("cnn", "fashion", overrides={"epochs": 2}, raw_overrides={
        "lr_schedule": "cosine", "clip_norm": "1.0", "weight_decay": "1e-4",
        "label_smoothing": "0.1", "augment_shift": "2", "augment_flip": "true", "dropout": "0.2"})
    featured = train(r.model, r.hparams, r.trainer, subset, 0, tmp_path / "f")
    assert featured.test.accuracy > 0.6
    assert featured.epochs[-1]["lr"] < featured.epochs[0]["lr"]  # cosine decays
    assert result.epochs[0]["lr"] == pytest.approx(0.002)


def test_patience_stops_early(the_zoo, subset, tmp_path):
    # a learning rate far too high: validation accuracy stalls, patience ends the run
    result = fit(the_zoo, subset, tmp_path, "rnn", epochs=8, lr=1.0, patience=1, **ONE_PASS)
    assert result.stopped_early and len(result.epochs) < 8
    assert len(result.epochs) == result.best_epoch + 1


def _plugin(build, name="bad"):
    mod = types.ModuleType("fake_plugin")

    def zoo_register_models(register):
        register(name, build, summary="a broken test model")
    mod.zoo_register_models = hookimpl(zoo_register_models)
    return mod


def test_a_nan_loss_stops_at_once_and_is_recorded_as_failed(subset, tmp_path):
    def build(images, *, num_classes, hparams, training):
        import tensorflow as tf
        logits = tf.compat.v1.layers.dense(tf.compat.v1.layers.flatten(images), num_classes)
        return logits * float("nan")
    zoo = open_zoo(plugins=[_plugin(build)])
    with open_store() as store:
        with pytest.raises(TrainingError, match=r"the loss became nan at epoch 1, step 1: try a lower"):
            execute.execute(zoo, planned(zoo, "bad"), store, subset)
        (record,) = store.runs(model="bad")
    assert record.status == "failed" and "loss became nan" in record.error


@pytest.mark.parametrize("build, message", [
    (lambda images, **kw: images, r"logits must have shape \[batch, 10\], got \[None, 28, 28, 1\]"),
    (lambda images, **kw: 3, "must return a logits tensor, got int"),
    (lambda images, **kw: __import__("tensorflow").zeros([1, 10]) + images[:1, 0, 0, :1] * 0,
     "created no trainable variables"),
    (lambda images, **kw: 1 / 0, "the builder raised ZeroDivisionError"),
])
def test_a_builder_that_breaks_the_contract_is_named(subset, tmp_path, build, message):
    zoo = open_zoo(plugins=[_plugin(build)])
    r = zoo.resolve("bad", "fashion", overrides={"epochs": 1})
    with pytest.raises(PluginError, match=message) as err:
        train(r.model, r.hparams, r.trainer, subset, 0, tmp_path)
    assert "model 'bad'" in str(err.value)


def test_evaluation_summary_matches_numpy():
    labels = np.array([0, 0, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0])
    m = summarize(labels, preds, 0.5, 3)
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.per_class == [0.5, 1.0, 0.0]
    assert m.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_resumes(subset, tmp_path,
                                                                             monkeypatch):
    import errno

    zoo = open_zoo()
    real = checkpoints.write_json_atomic

    def full_at_epoch_2(path, data):
        if path.name == RunFiles.CHECKPOINT_INDEX and data["state"]["epochs"][-1]["epoch"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(checkpoints, "write_json_atomic", full_at_epoch_2)
    run = planned(zoo, "rnn", overrides={"epochs": 3, **ONE_PASS})
    with open_store() as store:
        with pytest.raises(TrainingError, match=r"cannot save the checkpoint of epoch 2 in .*"
                                                r"\(No space left on device\); the previous "
                                                r"checkpoint is intact"):
            execute.execute(zoo, run, store, subset)
        (record,) = store.runs()
        assert record.status == "failed"
        assert checkpoints.read_index(Path(record.run_dir))["last"] == "ckpt/last-1"
        monkeypatch.setattr(checkpoints, "write_json_atomic", real)  # space freed
        done = execute.resume(zoo, record.run_id, store)
    assert done.status == "completed" and done.epochs_run == 3


def test_a_resumed_run_interrupted_again_counts_the_epochs_before_the_resume(subset, stop_at):
    from zoo_core.errors import RunInterrupted

    zoo = open_zoo()
    with open_store() as store:
        with pytest.raises(RunInterrupted) as first:
            execute.execute(zoo, planned(zoo, "cnn", overrides={"epochs": 3}), store, subset,
                            stop_at(2))
        assert first.value.epochs == 1
        with pytest.raises(RunInterrupted) as again:  # before the resumed run's first epoch ends
            execute.resume(zoo, first.value.run_id, store, progress=stop_at(2))
        assert again.value.epochs == 1  # its checkpoint of epoch 1 is still there to resume
        record = store.get(first.value.run_id)
        assert (record.status, record.error) == ("interrupted", "interrupted after 1 epoch(s)")
