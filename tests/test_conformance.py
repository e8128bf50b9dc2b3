"""The conformance kit (zoo_core.testing): a correct builder passes every check, and a
builder broken in one way is caught by the check for it, with a message that says what
was expected and what happened. Also `zoo check` through click's CliRunner."""

from __future__ import annotations

import itertools
import json
import secrets

import pytest

from zoo_core import HParam, testing
from zoo_core.errors import UsageError

HPARAMS = {
    "hidden": HParam(32, help="hidden units", min=1, max=512),
    "dropout": HParam(0.0, help="dropout rate, training only", min=0.0, max=0.9),
}


def mlp(images, *, num_classes, hparams, training):
    import tensorflow as tf

    layers = tf.compat.v1.layers
    x = layers.dense(layers.flatten(images), hparams["hidden"], activation=tf.nn.relu, name="hidden")
    x = layers.dropout(x, rate=hparams["dropout"], training=training)
    return layers.dense(x, num_classes, name="logits")


def run_check(name, build, hparams=HPARAMS, **kwargs):
    (check,) = [c for c in testing.checks(build, hparams=hparams, **kwargs) if c.name == name]
    try:
        return check.run()
    finally:
        check.subject.close()


def test_a_correct_builder_passes_every_check():
    results = testing.run_checks(mlp, hparams=HPARAMS, name="mlp")
    assert [r.check for r in results] == list(testing.CHECKS)
    # no batch norm: nothing of its evaluation differs from training after a short run
    expected = {**dict.fromkeys(testing.CHECKS, "passed"), "short_run_evaluation": "skipped"}
    assert {r.check: r.status for r in results} == expected, \
        "\n".join(r.describe() for r in results)
    assert all(r.model == "mlp" and r.message for r in results)


# ---------------------------------------------------------------- broken builders


def sets_its_own_seed(images, **kw):
    import tensorflow as tf

    tf.compat.v1.set_random_seed(42)
    return mlp(images, **kw)


_counter = itertools.count()


def names_layers_by_a_global_counter(images, *, num_classes, hparams, training):
    import tensorflow as tf

    layers = tf.compat.v1.layers
    x = layers.dense(layers.flatten(images), 16, name=f"hidden{next(_counter)}")
    return layers.dense(x, num_classes, name="logits")


def changes_hparams(images, *, hparams, **kw):
    hparams["hidden"] = 8
    return mlp(images, hparams=hparams, **kw)


_outer_graph = []


def adds_to_the_global_graph(images, **kw):
    import tensorflow as tf

    with _outer_graph[0].as_default():
        tf.constant(1.0, name="leaked")
    return mlp(images, **kw)


def hard_codes_ten_classes(images, *, num_classes, hparams, training):
    return mlp(images, num_classes=10, hparams=hparams, training=training)


def hard_codes_28x28(images, *, num_classes, hparams, training):
    import tensorflow as tf

    x = tf.reshape(images, [-1, 784])
    return tf.compat.v1.layers.dense(x, num_classes, name="logits")


def returns_float64(images, **kw):
    import tensorflow as tf

    return tf.cast(mlp(images, **kw), tf.float64)


def returns_a_tuple(images, **kw):
    return mlp(images, **kw), None


def hard_codes_the_batch(images, *, num_classes, hparams, training):
    import tensorflow as tf

    h, w, c = images.shape.as_list()[1:]
    x = tf.reshape(images, [17, h * w * c])
    return tf.compat.v1.layers.dense(x, num_classes, name="logits")


def reads_an_undeclared_key(images, *, hparams, **kw):
    return mlp(images, hparams={**hparams, "hidden": hparams["depth"]}, **kw)


def centres_on_the_batch_mean(images, **kw):
    import tensorflow as tf

    return mlp(images - tf.reduce_mean(images, axis=0, keepdims=True), **kw)


def one_dropout_always_on(images, *, num_classes, hparams, training):
    import tensorflow as tf

    layers = tf.compat.v1.layers
    x = layers.dense(layers.flatten(images), 32, activation=tf.nn.relu, name="hidden")
    x = layers.dropout(x, rate=hparams["dropout"], training=training)
    x = tf.nn.dropout(x, rate=hparams["dropout"])  # forgot: always on
    return layers.dense(x, num_classes, name="logits")


def dropout_never_on(images, *, num_classes, hparams, training):
    import tensorflow as tf

    layers = tf.compat.v1.layers
    x = layers.dense(layers.flatten(images), hparams["hidden"], activation=tf.nn.relu, name="hidden")
    x = layers.dropout(x, rate=hparams["dropout"], training=False)
    return layers.dense(x, num_classes, name="logits")


