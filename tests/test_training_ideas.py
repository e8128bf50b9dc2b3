"""Trainer settings from fast-training records (issue 13): Nesterov momentum, warmup and a
linear schedule, an exponential moving average of the weights, and cutout; and stochastic
weight averaging (issue 26). At their defaults every config (and config id) is what it was
before they existed."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from zoo_core import data, hookimpl
from zoo_core.catalogue import open_zoo
from zoo_core.errors import HParamError, RunInterrupted
from zoo_core.runs import execute
from zoo_core.runs.plan import RunRequest, plan
from zoo_core.store import open_store
from zoo_core.settings import TRAINER_HPARAMS, TrainerSettings
from zoo_core.train import checkpoints
from zoo_core.train.evaluate import evaluate_checkpoint
from zoo_core.train.graph import build_graph
from zoo_core.train.step import learning_rate
from zoo_core.train.loop import train

NEW = ("optimizer", "momentum", "warmup", "ema", "augment_erase", "swa")
BATCH, K = 32, 4
# a small cnn without dropout (the steps' loop needs none), quick to train
SMALL_CNN = {"filters": 4, "dense": 16, "dropout": 0.0, "batch_size": BATCH}


@pytest.fixture(scope="module")
def subset(the_zoo):  # tests/test_steps.py's
    return data.load(the_zoo.dataset("fashion"), limit=600)


def _tf():
    from zoo_core._tf import tf

    return tf()


# -- settings ---------------------------------------------------------------------------------

def test_at_their_defaults_the_new_settings_leave_every_config_as_it_was(the_zoo):
    assert all(TRAINER_HPARAMS[k].omit_default for k in NEW)
    for name, entry in the_zoo.catalogue.models.items():
        if name not in the_zoo.models:
            continue
        for dataset in entry.datasets:
            settings = the_zoo.resolve(name, dataset).settings
            assert not set(NEW) & set(settings.config), (name, dataset)
            off = the_zoo.resolve(name, dataset, raw_overrides={
                "ema": "0", "warmup": "0.0", "augment_erase": "0", "optimizer": "adam",
                "swa": "0"}).settings
            assert off.config == settings.config and off.config_id == settings.config_id
    default = the_zoo.resolve("cnn", "fashion").settings
    for key, text in (("ema", "0.999"), ("swa", "5"), ("warmup", "0.25"), ("augment_erase", "8"),
                      ("optimizer", "nesterov"), ("lr_schedule", "linear")):
        on = the_zoo.resolve("cnn", "fashion", raw_overrides={key: text}).settings
        assert on.config_id != default.config_id and key in on.config, key


@pytest.mark.parametrize("key, text, message", [
    ("ema", "1.5", "ema must be float, >= 0, <= 0.9999, got 1.5"),
    ("warmup", "0.95", "warmup must be float, >= 0, <= 0.9, got 0.95"),
    ("augment_erase", "29", "augment_erase must be int, >= 0, <= 28, got 29"),
    ("optimizer", "sgd", "optimizer must be str, one of adam|nesterov, got 'sgd'"),
    ("lr_schedule", "onecycle", "lr_schedule must be str, one of constant|cosine|step|linear"),
    ("momentum", "0.5", "momentum 0.5 (command line) is used only by optimizer nesterov, and "
                        "optimizer is adam (trainer default): add --set optimizer=nesterov or "
                        "leave momentum at 0.9"),
])
def test_a_bad_value_is_a_one_line_error(zoo, key, text, message):
    r = zoo("run", "cnn", "--set", f"{key}={text}")
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], r.output
    assert "Traceback" not in r.output


def test_swa_and_ema_are_one_or_the_other(zoo, the_zoo):
    r = zoo("run", "cnn", "--set", "swa=5", "--set", "ema=0.99")
    assert r.exit_code == 2, r.output
    assert ("Error: swa 5 (command line) and ema 0.99 (command line) both average the "
            "weights: keep one, --set swa=0 or --set ema=0") in r.output
    assert the_zoo.resolve("cnn", "fashion", raw_overrides={"swa": "5"}).settings.trainer.swa == 5


def test_momentum_goes_with_nesterov(the_zoo):
    r = the_zoo.resolve("cnn", "fashion",
                        raw_overrides={"optimizer": "nesterov", "momentum": "0.5"})
    assert (r.settings.config["optimizer"], r.settings.config["momentum"]) == ("nesterov", 0.5)
    with pytest.raises(HParamError, match=r"^momentum 0.5 \(command line\) .* add "
                                          r"optimizer=nesterov or leave momentum at 0.9$"):
        the_zoo.resolve("cnn", "fashion", raw_overrides={"momentum": "0.5"})


def test_zoo_list_details_shows_the_new_settings(zoo):
    r = zoo("list", "cnn", "--details")
    assert r.exit_code == 0, r.output
    # the settings table (the search space's table further down names some of them too)
    lines = r.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["setting", "value", "from"])
    table = lines[start + 2:]
    table = table[:next((i for i, line in enumerate(table) if not line.strip()), len(table))]
    rows = {line.split()[0]: line.split()[1] for line in table}
    assert {k: rows.get(k) for k in NEW} == {"optimizer": "adam", "momentum": "0.9",
                                             "warmup": "0.0", "ema": "0.0",
                                             "augment_erase": "0", "swa": "0"}


# -- the learning rate ------------------------------------------------------------------------

def _rates(schedule: str, warmup: float, at: list[int], total: int = 100) -> np.ndarray:
    """The learning rate the graph computes (``train/`` in build_graph) at global steps."""
    tf = _tf()
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        step = v1.placeholder(tf.int64, [])  # the global step's dtype
        lr = learning_rate(tf, TrainerSettings(lr=0.1, lr_schedule=schedule, warmup=warmup),
                            step, total)
        with v1.Session() as sess:
            return np.array([sess.run(lr, {step: s}) for s in at])


def test_warmup_then_linear_is_a_one_cycle():
    got = _rates("linear", 0.2, [0, 5, 10, 20, 60, 99, 100])  # warm for 20 of 100 steps
    np.testing.assert_allclose(got, [0, 0.025, 0.05, 0.1, 0.05, 0.1 / 80, 0], rtol=1e-6, atol=1e-8)


def test_warmup_then_cosine():
    got = _rates("cosine", 0.25, [0, 10, 25, 50, 100])
    expect = [0, 0.04, 0.1, 0.05 * (1 + math.cos(math.pi / 3)), 0]
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step", "linear"])
def test_without_warmup_the_schedules_run_over_every_step_as_before(schedule):
    at = [0, 1, 30, 49, 50, 74, 75, 99, 100]
    p = np.array(at, np.float32) / np.float32(100)
    expect = {"constant": np.full(len(at), 0.1),
              "cosine": 0.1 * 0.5 * (1 + np.cos(np.pi * np.minimum(p, 1))),
              "step": 0.1 * 0.1 ** ((p >= 0.5).astype(int) + (p >= 0.75)),
              "linear": 0.1 * np.maximum(1 - p, 0)}[schedule]
    np.testing.assert_allclose(_rates(schedule, 0.0, at), expect, rtol=1e-6, atol=1e-8)


# -- Nesterov momentum ------------------------------------------------------------------------

def _linear_plugin():
    def build(images, *, num_classes, hparams, training):
        import tensorflow as tf

        flat = tf.compat.v1.layers.flatten(images)
        return tf.compat.v1.layers.dense(flat, num_classes, name="linear")

    plugin = types.ModuleType("linear_plugin")
    plugin.zoo_register_models = hookimpl(
        lambda register: register("linear", build, summary="softmax regression"))
    return plugin


def test_a_nesterov_step_is_nesterov_momentum(subset):
    """Three steps of the graph's optimizer from the same weights, against numpy:
    accumulation = momentum * accumulation + gradient; weights -= lr * (gradient +
    momentum * accumulation), the gradient of softmax regression worked out by hand."""
    tf = _tf()
    zoo = open_zoo(plugins=[_linear_plugin()])
    r = zoo.resolve("linear", "fashion", overrides={
        "optimizer": "nesterov", "momentum": 0.8, "lr": 0.5, "batch_size": BATCH})
    n = len(subset.y_train)
    g = build_graph(r.model, r.hparams, r.trainer, (28, 28, 1), 10, 0, n, n // BATCH,
                    train_dtype=subset.x_train.dtype)
    kernel, bias = g.graph.get_collection("trainable_variables")
    with tf.compat.v1.Session(graph=g.graph) as sess:
        sess.run(g.init)
        g.hold(sess, subset.x_train, subset.y_train)
        w, b = (x.astype(np.float64) for x in sess.run([kernel, bias]))
        acc_w, acc_b = np.zeros_like(w), np.zeros_like(b)
        for s in range(3):
            rows = np.arange(s * BATCH, (s + 1) * BATCH, dtype=np.int32)
            sess.run(g.train_op, {g.index: rows, g.training: True})
            x = data.to_float(subset.x_train[rows]).reshape(BATCH, -1).astype(np.float64)
            logits = x @ w + b
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(BATCH), subset.y_train[rows]] -= 1
            grad_w, grad_b = x.T @ p / BATCH, p.mean(0)
            acc_w, acc_b = 0.8 * acc_w + grad_w, 0.8 * acc_b + grad_b
            w, b = w - 0.5 * (grad_w + 0.8 * acc_w), b - 0.5 * (grad_b + 0.8 * acc_b)
            got_w, got_b = sess.run([kernel, bias])
            np.testing.assert_allclose(got_w, w, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(got_b, b, rtol=1e-4, atol=1e-6)
    assert np.abs(w).max() > 0.01  # the steps moved the weights


# -- the moving average -----------------------------------------------------------------------

def _average(shadow, weights, decay, t):
    """tf.train.ExponentialMovingAverage(decay, num_updates=t) after step t, in float32."""
    d = np.minimum(np.float32(decay), np.float32((1.0 + t) / (10.0 + t)))
    return shadow - (shadow - weights) * (np.float32(1) - d)


def test_the_average_is_updated_after_every_step_in_single_steps_and_in_a_call(the_zoo, subset):
    """K steps in one call give the weights, Nesterov's accumulations and the averages of
    K single steps; the averages are those of the weights after each step (numpy)."""
    tf = _tf()
    r = the_zoo.resolve("cnn-bn", "fashion", overrides={
        **SMALL_CNN, "blocks": 1, "optimizer": "nesterov", "lr": 0.05, "ema": 0.9,
        "warmup": 0.2, "lr_schedule": "linear", "augment_erase": 6})
    n = len(subset.y_train)
    g = build_graph(r.model, r.hparams, r.trainer, (28, 28, 1), 10, 0, n, n // BATCH,
                    step_loop=True, train_dtype=subset.x_train.dtype)
    assert g.steps is not None, g.steps_problem
    variables = g.graph.get_collection("variables")
    names = [v.op.name for v in variables]
    trainable = g.graph.get_collection("trainable_variables")
    shadows = [variables[names.index("ema/" + v.op.name)] for v in trainable]
    assert any("moving_mean" in n for n in names)  # batch norm's: not averaged
    assert not any(n.startswith("ema/") and "moving" in n for n in names)
    rows = np.random.default_rng(0).permutation(n)[:(2 + K) * BATCH].astype(np.int32)
    rows = rows.reshape(2 + K, BATCH)
    ends = []
    for one_call in (False, True):
        with tf.compat.v1.Session(graph=g.graph) as sess:
            sess.run(g.init)
            g.hold(sess, subset.x_train, subset.y_train)
            expect = sess.run(shadows)
            assert all(np.array_equal(a, b) for a, b in zip(expect, sess.run(trainable)))
            for t, row in enumerate(rows[:2], 1):
                sess.run(g.train_op, {g.index: row, g.training: True})
                expect = [_average(s, w, 0.9, t) for s, w in zip(expect, sess.run(trainable))]
            if one_call:
                assert sess.run(g.steps.outputs, {g.steps.indices: rows[2:]})[0] == K
            else:
                for t, row in enumerate(rows[2:], 3):
                    sess.run(g.train_op, {g.index: row, g.training: True})
                    expect = [_average(s, w, 0.9, t) for s, w in zip(expect, sess.run(trainable))]
                for v, got, want in zip(trainable, sess.run(shadows), expect):
                    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=v.op.name)
            ends.append(sess.run(variables))
    for name, a, b in zip(names, *ends):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
    weights, averages = ends[0][names.index(trainable[0].op.name)], ends[0][names.index(
        shadows[0].op.name)]
    assert not np.allclose(weights, averages)  # the average lags the weights


def test_validation_the_best_checkpoint_and_the_test_use_the_averages(the_zoo, subset, tmp_path):
    tf = _tf()
    r = the_zoo.resolve("cnn-bn", "fashion", overrides={
        **SMALL_CNN, "blocks": 1, "epochs": 1, "ema": 0.9, "lr": 0.01})
    result = train(r.model, r.hparams, r.trainer, subset, 0, tmp_path)
    last = tf.train.load_checkpoint(str(tmp_path / "ckpt/last-1"))  # to resume: both
    best = tf.train.load_checkpoint(str(tmp_path / "ckpt/best-1"))  # to use: the averages
    kernels = [n for n in last.get_variable_to_shape_map() if n.startswith("model/")
               and n.endswith(("kernel", "gamma", "beta", "bias"))]
    assert kernels
    for name in kernels:
        assert np.array_equal(best.get_tensor(name), last.get_tensor("ema/" + name)), name
        assert not np.array_equal(last.get_tensor(name), last.get_tensor("ema/" + name)), name
    for name in (n for n in last.get_variable_to_shape_map() if "moving_" in n):
        assert np.array_equal(best.get_tensor(name), last.get_tensor(name))  # not averaged
    assert not any(n.startswith("ema/") for n in best.get_variable_to_shape_map())
    # zoo evaluate (the model's own variables of the best checkpoint) sees what the run saw
    val = evaluate_checkpoint(r.model, r.hparams, r.trainer, tmp_path, subset.x_val,
                              subset.y_val, 10)
    test = evaluate_checkpoint(r.model, r.hparams, r.trainer, tmp_path, subset.x_test,
                               subset.y_test, 10)
    assert val.accuracy == result.val_accuracy and val.loss == pytest.approx(
        result.epochs[0]["val_loss"], rel=1e-6)
    assert (test.accuracy, test.loss) == (result.test.accuracy, result.test.loss)
    # a pack's weights: the averages, without the optimizer's slots or the ema/ variables
    names = checkpoints.write_weights_only(tmp_path / "ckpt/best-1", tmp_path / "weights")
    packed = tf.train.load_checkpoint(str(tmp_path / "weights"))
    assert sorted(packed.get_variable_to_shape_map()) == names
    assert all(n.startswith("model/") and "Adam" not in n for n in names)
    assert all(np.array_equal(packed.get_tensor(n), best.get_tensor(n)) for n in names)


def test_swa_is_the_mean_of_the_last_epochs_weights_and_a_resumed_run_keeps_it(
        the_zoo, subset, stop_at, tmp_path):
    """``swa=2`` of 3 epochs: the averages are the raw weights until the window, then the
    mean of epochs 2 and 3's (numpy); training itself is untouched (the raw weights are a
    run's without swa); the best checkpoint holds the averages; a run stopped before epoch 3
    and resumed ends exactly where the straight one ends."""
    tf = _tf()
    overrides = {**SMALL_CNN, "blocks": 1, "epochs": 3, "lr": 0.01}
    r = the_zoo.resolve("cnn-bn", "fashion", overrides={**overrides, "swa": 2})
    plain = the_zoo.resolve("cnn-bn", "fashion", overrides=overrides)
    straight = train(r.model, r.hparams, r.trainer, subset, 0, tmp_path / "straight")
    train(plain.model, plain.hparams, plain.trainer, subset, 0, tmp_path / "plain")
    with pytest.raises(KeyboardInterrupt):
        train(r.model, r.hparams, r.trainer, subset, 0, tmp_path / "stopped", stop_at(3))
    at2 = tf.train.load_checkpoint(str(tmp_path / "stopped/ckpt/last-2"))
    at3 = tf.train.load_checkpoint(str(tmp_path / "straight/ckpt/last-3"))
    raw3 = tf.train.load_checkpoint(str(tmp_path / "plain/ckpt/last-3"))
    trainable = [n for n in at3.get_variable_to_shape_map() if n.startswith("model/")
                 and n.endswith(("kernel", "gamma", "beta", "bias"))]
    assert trainable
    for name in trainable:
        w2, w3 = at2.get_tensor(name), at3.get_tensor(name)
        assert np.array_equal(at2.get_tensor("ema/" + name), w2), name  # the window's first
        np.testing.assert_allclose(at3.get_tensor("ema/" + name), (w2 + w3) / 2, rtol=1e-6,
                                   atol=1e-7, err_msg=name)
        assert np.array_equal(w3, raw3.get_tensor(name)), name  # training is swa's without
    best = tf.train.load_checkpoint(str(tmp_path / f"straight/ckpt/best-{straight.best_epoch}"))
    source = {2: at2, 3: at3}.get(straight.best_epoch)
    if source is not None:
        for name in trainable:
            assert np.array_equal(best.get_tensor(name), source.get_tensor("ema/" + name)), name
    assert not any(n.startswith("ema/") for n in best.get_variable_to_shape_map())
    resumed = train(r.model, r.hparams, r.trainer, subset, 0, tmp_path / "stopped", resume=True)
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")
    assert [[e[k] for k in keys] for e in resumed.epochs] == [[e[k] for k in keys]
                                                             for e in straight.epochs]
    assert (resumed.val_accuracy, resumed.test.accuracy, resumed.test.loss) == (
        straight.val_accuracy, straight.test.accuracy, straight.test.loss)


def test_a_resumed_run_with_every_new_setting_ends_where_an_uninterrupted_one_ends(
        the_zoo, subset, stop_at):
    overrides = {**SMALL_CNN, "epochs": 3, "optimizer": "nesterov", "lr": 0.05, "warmup": 0.2,
                 "lr_schedule": "linear", "ema": 0.9, "augment_erase": 8, "steps_per_call": 4}
    run = plan(the_zoo, RunRequest(["cnn"], "fashion", limit=600, overrides=overrides)).runs[0]
    with open_store() as store:
        straight = execute.execute(the_zoo, run, store, subset)
        with pytest.raises(RunInterrupted) as stopped:
            execute.execute(the_zoo, run, store, subset, stop_at(3))
        assert stopped.value.epochs == 2
        resumed = execute.resume(the_zoo, stopped.value.run_id, store)
        epochs = [store.epochs(r.run_id) for r in (straight, resumed)]
    assert resumed.status == "completed" and resumed.config_id == straight.config_id
    for a, b in zip(*epochs):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            assert b[key] == a[key], key
    assert (resumed.val_accuracy, resumed.test_accuracy) == (straight.val_accuracy,
                                                             straight.test_accuracy)


# -- cutout -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [8, 28])
def test_cutout_zeroes_one_square_of_each_training_image_only(size):
    tf = _tf()
    zoo = open_zoo(plugins=[_linear_plugin()])
    r = zoo.resolve("linear", "fashion", overrides={"augment_erase": size})
    ones = np.ones((64, 28, 28, 1), np.float32)
    g = build_graph(r.model, r.hparams, r.trainer, (28, 28, 1), 10, 0, 64)
    with tf.compat.v1.Session(graph=g.graph) as sess:
        sess.run(g.init)
        g.hold(sess, ones, np.zeros(64, np.int32))
        batch = sess.run(g.images, {g.index: np.arange(64, dtype=np.int32), g.training: True})
        again = sess.run(g.images, {g.index: np.arange(64, dtype=np.int32)})
        evaluated = sess.run(g.images, {g.images: ones})  # evaluation feeds its images
    assert np.array_equal(batch, again)  # keyed by (seed, step): the same step, the same squares
    corners = set()
    for image in batch[..., 0]:
        ys, xs = np.nonzero(image == 0)
        assert len(ys) == size * size  # one whole square, inside the image
        assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (size, size)
        assert set(np.unique(image)) <= {0.0, 1.0}
        corners.add((ys.min(), xs.min()))
    assert len(corners) > (1 if size < 28 else 0) * 20  # anywhere it fits
    assert np.array_equal(evaluated, ones)


# -- all of them, learning --------------------------------------------------------------------

def test_a_run_with_every_new_setting_learns_on_real_data(the_zoo, tmp_path):
    subset = data.load(the_zoo.dataset("fashion"), limit=3000)  # tests/test_trainer.py's
    # the registry's cnn (batch normalization, dropout), 48 steps, as tests/test_trainer.py's
    r = the_zoo.resolve("cnn", "fashion", overrides={"epochs": 2}, raw_overrides={
        "optimizer": "nesterov", "lr": "0.05", "lr_schedule": "linear", "warmup": "0.2",
        "ema": "0.99", "augment_erase": "8"})
    result = train(r.model, r.hparams, r.trainer, subset, 0, tmp_path)
    assert result.test.examples == 10_000
    assert result.test.accuracy > 0.55, f"{result.test.accuracy:.3f} (chance is 0.10)"
    assert result.epochs[-1]["train_loss"] < result.epochs[0]["train_loss"]
    steps = -(-len(subset.y_train) // 128)
    warm = 0.2 * 2 * steps  # the recorded lr is each epoch's last step's: after the warmup
    for e in result.epochs:
        at = e["epoch"] * steps - 1
        assert e["lr"] == pytest.approx(0.05 * (1 - (at - warm) / (2 * steps - warm)), rel=1e-5)
