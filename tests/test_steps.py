"""K optimizer steps per Session.run (steps_per_call): the same math as K single steps,
the same recorded run, a speed-only setting; and the retired xla setting."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from zoo_core import data, hookimpl
from zoo_core.catalogue import open_zoo
from zoo_core.errors import HParamError, TrainingError
from zoo_core.paths import RunFiles
from zoo_core.runs import execute
from zoo_core.runs.plan import RunRequest, plan
from zoo_core.store import open_store
from zoo_core.settings import TRAINER_HPARAMS, RunSettings, config_id
from zoo_core.train import loop
from zoo_core.train.graph import build_graph

BATCH, K = 32, 4
# the rnn with one layer read one way over the rows: a graph an eighth of the registry's, for
# tests of the step loop rather than of the rnn; without the registry's weight decay, whose
# L2 term a loop of steps cannot read once per step (such a run trains a step per call)
NO_DECAY = {"weight_decay": 0.0}
ONE_PASS = {"layers": 1, "bidirectional": False, "read": "rows", **NO_DECAY}


@pytest.fixture(scope="module")
def subset(the_zoo):
    return data.load(the_zoo.dataset("fashion"), limit=600)


def _graph(the_zoo, subset, model, **overrides):
    r = the_zoo.resolve(model, "fashion", overrides={"batch_size": BATCH, **overrides})
    n = len(subset.y_train)
    g = build_graph(r.model, r.hparams, r.trainer, subset.x_train.shape[1:], subset.num_classes,
                    0, n, n // BATCH, step_loop=True,
                    train_dtype=subset.x_train.dtype)
    return r, g


def _session(tf, g, subset):
    sess = tf.compat.v1.Session(graph=g.graph)
    sess.run(g.init)
    g.hold(sess, subset.x_train, subset.y_train)
    return sess


# Tiny models, so the test is fast: the cnn with batch norm (and the registry's shift and
# flip augmentation for cnn-bn), the rnn's two bidirectional layers of BasicRNNCell
# (static_rnn caches its variables' reads) with clipping, label smoothing and a cosine
# schedule (without its weight decay: above).
@pytest.mark.parametrize("model, overrides", [
    ("cnn-bn", {"blocks": 1, "filters": 8, "dense": 16, "dropout": 0.0, "lr": 0.02}),
    ("rnn", {"hidden": 16, **NO_DECAY}),
])
def test_one_call_of_k_steps_is_k_single_steps(the_zoo, subset, model, overrides):
    from zoo_core._tf import tf as import_tf

    tf = import_tf()
    r, g = _graph(the_zoo, subset, model, **overrides)
    assert g.steps is not None, g.steps_problem
    if model == "cnn-bn":
        assert r.trainer.augment_shift and r.trainer.augment_flip
    order = np.random.default_rng([0, 1]).permutation(len(subset.y_train)).astype(np.int32)
    rows = order[:(2 + K) * BATCH].reshape(2 + K, BATCH)
    variables = g.graph.get_collection("variables")  # weights, batch norm, Adam, the step
    ends = []
    for one_call in (False, True):
        with _session(tf, g, subset) as sess:
            for row in rows[:2]:  # start mid-run: the global step keys augmentation and lr
                sess.run(g.train_op, {g.index: row, g.training: True})
            if one_call:
                done, loss_sum, acc_sum, last, lr = sess.run(g.steps.outputs,
                                                             {g.steps.indices: rows[2:]})
                assert done == K
            else:
                loss_sum = acc_sum = 0.0
                for row in rows[2:]:
                    _, last, acc, lr = sess.run([g.train_op, g.loss, g.accuracy,
                                                 g.learning_rate], {g.index: row, g.training: True})
                    loss_sum += float(last) * BATCH
                    acc_sum += float(acc) * BATCH
            ends.append((loss_sum, acc_sum, last, lr, sess.run(variables)))
    (single, call) = ends
    np.testing.assert_allclose(call[0], single[0], rtol=1e-5)  # the K losses, summed
    assert call[1] == pytest.approx(single[1], abs=1.0)  # correct answers: one flip at most
    np.testing.assert_allclose(call[2], single[2], rtol=1e-5)  # the last step's loss
    assert call[3] == single[3]  # the last step's learning rate
    for v, a, b in zip(variables, single[4], call[4]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=v.op.name)


def test_a_model_with_dropout_runs_single_steps_and_says_why(the_zoo, subset):
    _, g = _graph(the_zoo, subset, "cnn-bn", blocks=1, filters=4, dense=8)  # dropout 0.3
    assert g.steps is None and "dropout" in g.steps_problem


def planned(the_zoo, model, **overrides):
    return plan(the_zoo, RunRequest([model], "fashion", limit=600, overrides=overrides)).runs[0]


def test_a_run_of_k_steps_per_call_records_what_single_steps_record(the_zoo, subset):
    common = {"epochs": 2, "batch_size": BATCH, "hidden": 16, "lr_schedule": "cosine",
              "augment_shift": 1, **ONE_PASS}
    records, epochs = [], []
    with open_store() as store:
        for k in (1, 4):
            record = execute.execute(the_zoo, planned(the_zoo, "rnn", steps_per_call=k, **common),
                                     store, subset)
            records.append(record)
            epochs.append(store.epochs(record.run_id))
    one, four = records
    assert one.config_id == four.config_id and one.config == four.config
    assert "steps_per_call" not in one.config
    for a, b in zip(*epochs):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
    assert four.test_accuracy == pytest.approx(one.test_accuracy, abs=2e-4)
    for record, k in zip(records, (1, 4)):
        folder = Path(record.run_dir)
        assert json.loads((folder / RunFiles.CONFIG).read_text())["speed"] == {
            "steps_per_call": k, "kernel": "basic"}  # and the rnn's speed-only kernel
        assert json.loads((folder / RunFiles.METRICS).read_text())["speed"] == {"steps_per_call": k}


def test_automatic_steps_per_call_is_measured_and_recorded(the_zoo, subset, tmp_path):
    r = the_zoo.resolve("rnn", "fashion", overrides={"epochs": 1, "batch_size": 16, "hidden": 16,
                                                     **ONE_PASS})
    assert r.trainer.steps_per_call == 0  # the default: automatic
    seen = []

    class Counting(loop.Progress):  # only step(): the default steps() calls it K times
        def step(self, loss, accuracy):
            seen.append(loss)

    result = loop.train(r.model, r.hparams, r.trainer, subset, 0, tmp_path, Counting())
    steps = -(-len(subset.y_train) // 16)
    assert len(seen) == steps  # the progress bar counts every step
    assert 1 <= result.steps_per_call <= min(loop.MAX_STEPS_PER_CALL, steps)
    assert result.steps_note == ""


def test_a_nan_loss_in_a_call_names_the_epoch_and_the_steps(subset, tmp_path):
    def build(images, *, num_classes, hparams, training):
        import tensorflow as tf
        logits = tf.compat.v1.layers.dense(tf.compat.v1.layers.flatten(images), num_classes)
        return logits * float("nan")
    module = types.ModuleType("bad_plugin")
    module.zoo_register_models = hookimpl(
        lambda register: register("bad", build, summary="a test model that diverges"))
    zoo = open_zoo(plugins=[module])
    r = zoo.resolve("bad", "fashion", overrides={"epochs": 1, "steps_per_call": 4})
    with pytest.raises(TrainingError, match=r"the loss became nan at epoch 1, step 1 \(steps 1-4 "
                                            r"ran in one call\): try a lower learning rate"):
        loop.train(r.model, r.hparams, r.trainer, subset, 0, tmp_path)


def test_steps_per_call_is_speed_only(the_zoo):
    one = the_zoo.resolve("cnn", "fashion", raw_overrides={"steps_per_call": "1"}).settings
    auto = the_zoo.resolve("cnn", "fashion").settings
    assert one.config == auto.config and one.config_id == auto.config_id
    assert (one.speed, auto.speed) == ({"steps_per_call": 1}, {"steps_per_call": 0})
    omitted = {k: p.default for k, p in TRAINER_HPARAMS.items() if p.omit_default}
    assert omitted and not set(omitted) & set(one.config)  # at their defaults: not in the config
    assert one.values == {**{k: v for k, v in one.config.items() if k != "bf16"}, **omitted,
                          "precision": "auto", "steps_per_call": 1}  # the cnn's default
    recorded = RunSettings.recorded({**one.config, **one.speed}, the_zoo.model("cnn").hparams)
    assert recorded.trainer.steps_per_call == 1


@pytest.mark.parametrize("model, default", [("lstm", "sequence"), ("rnn", "basic")])
def test_a_kernel_computing_the_same_function_is_speed_only(the_zoo, model, default):
    basic = the_zoo.resolve(model, "fashion", raw_overrides={"kernel": "basic"}).settings
    sequence = the_zoo.resolve(model, "fashion", raw_overrides={"kernel": "sequence"}).settings
    assert basic.config_id == sequence.config_id and "kernel" not in basic.config
    assert (basic.speed["kernel"], sequence.speed["kernel"]) == ("basic", "sequence")
    assert the_zoo.resolve(model, "fashion").settings.hparams["kernel"] == default
    recorded = RunSettings.recorded({**basic.config, **basic.speed}, the_zoo.model(model).hparams)
    assert recorded.hparams["kernel"] == "basic" and recorded.config_id == basic.config_id


def test_xla_was_removed_with_a_reason_and_old_runs_still_load(the_zoo):
    with pytest.raises(HParamError, match=r"^setting 'xla' was removed: it set XLA's global JIT "
                                          r"level, which does nothing on a CPU"):
        the_zoo.resolve("cnn", "fashion", raw_overrides={"xla": "true"})
    settings = the_zoo.resolve("cnn", "fashion", overrides={"precision": "float32"}).settings
    assert settings.config["xla"] is False  # as every run recorded it: the same config ids
    assert "xla" not in settings.trainer.to_dict()
    old = {**settings.config, "xla": True}  # a run recorded with it on (it did nothing)
    recorded = RunSettings.recorded(old, the_zoo.model("cnn").hparams)
    assert recorded.trainer == settings.trainer
    assert config_id(old) != settings.config_id  # it stays the run it was


def test_a_registry_that_still_sets_xla_says_it_was_removed(tmp_path):
    from zoo_core.errors import RegistryError

    text = (Path(__file__).resolve().parents[1] / "registry.toml").read_text()
    path = tmp_path / "registry.toml"
    path.write_text(text.replace("[models.cnn.hparams]\n", "[models.cnn.hparams]\nxla = true\n"))
    with pytest.raises(RegistryError, match=r"\[models.cnn.hparams\] sets 'xla', a setting that "
                                            r"was removed: .*; delete it there$"):
        open_zoo(path).resolve("cnn", "fashion")


@pytest.mark.parametrize("has_bf16", [True, False], ids=["cpu-with-bf16", "cpu-without"])
def test_the_config_records_the_precision_asked_the_same_on_every_cpu(the_zoo, monkeypatch,
                                                                       has_bf16):
    from zoo_core import settings as settings_module

    monkeypatch.setattr(settings_module, "cpu_has_bf16", lambda: has_bf16)
    auto = the_zoo.resolve("cnn", "fashion", raw_overrides={"precision": "auto"}).settings
    bf16 = the_zoo.resolve("cnn", "fashion", overrides={"precision": "bfloat16"}).settings
    fp32 = the_zoo.resolve("cnn", "fashion", overrides={"precision": "float32"}).settings
    assert auto.config["bf16"] is True and auto.config_id == bf16.config_id != fp32.config_id
    assert "precision" not in auto.config and fp32.config["bf16"] is False
    recorded = RunSettings.recorded(auto.config, the_zoo.model("cnn").hparams)
    assert recorded.trainer.precision == "bfloat16" and recorded.config_id == auto.config_id
    # what computes here is the trainer's, never the config's (docs/architecture.md)
    assert auto.trainer.effective_precision == ("bfloat16" if has_bf16 else "float32")
    monkeypatch.setattr(settings_module, "cpu_has_bf16", lambda: not has_bf16)
    elsewhere = the_zoo.resolve("cnn", "fashion", raw_overrides={"precision": "auto"}).settings
    assert elsewhere.config_id == auto.config_id  # the other CPU: a sweep's workers agree
    with pytest.raises(HParamError, match="setting 'bf16' is now precision"):
        the_zoo.resolve("cnn", "fashion", raw_overrides={"bf16": "true"})


def test_a_setting_added_later_keeps_the_config_ids_of_runs_made_before_it(the_zoo):
    """``omit_default``: at its default the config leaves the setting out (so the rows and
    runs recorded before it existed keep their config ids); set to anything else, it is named."""
    from zoo_core.results.leaderboard import _config_labels
    from zoo_core.settings import HParam, TrainerSettings, recorded_setting

    declared = {"width": HParam(64), "rows": HParam(1, omit_default=True)}
    before = RunSettings(TrainerSettings(), {"width": 64}, None, {}, (), {})
    same = RunSettings(TrainerSettings(), {"width": 64, "rows": 1}, None, {}, (), {"rows": 1})
    other = RunSettings(TrainerSettings(), {"width": 64, "rows": 2}, None, {}, (), {"rows": 1})
    assert same.config == before.config and same.config_id == before.config_id
    assert other.config["rows"] == 2 and other.config_id != before.config_id
    # every setting by its name still names it, at its default (`zoo list MODEL --details`)
    assert same.values["rows"] == 1 and other.values["rows"] == 2
    recorded = RunSettings.recorded(before.config, declared)
    assert recorded.hparams == {"width": 64, "rows": 1}
    assert recorded.config_id == before.config_id
    assert RunSettings.recorded(other.config, declared).config_id == other.config_id
    # a trainer setting the config does not name is at its default; a model's says so
    assert recorded_setting(before.config, "lr") == before.config["lr"]
    assert recorded_setting({}, "label_smoothing") == 0.0
    assert recorded_setting(before.config, "rows") is None
    rows = [{"model": "m", "dataset": "d", "config": c.config, "config_id": c.config_id}
            for c in (before, other)]
    assert _config_labels(rows) == ["rows=default", "rows=2"]


def test_in_bfloat16_k_steps_per_call_move_no_digit(the_zoo, subset):
    """A resumed process chooses an automatic K anew from its first steps' time, so the same
    digits after a resume need K to move none: the cnn (batch norm) in bfloat16, where the
    CPU has it (float32 elsewhere), one step per call or four, every metric equal."""
    common = {"epochs": 2, "batch_size": BATCH, "dropout": 0.0, "precision": "bfloat16"}
    with open_store() as store:
        runs = [execute.execute(the_zoo, planned(the_zoo, "cnn", steps_per_call=k, **common), store,
                                subset) for k in (1, 4)]
        epochs = [[{k: v for k, v in e.items() if k != "seconds"} for e in store.epochs(r.run_id)]
                  for r in runs]
    assert epochs[0] == epochs[1]
    assert (runs[0].test_loss, runs[0].test_accuracy) == (runs[1].test_loss, runs[1].test_accuracy)