def batch_norm_without_updates(images, *, num_classes, hparams, training):
    """Hand-rolled batch norm that never updates its moving statistics."""
    import tensorflow as tf

    v1 = tf.compat.v1
    x = v1.layers.dense(v1.layers.flatten(images), 32, name="hidden")
    with v1.variable_scope("bn"):
        moving_mean = v1.get_variable("moving_mean", [32], initializer=v1.zeros_initializer(),
                                      trainable=False)
        moving_var = v1.get_variable("moving_variance", [32], initializer=v1.ones_initializer(),
                                     trainable=False)
    mean, var = tf.nn.moments(x, [0])
    mean, var = tf.cond(training, lambda: (mean, var), lambda: (tf.identity(moving_mean),
                                                                tf.identity(moving_var)))
    x = tf.nn.relu(tf.nn.batch_normalization(x, mean, var, None, None, 1e-3))
    return v1.layers.dense(x, num_classes, name="logits")


def batch_norm_updated_inline(images, *, num_classes, hparams, training):
    """Hand-rolled batch norm whose moving averages (momentum 0.99) are updated by control
    dependencies of its output, not through UPDATE_OPS: nothing re-estimates them, so after
    a short run they still hold mostly their initial values."""
    import tensorflow as tf

    v1 = tf.compat.v1

    def normalize(x, name, axes):
        size = x.shape[-1]
        with v1.variable_scope(name):
            moving_mean = v1.get_variable("moving_mean", [size], trainable=False,
                                          initializer=v1.zeros_initializer())
            moving_var = v1.get_variable("moving_variance", [size], trainable=False,
                                         initializer=v1.ones_initializer())
        mean, var = tf.nn.moments(x, axes)
        updates = [v1.assign(v, tf.where(training, 0.99 * v + 0.01 * s, v))
                   for v, s in ((moving_mean, mean), (moving_var, var))]
        with tf.control_dependencies(updates):
            x = tf.identity(x)
        mean, var = tf.cond(training, lambda: (mean, var),
                            lambda: (tf.identity(moving_mean), tf.identity(moving_var)))
        return tf.nn.relu(tf.nn.batch_normalization(x, mean, var, None, None, 1e-3))

    x = normalize(v1.layers.conv2d(images, 16, 3, name="conv1"), "bn1", [0, 1, 2])
    x = normalize(v1.layers.conv2d(x, 32, 3, name="conv2"), "bn2", [0, 1, 2])
    x = v1.layers.flatten(v1.layers.max_pooling2d(x, 2, 2))
    x = normalize(v1.layers.dense(x, 64, name="hidden"), "bn3", [0])
    return v1.layers.dense(x, num_classes, name="logits")


def batch_norm_done_right(images, *, num_classes, hparams, training):
    import tensorflow as tf

    v1 = tf.compat.v1
    x = v1.layers.dense(v1.layers.flatten(images), 32, name="hidden")
    x = tf.nn.relu(v1.layers.batch_normalization(x, training=training))
    return v1.layers.dense(x, num_classes, name="logits")


def seeds_from_the_os(images, *, num_classes, hparams, training):
    import tensorflow as tf

    init = tf.compat.v1.glorot_uniform_initializer(seed=secrets.randbits(31))
    x = tf.compat.v1.layers.flatten(images)
    return tf.compat.v1.layers.dense(x, num_classes, kernel_initializer=init, name="logits")


def constant_weights(images, *, num_classes, hparams, training):
    import tensorflow as tf

    init = tf.compat.v1.constant_initializer(0.01)
    x = tf.compat.v1.layers.flatten(images)
    return tf.compat.v1.layers.dense(x, num_classes, kernel_initializer=init, name="logits")


def dropout_seeded_from_the_os(images, *, num_classes, hparams, training):
    import tensorflow as tf

    layers = tf.compat.v1.layers
    x = layers.dense(layers.flatten(images), 32, activation=tf.nn.relu, name="hidden")
    x = layers.dropout(x, rate=hparams["dropout"], training=training, seed=secrets.randbits(31))
    return layers.dense(x, num_classes, name="logits")


def an_unused_variable(images, **kw):
    import tensorflow as tf

    tf.compat.v1.get_variable("unused", [3, 3])
    return mlp(images, **kw)


def a_layer_multiplied_by_zero(images, *, num_classes, hparams, training):
    import tensorflow as tf

    layers = tf.compat.v1.layers
    x = layers.dense(layers.flatten(images), 16, name="hidden") * 0.0
    return layers.dense(x, num_classes, name="logits")


