"""Issue 13's hyperparameters of the rnn: rows_per_step, projection, read=rows+columns and
init=irnn. At their defaults the model (and its config id) is the original one; otherwise
they change the steps, the parameters, the passes and the start as declared. That both
kernels compute the same function with them is tests/test_rnn_sequence_kernel.py's."""

import numpy as np
import pytest
from click.testing import CliRunner

import zoo_rnn
from zoo_core import testing
from zoo_core.catalogue import open_zoo
from zoo_core.cli import cli

NEW = ("rows_per_step", "projection", "read", "init")


def _built(overrides, kernel="basic"):
    """The model's forward pass with ``overrides`` (as the trainer builds it), and its
    trainable variables' shapes by name."""
    f = testing.forward_graph(zoo_rnn.build, zoo_rnn.HPARAMS,
                              overrides={**overrides, "kernel": kernel})
    return f, {v.op.name: v.shape.as_list() for v in f.trainable}


# registry.toml's rnn reads the columns too (issue 13); the others stay at the plugin's defaults
REGISTRY = {"read": "rows+columns"}


def test_the_new_hyperparameters_are_left_out_of_default_configs():
    zoo = open_zoo()
    for dataset in ("fashion", "mnist"):
        settings = zoo.resolve("rnn", dataset).settings
        assert not (set(NEW) - set(REGISTRY)) & set(settings.config), \
            "a default config names a new setting"
        assert {k: settings.config[k] for k in REGISTRY} == REGISTRY
        assert all(settings.hparams[k] == REGISTRY.get(k, zoo_rnn.HPARAMS[k].default)
                   for k in NEW)
        assert all(zoo_rnn.HPARAMS[k].omit_default for k in NEW)
        # at the plugin's default again, the config is the one from before read existed
        rows = zoo.resolve("rnn", dataset, overrides={"read": "rows"}).settings
        assert "read" not in rows.config and rows.config_id != settings.config_id
    # set to another value, it is part of the config, and of its id
    fashion = zoo.resolve("rnn", "fashion")
    two = zoo.resolve("rnn", "fashion", overrides={"rows_per_step": 2}).settings
    assert two.config["rows_per_step"] == 2 and two.config_id != fashion.settings.config_id