def frozen_features(images, *, num_classes, hparams, training):
    import tensorflow as tf

    x = tf.compat.v1.layers.dense(tf.compat.v1.layers.flatten(images), num_classes,
                                  trainable=False, name="frozen")
    bias = tf.compat.v1.get_variable("bias", [num_classes], initializer=tf.compat.v1.zeros_initializer())
    return x + bias


def ignores_a_declared_hparam(images, *, hparams, **kw):
    return mlp(images, hparams=hparams, **kw)


def reads_a_default_it_does_not_declare(images, *, hparams, **kw):
    hidden = hparams.get("width", 24)
    return mlp(images, hparams={"hidden": hidden, "dropout": hparams["dropout"]}, **kw)


def supports_one_layer_only(images, *, hparams, **kw):
    if hparams["layers"] != 1:
        raise NotImplementedError("only one layer so far")
    return mlp(images, hparams=hparams, **kw)


NO_DROPOUT = {"hidden": HParam(32, min=1, max=512)}
DROPOUT_ON = {**HPARAMS, "dropout": HParam(0.5, min=0.0, max=0.9)}

BROKEN = [
    # check, builder, declared hyperparameters, what the message must say
    ("fresh_graph", sets_its_own_seed, HPARAMS,
     "expected the graph seed to stay 0, got 42; do not call tf.compat.v1.set_random_seed"),
    ("fresh_graph", names_layers_by_a_global_counter, HPARAMS,
     "expected the same variables when built twice with the same settings, got "
     "model/hidden"),
    ("fresh_graph", changes_hparams, HPARAMS,
     "expected hparams to be left as handed over, got build() changed 'hidden'"),
    ("fresh_graph", adds_to_the_global_graph, HPARAMS,
     "expected nothing added to the default graph outside the one the core hands over, "
     "got 2 op(s) added to it, e.g. ['leaked', 'leaked_1']"),
    ("logits_shape", hard_codes_ten_classes, HPARAMS,
     "expected logits of shape [batch, 7] for 20x12x1 images and num_classes=7, got shape [None, 10]"),
    ("logits_shape", hard_codes_28x28, HPARAMS,
     "expected the graph for 1 20x12x1 image(s) with training off to run, got InvalidArgumentError "
     "in op 'model/Reshape' (created at tests/test_conformance.py:"),
    ("logits_shape", returns_float64, HPARAMS, "expected float32 logits, got float64"),
    ("logits_shape", returns_a_tuple, HPARAMS,
     "expected build() to return a logits tf.Tensor, got tuple"),
    ("logits_shape", hard_codes_the_batch, HPARAMS,
     "expected a free batch dimension (static shape [None, 10]) for images of shape "
     "[None, 28, 28, 1], got [17, 10]"),
    ("logits_shape", reads_an_undeclared_key, HPARAMS,
     "got KeyError: 'depth' (at tests/test_conformance.py:"),
    ("batch_independence", centres_on_the_batch_mean, HPARAMS,
     "expected image 0's logits to be the same alone as in a batch of 17 (training off)"),
    ("training_flag", one_dropout_always_on, HPARAMS,
     "expected identical logits from two passes with training off"),
    ("training_flag", dropout_never_on, HPARAMS,
     "expected the logits to depend on the `training` tensor (dropout=0.5), "
     "got logits computed without it"),
    ("training_flag", batch_norm_without_updates, {},
     "expected batch norm's moving statistics to change in a training step, got no change"),
    ("seed_determinism", seeds_from_the_os, {},
     "expected identical initial weights for seed 0 in two fresh graphs, got model/logits/kernel"),
    ("seed_determinism", constant_weights, {},
     "expected other initial weights for seed 1 than for seed 0, got identical weights"),
    ("seed_determinism", dropout_seeded_from_the_os, DROPOUT_ON,
     "expected identical logits with training on from two fresh graphs with seed 0, got a max "
     "difference of"),
    ("all_variables_train", an_unused_variable, HPARAMS,
     "expected every trainable variable to receive a gradient from the loss, got none for "
     "model/unused"),
    ("all_variables_train", a_layer_multiplied_by_zero, {},
     "expected every trainable variable to change over 3 Adam steps, got no change in "
     "model/hidden/kernel"),
    ("overfit_one_batch", frozen_features, {},
     "expected at least 90% training accuracy on 32 Fashion-MNIST training images within 200 "
     "full-batch Adam steps"),
    ("short_run_evaluation", batch_norm_updated_inline, {},
     "expected evaluation within 25% of training mode's"),
    ("hparams_honoured", ignores_a_declared_hparam, {**HPARAMS, "width": HParam(64, min=1)},
     "expected every declared hyperparameter to change the parameter count or the outputs, "
     "got no effect from width (64 -> 65, never read)"),
    ("hparams_honoured", reads_a_default_it_does_not_declare, {"dropout": HPARAMS["dropout"]},
     "expected build() to read only the hyperparameters it declares (dropout), got it also "
     "looks up 'width'"),
    ("hparams_honoured", mlp, {**HPARAMS, "dropout": HParam(0.2, min=0.0, max=0.95,
                                                        search="float(0,2)")},
     "expected each declared search range to lie within its hyperparameter's bounds, got "
     "dropout search='float(0,2)': outside the setting's bounds (float, >= 0, <= 0.95)"),
    ("hparams_honoured", mlp, {**HPARAMS, "layers": HParam(1, min=1, max=4, search="int(1)")},
     "expected each declared search range to lie within its hyperparameter's bounds, got "
     "layers search='int(1)': 'int(1)': int(a,b) takes two numbers"),
    ("hparams_honoured", supports_one_layer_only, {**HPARAMS, "layers": HParam(1, min=1, max=4)},
     "expected the model to build with layers=2 (a value its declaration int, >= 1, <= 4 "
     "allows), got NotImplementedError: only one layer so far (at tests/test_conformance.py:"),
]


@pytest.mark.parametrize("check, build, hparams, message", BROKEN,
                         ids=[f"{c}-{b.__name__}" for c, b, _, _ in BROKEN])
def test_a_broken_builder_is_caught_by_its_check(check, build, hparams, message):
    if build is adds_to_the_global_graph:
        from zoo_core._tf import tf as import_tf

        _outer_graph[:] = [import_tf().compat.v1.get_default_graph()]
    result = run_check(check, build, hparams)
    assert result.status == "failed", result.describe()
    assert message in result.message, result.message
    with pytest.raises(testing.CheckFailure) as err:
        raise testing.CheckFailure(result.describe())
    assert str(err.value).startswith(f"check {check!r} failed for model ")


def test_every_check_has_a_broken_builder_above():
    assert {c for c, *_ in BROKEN} == set(testing.CHECKS)


def test_batch_norm_done_right_passes_the_training_flag_check():
    result = run_check("training_flag", batch_norm_done_right, {})
    assert result.status == "passed", result.message
    assert result.message.startswith("batch norm: on while training")


def test_batch_norm_done_right_evaluates_after_a_short_run():
    # 30 steps of momentum-0.99 moving averages alone: the trainer's estimate makes up for it
    result = run_check("short_run_evaluation", batch_norm_done_right, {})
    assert result.status == "passed", result.message
    assert "evaluated against" in result.message


def test_a_dropout_switch_that_is_off_is_switched_on_for_the_training_flag_check():
    def optional_dropout(images, *, num_classes, hparams, training):
        return mlp(images, num_classes=num_classes, training=training,
                   hparams={"hidden": 32, "dropout": 0.5 if hparams["use_dropout"] else 0.0})

    result = run_check("training_flag", optional_dropout, {"use_dropout": False})
    assert result.status == "passed", result.message
    assert result.message.startswith("use_dropout=True: on while training")


@pytest.mark.parametrize("check, build, hparams, reason", [
    ("training_flag", mlp, NO_DROPOUT, "not applicable: no dropout-like hyperparameter"),
    ("hparams_honoured", constant_weights, {}, "not applicable: the model declares no "
     "hyperparameters, and reads none"),
])
def test_checks_that_do_not_apply_are_skipped_with_the_reason(check, build, hparams, reason):
    def no_dropout(images, *, hparams, **kw):
        return mlp(images, hparams={**hparams, "dropout": 0.0}, **kw)

    result = run_check(check, no_dropout if build is mlp else build, hparams)
    assert result.status == "skipped"
    assert result.message.startswith(reason)


def test_calling_a_check_raises_on_failure_and_skips_in_pytest():
    failing = next(c for c in testing.checks(hard_codes_ten_classes, hparams=HPARAMS)
                   if c.name == "logits_shape")
    with pytest.raises(testing.CheckFailure, match=r"^check 'logits_shape' failed for model "
                       r"'hard_codes_ten_classes': expected logits of shape \[batch, 7\]"):
        failing()
    skipped = testing.checks(mlp, hparams=HPARAMS, skip=["overfit_one_batch"])[6]
    assert skipped.name == "overfit_one_batch"
    with pytest.raises(pytest.skip.Exception, match="skipped on request"):
        skipped()