def test_zoo_list_details_shows_them_from_the_declarations(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    r = CliRunner().invoke(cli, ["list", "rnn", "--details"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    for name in NEW:  # once with its declaration, once among the settings a run gets
        declared, setting = [line.split() for line in lines if line.startswith(f"{name} ")]
        assert declared[1] == str(zoo_rnn.HPARAMS[name].default)
        if name in REGISTRY:
            assert setting[1:] == [REGISTRY[name], "registry.toml", "[models.rnn.hparams]"]
        else:
            assert setting[1:] == [declared[1], "zoo-rnn", "default"]


def test_two_rows_per_step_make_14_wider_steps():
    # BasicRNNCell does one MatMul per step, over [x_t, h_{t-1}]: 28 of them, then 14
    for rows, steps in ((1, 28), (2, 14), (7, 4)):
        f, variables = _built({"rows_per_step": rows})
        calls = [op for op in f.graph.get_operations()
                 if op.type == "MatMul" and "/basic_rnn_cell/" in op.name]
        assert len(calls) == steps
        assert variables["model/rnn/basic_rnn_cell/kernel"] == [28 * rows + 128, 128]


def test_parameter_counts_by_hand():
    # the plugin's defaults: one layer of 128, one way, 28 rows of 28 pixels, 10 classes
    cell = (28 + 128) * 128 + 128  # [x, h] kernel and bias: 20,096
    logits = 128 * 10 + 10  # 1,290
    assert _built({})[0].params == cell + logits == 21_386
    # two rows per step: the kernel's x rows double, 56 + 128
    assert _built({"rows_per_step": 2})[0].params == (56 + 128) * 128 + 128 + logits == 24_970
    # a projection of 64: 28 x 64 + 64 more, and the cell reads 64 features instead of 28
    projected = (28 * 64 + 64) + (64 + 128) * 128 + 128 + logits
    assert _built({"projection": 64})[0].params == projected == 27_850
    # rows and columns: the recurrent variables twice, and logits over 2 x 128 features
    f, both = _built({"read": "rows+columns"})
    assert f.params == 2 * cell + (256 * 10 + 10) == 42_762
    recurrent = {k: v for k, v in both.items() if "/rnn/" in k}
    assert sorted(recurrent) == ["model/columns/rnn/basic_rnn_cell/bias",
                                 "model/columns/rnn/basic_rnn_cell/kernel",
                                 "model/rnn/basic_rnn_cell/bias",
                                 "model/rnn/basic_rnn_cell/kernel"]
    # all three: each pass projects its 2 x 28 pixels to 64 and reads 14 steps
    every = {"rows_per_step": 2, "projection": 64, "read": "rows+columns"}
    per_pass = (56 * 64 + 64) + (64 + 128) * 128 + 128  # 3,648 + 24,704
    for kernel in ("basic", "sequence"):
        assert _built(every, kernel)[0].params == 2 * per_pass + 2570 == 59_274


def test_columns_are_the_transposed_image():
    """read=rows+columns reads the image's columns as the rows of its transpose: the image
    and its transpose give the same logits when the passes' weights and the logits' halves
    swap with them."""
    import tensorflow as tf

    v1 = tf.compat.v1
    x, _ = testing.real_images(4)
    f, shapes = _built({"read": "rows+columns", "rows_per_step": 2, "projection": 8,
                        "hidden": 16})
    rng = np.random.default_rng(0)
    rows = {n: rng.normal(0, 0.3, s).astype(np.float32) for n, s in shapes.items()
            if not n.startswith(("model/columns/", "model/logits/"))}
    columns = {n.replace("model/", "model/columns/", 1): w[::-1].copy() for n, w in rows.items()}
    kernel = rng.normal(0, 0.3, shapes["model/logits/kernel"]).astype(np.float32)
    swapped = np.concatenate([kernel[16:], kernel[:16]])
    with f.graph.as_default(), v1.Session(graph=f.graph) as sess:
        variables = {v.op.name: v for v in f.trainable}
        sess.run(f.init)

        def run(weights, logits_kernel, images_in):
            for n, w in weights.items():
                variables[n].load(w, sess)
            variables["model/logits/kernel"].load(logits_kernel, sess)
            return sess.run(f.logits, {f.images: images_in})

        straight = run({**rows, **columns}, kernel, x)
        # the rows pass gets the columns pass's weights and the other way round
        crossed = {**{n.replace("model/columns/", "model/", 1): w for n, w in columns.items()},
                   **{n.replace("model/", "model/columns/", 1): w for n, w in rows.items()}}
        transposed = run(crossed, swapped, x.transpose(0, 2, 1, 3))
    np.testing.assert_allclose(transposed, straight, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel", ["basic", "sequence"])
def test_irnn_starts_from_the_identity_with_relu(kernel):
    import tensorflow as tf

    over = {"init": "irnn", "layers": 2, "hidden": 32, "rows_per_step": 2}
    f, _ = _built(over, kernel)
    with f.graph.as_default(), tf.compat.v1.Session(graph=f.graph) as sess:
        sess.run(f.init)
        values = {v.op.name: sess.run(v) for v in f.trainable}
    for layer, depth in ((0, 56), (1, 32)):  # layer 0 reads 2 rows, layer 1 the first's h
        scope = f"model/rnn/multi_rnn_cell/cell_{layer}/basic_rnn_cell"
        k = values[f"{scope}/kernel"]
        assert k.shape == (depth + 32, 32)
        # BasicRNNCell's one kernel over [x, h]: its last H rows multiply h_{t-1}
        np.testing.assert_array_equal(k[depth:], np.eye(32, dtype=np.float32))
        assert 0 < np.abs(k[:depth]).max() < 0.01 and abs(k[:depth].std() - 0.001) < 3e-4
        np.testing.assert_array_equal(values[f"{scope}/bias"], 0)
    # the cells' activation is ReLU, at every step of both layers; tanh nowhere
    ops = [op for op in f.graph.get_operations() if "/rnn/" in op.name]
    assert sum(op.type == "Relu" for op in ops) == 2 * 14
    assert not any(op.type == "Tanh" for op in ops)
    # the logits' initializer is not the IRNN's: it is a Glorot kernel, not an identity
    assert values["model/logits/kernel"].std() > 0.05


def test_glorot_is_basic_rnn_cells_own_start():
    f, _ = _built({})
    ops = [op for op in f.graph.get_operations() if "/rnn/" in op.name]
    assert sum(op.type == "Tanh" for op in ops) == 28 and not any(op.type == "Relu" for op in ops)


@pytest.mark.parametrize("args, message", [
    (["rows_per_step=3"], "rows_per_step must be int, one of 1|2|4|7|14|28, got 3"),
    (["projection=-1"], "projection must be int, >= 0"),
    (["read=columns"], "read must be str, one of rows|rows+columns, got 'columns'"),
    (["init=identity"], "init must be str, one of glorot|irnn, got 'identity'"),
])
def test_bad_values_are_one_line_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    r = CliRunner().invoke(cli, ["run", "rnn", *sum((["--set", a] for a in args), [])])
    assert r.exit_code == 2, r.output
    # click's usage lines, then the error on one line, the last
    assert "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith(f"Error: {message}"), r.output


def test_a_height_rows_per_step_does_not_divide_is_named():
    x = np.zeros((2, 32, 32, 3), np.float32)  # CIFAR-10's 32 rows: 7 does not divide them
    with pytest.raises(ValueError, match=r"rows_per_step=7 does not divide the image height "
                                         r"\(32\); use one of 1, 2, 4, 8, 16, 32"):
        testing.run_builder(zoo_rnn.build, x, zoo_rnn.HPARAMS, overrides={"rows_per_step": 7})
    x = np.zeros((2, 28, 20, 1), np.float32)  # 28 rows, 20 columns: the columns pass
    with pytest.raises(ValueError, match=r"does not divide the image width \(20\)"):
        testing.run_builder(zoo_rnn.build, x, zoo_rnn.HPARAMS,
                            overrides={"rows_per_step": 7, "read": "rows+columns"})


def test_learns_on_real_data_with_the_new_reading(tmp_path):
    """A short real run (as tests/test_trainer.py's: 3,000 training images, the registry's
    settings otherwise) with two rows per step, a projection and both passes."""
    result = testing.short_run("rnn", tmp_path, limit=3000, overrides={
        "epochs": 1, "rows_per_step": 2, "projection": 64, "read": "rows+columns"})
    assert result.test.examples == 10_000
    # 78 % when written (one epoch); the trainer's own test asks 40 % of the rnn after two
    assert result.test.accuracy > 0.6, f"{result.test.accuracy:.3f} (chance is 0.10)"