def test_checks_are_named_for_pytest_ids_and_parametrize_marks_skips():
    bound = testing.checks(mlp, hparams=HPARAMS)
    assert [c.__name__ for c in bound] == list(testing.CHECKS)
    mark = testing.parametrize_checks(mlp, hparams=HPARAMS, skip=["fresh_graph"]).mark
    assert mark.args[0] == "check"
    params = mark.args[1]
    assert [p.id for p in params] == list(testing.CHECKS)
    assert params[0].marks[0].name == "skip" and not params[1].marks


@pytest.mark.parametrize("kwargs, message", [
    ({"skip": ["overfit"]}, "unknown check 'overfit'; did you mean 'overfit_one_batch'?"),
    ({"overrides": {"width": 3}}, "unknown hyperparameter 'width' for mlp; declared: hidden, dropout"),
    ({"overrides": {"hidden": 0}}, "hidden must be int, >= 1, <= 512, got 0"),
    ({"shapes": [(28, 28)]}, "image shapes are (height, width, channels), got (28, 28)"),
])
def test_bad_arguments_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError) as err:
        testing.checks(mlp, hparams=HPARAMS, name="mlp", **kwargs)
    assert message in str(err.value)


def test_a_registered_model_is_found_by_name_and_an_unknown_one_says_how():
    bound = testing.checks("cnn", overrides={"filters": 4})
    assert bound[0].subject.spec.plugin == "zoo-cnn"
    assert bound[0].subject.hparams["filters"] == 4
    with pytest.raises(UsageError, match=r"unknown model 'cnnn'; did you mean 'cnn'.*"
                                         r"\(is its plugin installed\?"):
        testing.checks("cnnn")


# ---------------------------------------------------------------- zoo check

TEN_ONLY = '''
from zoo_core import HParam, hookimpl

def build(images, *, num_classes, hparams, training):
    import tensorflow as tf
    x = tf.compat.v1.layers.flatten(images)
    x = tf.compat.v1.layers.dense(x, hparams["hidden"], activation=tf.nn.relu)
    return tf.compat.v1.layers.dense(x, 10)  # should be num_classes

@hookimpl
def zoo_register_models(register):
    register("tenonly", build, summary="ten classes, always", hparams={"hidden": HParam(16, min=1)})
'''

FAST = ["--skip", "seed_determinism", "--skip", "overfit_one_batch", "--skip", "all_variables_train"]


def test_zoo_check_prints_a_table_and_exits_1_when_a_check_fails(zoo, fake_dist):
    fake_dist("zoo-tenonly", {"zoo_tenonly": TEN_ONLY})
    r = zoo("check", "tenonly", *FAST)
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["check", "status", "time", "message"]
    rows = {line.split()[0]: line.split()[1] for line in lines[2:] if line[:1].isalpha()}
    assert rows["logits_shape"] == "failed" and rows["fresh_graph"] == "passed"
    assert rows["overfit_one_batch"] == "skipped"
    assert "expected logits of shape [batch, 7]" in r.stdout
    assert "Error: 1 of 9 checks failed for tenonly: logits_shape" in r.stderr
    assert "Traceback" not in r.output


def test_zoo_check_json(zoo, fake_dist):
    fake_dist("zoo-tenonly", {"zoo_tenonly": TEN_ONLY})
    r = zoo("check", "tenonly", *FAST, "--skip", "logits_shape", "--json",
            "--set", "hidden=8")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"] == "tenonly" and out["plugin"] == "zoo-tenonly" and out["passed"] is True
    statuses = {c["check"]: c["status"] for c in out["checks"]}
    assert statuses["logits_shape"] == "skipped" and statuses["fresh_graph"] == "passed"
    assert "8 parameters" not in r.stdout  # hidden=8 was used: 784*8+8 + 8*10+10 parameters
    assert "6,370 parameters" in next(c["message"] for c in out["checks"] if c["check"] == "fresh_graph")


@pytest.mark.parametrize("args, message", [
    (["check", "cnnn"], "unknown model 'cnnn'; did you mean 'cnn'"),
    (["check", "cnn", "--skip", "overfit"], "unknown check 'overfit'; did you mean"),
    (["check", "cnn", "--set", "depth=2"], "unknown hyperparameter 'depth' for cnn"),
    (["check", "cnn", "--shape", "28x28"], "--shape '28x28': expected HEIGHTxWIDTHxCHANNELS"),
])
def test_zoo_check_usage_errors(zoo, args, message):
    r = zoo(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
