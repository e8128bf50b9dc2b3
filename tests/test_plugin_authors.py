"""Issue 16: what a newcomer writing third-party plugins from the docs sees, command by
command: name ownership, errors without tracebacks, plugins installed but not listed,
plugin-declared trainer defaults, and the smaller frictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zoo_core.catalogue import open_zoo

ZOO = str(Path(sys.executable).parent / "zoo")
FASHION = Path("/usr/share/datasets/fashion-mnist")

MODEL = """
from zoo_core import hookimpl

def build(images, *, num_classes, hparams, training):
    import tensorflow as tf
    x = tf.compat.v1.layers.flatten(images)
    return tf.compat.v1.layers.dense(x, num_classes)

@hookimpl
def zoo_register_models(register):
    register({name!r}, build, summary="a dense layer"{extra})
"""


@pytest.fixture
def site(fake_dist, tmp_path, monkeypatch):
    """conftest.py's fake_dist (modules, entry points in any group, requirements), seen by the
    subprocesses too; each install returns the folder."""
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))  # for the subprocesses

    def install(*args, **kwargs) -> Path:
        return fake_dist(*args, **kwargs).parent

    return install


def zoo_process(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_DATA_DIR", "ZOO_REGISTRY")}
    return subprocess.run([ZOO, *args], env=env, capture_output=True, text=True, timeout=timeout)


# -- 1. a plugin cannot take a curated model's name ------------------------------------------------

# before and after zoo-cnn's `cnn`, and `cnn` itself: another distribution's entry point of
# the same name must not hide zoo-cnn's
@pytest.mark.parametrize("entry_point", ["aaa", "zzz", "cnn"])
def test_a_curated_name_always_belongs_to_its_registry_plugin(zoo, site, entry_point):
    site("evil-models", {"evil_models": MODEL.format(name="cnn", extra="") + """
@hookimpl
def zoo_register_datasets(register):
    pass
"""}, entry_points={entry_point: "evil_models"})
    result = zoo("list")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()[2:]}
    assert rows["cnn"] == ["zoo-cnn", "installed"] and rows["cnn-bn"] == ["zoo-cnn", "installed"]
    assert result.stderr.splitlines() == [
        f"warning: model 'cnn' belongs to zoo-cnn (registry.toml); plugin {entry_point} "
        "(evil_models in evil-models) may not register it and its 'cnn' is refused: rename it "
        "(see `zoo plugins`)"]
    import zoo_cnn
    assert open_zoo().model("cnn").build is zoo_cnn.build


def test_the_rest_of_a_clashing_plugin_still_loads(zoo, site):
    site("evil-more", {"evil_more": MODEL.format(name="cnn", extra="") + """
@hookimpl
def zoo_register_datasets(register):
    import numpy as np
    register("dots", lambda d: (np.zeros((20, 4, 4, 1), np.uint8), np.arange(20) % 2,
             np.zeros((10, 4, 4, 1), np.uint8), np.arange(10) % 2),
             summary="dots", classes=("a", "b"), image_shape=(4, 4, 1), validation=5)
"""})
    result = zoo("plugins")
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("evil"))
    assert row == ["evil_more", "evil-more", "0.1.0", "ok", "dataset:dots"]
    assert "model 'cnn' belongs to zoo-cnn (registry.toml)" in result.stdout


def test_leaderboard_rows_carry_the_plugin_that_built_them():
    from zoo_core.results.leaderboard import aggregate, render
    from zoo_core.store.records import RunRecord

    def run(plugin, accuracy):
        return RunRecord(run_id=f"cnn-{plugin}", model="cnn", dataset="fashion", plugin=plugin,
                         plugin_version="0.1.0", zoo_version="0.1.0", tf_version="2.16",
                         status="completed", test_accuracy=accuracy, config={"lr": 0.001},
                         seed=0, data_checksums={"test": "x"}, split_sizes={"test": 10})

    rows = aggregate([run("zoo-cnn", 0.9), run("evil-models", 0.5)])
    assert [(r["model"], r["plugin"]) for r in rows] == [("cnn", "zoo-cnn"), ("cnn", "evil-models")]
    table = render(rows)
    assert "cnn (zoo-cnn)" in table and "cnn (evil-models)" in table


# -- 2. errors in a plugin's graph: one paragraph, the traceback on request -------------------------

SHAPE_BUG = """
from zoo_core import hookimpl


def build(images, *, num_classes, hparams, training):
    import tensorflow as tf
    x = tf.reshape(images, [-1, 28 * 28])
    w = tf.compat.v1.get_variable("w", [100, num_classes])
    x = tf.compat.v1.placeholder_with_default(x, [None, None])
    return tf.reshape(tf.matmul(x, w), [-1, num_classes])


@hookimpl
def zoo_register_models(register):
    register("shapebug", build, summary="fails at its first step")
"""


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_a_graph_that_fails_at_its_first_step_is_one_paragraph_and_stored_so(site):
    site("zoo-shapebug", {"zoo_shapebug": SHAPE_BUG})
    result = zoo_process("run", "shapebug", "--limit", "300", "--data-dir", str(FASHION))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error = result.stderr.splitlines()[-1]
    assert error.startswith(
        "Error: model 'shapebug' (plugin zoo-shapebug) built a graph that fails when it runs, in "
        "epoch 1 (its first step): InvalidArgumentError in op 'model/MatMul' (created at ")
    line = next(i for i, text in enumerate(SHAPE_BUG.splitlines(), 1) if "tf.matmul" in text)
    assert f"zoo_shapebug.py:{line}): Matrix size-incompatible" in error
    assert "The images were [batch, 28, 28, 1] with 10 classes" in error
    assert "`zoo check shapebug`" in error
    from zoo_core.store import open_store
    with open_store() as store:
        stored, = [r for r in store.runs() if r.model == "shapebug"]
    assert stored.status == "failed" and f"Error: {stored.error}" == error
    again = zoo_process("--traceback", "run", "shapebug", "--limit", "300",
                        "--data-dir", str(FASHION))
    assert again.returncode == 1
    assert "Traceback (most recent call last)" in again.stderr
    assert again.stderr.splitlines()[-1] == error


def test_a_builder_that_raises_is_pointed_at_its_own_line_by_zoo_check(site):
    site("zoo-keybug", {"zoo_keybug": MODEL.format(name="keybug", extra="").replace(
        "x = tf.compat.v1.layers.flatten(images)", "x = hparams['width']")})
    result = zoo_process("check", "keybug", "--skip", "overfit_one_batch")
    assert result.returncode == 1
    line = next(i for i, text in enumerate(MODEL.splitlines(), 1) if "flatten" in text)
    assert f"zoo_keybug.py:{line}" in result.stdout
    assert "bin/zoo" not in result.stdout
    assert "Traceback" not in result.stderr


def test_an_unexpected_exception_is_one_line_and_its_traceback_on_request(zoo, monkeypatch):
    from zoo_core.catalogue import zoo as zoo_module

    def broken(self, pattern=None):
        raise RuntimeError("something the zoo did not foresee\nsecond line")

    monkeypatch.setattr(zoo_module.Zoo, "rows", broken)
    result = zoo("list")
    assert result.exit_code == 1
    assert result.stderr == ("Error: RuntimeError: something the zoo did not foresee; run again "
                             "with `zoo --traceback ...` (or ZOO_DEBUG=1) to see where\n")
    debug = zoo("list", env={"ZOO_DEBUG": "1"})
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == "Error: RuntimeError: something the zoo did not foresee"


# -- 3. installed but not listed ----------------------------------------------------------------------

def test_unknown_model_says_which_plugins_failed_to_load(zoo, site):
    site("zoo-gru", {"zoo_gru": "raise ImportError('no module named tensorflo')"})
    result = zoo("run", "gru")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: unknown model 'gru'; known models: cnn, cnn-bn, lstm, lstm-stack, resnet, rnn (see "
        "`zoo list`; gru (zoo_gru in zoo-gru) failed to load, see `zoo plugins`; `zoo plugins "
        "--diagnose` finds plugins installed but not listed)")


def test_a_misspelled_entry_point_group_is_named_instead_of_did_you_mean(zoo, site):
    site("zoo-gru2", {"zoo_gru2": MODEL.format(name="gru2", extra="")},
         entry_points={"gru2": "zoo_gru2"}, group="zoo.plugins")
    result = zoo("run", "gru2")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: unknown model 'gru2': zoo-gru2 lists gru2 = zoo_gru2 under the entry-point group "
        "'zoo.plugins', which the zoo does not read; write [project.entry-points.zoo] in its "
        "pyproject.toml and reinstall it")
    assert "did you mean" not in result.stderr


def test_plugins_diagnose_finds_the_near_misses(zoo, site, tmp_path, monkeypatch):
    site("zoo-grp", {"zoo_grp": MODEL.format(name="grp", extra="")},
         entry_points={"grp": "zoo_grp"}, group="zoo_plugins")
    site("zoo-noep", {}, entry_points={}, requires=("zoo-core>=0.1",))
    site("zoo-nomark", {"zoo_nomark": MODEL.format(name="nomark", extra="").replace(
        "@hookimpl\n", "")})
    site("zoo-typo", {"zoo_typo": MODEL.format(name="typo", extra="").replace(
        "@hookimpl\ndef zoo_register_models", "def zoo_register_model")})
    site("zoo-heavy", {"zoo_heavy": "import tensorflow\n" + MODEL.format(name="heavy", extra="")})
    bin_dir = tmp_path / "other-env" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "zoo").write_text("#!/bin/sh\n")
    (bin_dir / "zoo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = zoo("plugins", "--diagnose")
    assert result.exit_code == 0
    found = [line.removeprefix("diagnose: ") for line in result.stdout.splitlines()
             if line.startswith("diagnose: ")]
    expected = [
        "zoo-grp lists grp = zoo_grp under the entry-point group 'zoo_plugins'; the zoo reads "
        "only 'zoo': write [project.entry-points.zoo] in its pyproject.toml and reinstall it",
        "zoo-noep depends on zoo-core but lists no entry point in the group 'zoo', so the zoo "
        "never imports it: add [project.entry-points.zoo] NAME = \"its_module\" to its "
        "pyproject.toml and reinstall it",
        "plugin nomark (zoo_nomark in zoo-nomark) loaded but registers nothing: does its module "
        "define zoo_register_models (or zoo_register_datasets) marked @hookimpl?",
        "zoo_nomark.zoo_register_models is not marked as a hook, so the zoo never calls it: put "
        "@hookimpl (from zoo_core import hookimpl) above it",
        "zoo_typo.zoo_register_model is not a hook; did you mean 'zoo_register_models'?",
        "zoo_heavy imports tensorflow at module level, which slows every zoo command (zoo list "
        "from 0.2 s to seconds): import it inside the builder instead",
        f"the `zoo` on PATH is {bin_dir / 'zoo'}, from another environment than this zoo's "
        f"({sys.prefix}): plugins installed with another environment's pip are not seen here; "
        f"install with {Path(sys.executable).parent.resolve() / 'pip'}, or activate {sys.prefix}",
    ]
    for line in expected:
        assert line in found, "\n".join(found)
    as_json = json.loads(zoo("plugins", "--diagnose", "--json").stdout)
    assert {f["subject"] for f in as_json["findings"]} >= {"zoo-grp", "zoo-noep", "zoo"}


def test_diagnose_keeps_tensorflow_out_of_the_zoo_process():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom zoo_core.cli import cli\n"
            "r = CliRunner().invoke(cli, ['plugins', '--diagnose'])\nassert r.exit_code == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- 4. a plugin declares its trainer defaults --------------------------------------------------------

TUNED = ', defaults={"lr": 0.005, "epochs": 3}, dataset_defaults={"fashion": {"batch_size": 64}}'


def test_plugin_defaults_merge_under_the_registry_and_the_command_line(zoo, site, tmp_path):
    site("zoo-tuned", {"zoo_tuned": MODEL.format(name="tuned", extra=TUNED)})
    result = zoo("list", "tuned", "--details")
    assert result.exit_code == 0, result.output
    rows = {}  # the settings table: the search space's table below names some of them again
    for line in result.stdout.splitlines():
        if line.split() and line.split()[0] in ("epochs", "batch_size", "lr", "lr_schedule"):
            rows.setdefault(line.split()[0], line.split()[1:])
    assert rows == {"epochs": ["3", "zoo-tuned", "defaults"],
                    "batch_size": ["64", "zoo-tuned", "defaults", "for", "fashion"],
                    "lr": ["0.005", "zoo-tuned", "defaults"],
                    "lr_schedule": ["constant", "trainer", "default"]}
    listed, = json.loads(zoo("list", "tuned", "--details", "--json").stdout)
    assert listed["settings"]["values"]["batch_size"] == 64
    assert listed["settings"]["sources"]["batch_size"] == "zoo-tuned defaults for fashion"
    registry = tmp_path / "registry.toml"
    packaged = (Path(__file__).parents[1] / "zoo_core" / "registry.toml").read_text()
    registry.write_text(packaged + textwrap.dedent("""
        [models.tuned]
        plugin = "zoo-tuned"
        summary = "a dense layer"
        hparams = {epochs = 4}
        [models.tuned.datasets.fashion]
        lr = 0.01
    """))
    zoo_ = open_zoo(registry)
    resolved = zoo_.resolve("tuned", "fashion", overrides={"epochs": 7})
    assert (resolved.trainer.epochs, resolved.trainer.lr, resolved.trainer.batch_size) == (7, 0.01, 64)
    assert resolved.sources["epochs"] == "command line"
    assert resolved.sources["lr"] == "registry.toml [models.tuned.datasets.fashion]"
    assert resolved.sources["batch_size"] == "zoo-tuned defaults for fashion"
    mnist = zoo_.resolve("tuned", "mnist")
    assert (mnist.trainer.epochs, mnist.trainer.lr, mnist.trainer.batch_size) == (4, 0.005, 128)


def test_bad_plugin_defaults_fail_the_plugin_with_the_fix(zoo, site):
    site("zoo-badtune", {"zoo_badtune": MODEL.format(name="badtune", extra=', defaults={"lrr": 1}')})
    result = zoo("plugins")
    assert ("badtune: model 'badtune': defaults sets 'lrr', which is neither a trainer setting nor "
            "a declared hyperparameter; valid: epochs,") in result.stdout


# -- 5. smaller ones ------------------------------------------------------------------------------------

FLOATS = """
import numpy as np
from zoo_core import hookimpl

def load(data_dir):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 4, 4, 1)).astype(np.float32)
    return x[:40], np.arange(40) % 2, x[40:], np.arange(20) % 2

@hookimpl
def zoo_register_datasets(register):
    register({name!r}, load, summary="floats", classes=("a", "b"), image_shape=(4, 4, 1),
             validation={validation})
"""


def test_float_images_outside_0_1_fail_with_the_fix(zoo, site):
    site("zoo-floats", {"zoo_floats": FLOATS.format(name="floats", validation=10)})
    result = zoo("run", "cnn", "--dataset", "floats", "--epochs", "1")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        "Error: dataset 'floats' (plugin zoo-floats): train images are float32 with values from "
        "0 to 255, expected float images in [0, 1]: return uint8 (the core scales it) or scale "
        "the floats in the loader (e.g. x / 255)")


def test_a_plugin_dataset_too_small_for_its_validation_names_its_register_call(zoo, site):
    site("zoo-small", {"zoo_small": FLOATS.format(name="small", validation=40).replace(
        "astype(np.float32)", "astype(np.uint8)")})
    result = zoo("run", "cnn", "--dataset", "small", "--epochs", "1")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: dataset 'small': validation split of 40 leaves no training data (40 training "
        "examples); lower validation= in the register() call of plugin zoo-small")


def test_a_default_of_the_wrong_type_names_the_hyperparameter_model_and_plugin(zoo, site):
    site("zoo-typed", {"zoo_typed": MODEL.format(name="typed", extra=', hparams={"hidden": '
                                                 'HParam("64", type=int)}').replace(
        "from zoo_core import hookimpl", "from zoo_core import HParam, hookimpl")})
    result = zoo("list")
    assert result.stderr.splitlines() == [
        "warning: plugin typed (zoo_typed in zoo-typed) did not load: model 'typed': "
        "hyperparameter 'hidden': default must be int, got '64' (str) (plugin typed (zoo_typed "
        "in zoo-typed)) (see `zoo plugins`)"]


def test_the_guide_s_plugin_with_a_model_and_a_dataset_trains_as_written(zoo, site):
    import re

    guide = (Path(__file__).parents[1] / "docs" / "writing-plugins.md").read_text()
    source, = re.findall(r"<!-- example: zoo_shapes -->\n```python\n(.*?)```", guide, re.S)
    # another module name than tests/test_dataset_plugin.py's, which this process may hold
    site("zoo-shapes", {"zoo_shapes_guide": source}, entry_points={"shapes": "zoo_shapes_guide"})
    listed = zoo("datasets")
    assert listed.exit_code == 0 and "plugin zoo-shapes" in listed.stdout
    details = zoo("list", "shapes-mlp", "--details", "--dataset", "shapes")
    assert "zoo-shapes defaults for shapes" in details.stdout
    result = zoo("run", "shapes-mlp", "--dataset", "shapes", "--epochs", "2", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["plugin"] == "zoo-shapes" and record["config"]["lr"] == 0.003
    assert record["test_accuracy"] > 0.5


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_a_raising_builder_and_reporter_are_one_line_each_naming_their_line(site):
    source = MODEL.format(name="raiser", extra="").replace(
        "x = tf.compat.v1.layers.flatten(images)", "x = hparams['width']") + """
@hookimpl
def zoo_run_finished(run):
    raise ConnectionError("the chat server is down")
"""
    site("zoo-raiser", {"zoo_raiser": source})
    result = zoo_process("run", "raiser", "--limit", "300", "--data-dir", str(FASHION))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = textwrap.dedent(source).splitlines()
    build_line = next(i for i, t in enumerate(lines, 1) if "hparams['width']" in t)
    hook_line = next(i for i, t in enumerate(lines, 1) if "ConnectionError(" in t)
    warning, error = result.stderr.splitlines()[-2:]
    assert warning.startswith("warning: plugin raiser's zoo_run_finished hook failed: "
                              "ConnectionError: the chat server is down (at ")
    assert warning.endswith(f"zoo_raiser.py:{hook_line}); the run is recorded all the same")
    assert error.startswith("Error: model 'raiser' (zoo-raiser): the builder raised KeyError: "
                            "'width' (at ")
    assert error.endswith(f"zoo_raiser.py:{build_line})")


def test_new_plugin_refuses_a_name_the_registry_gives_to_another_plugin(zoo, tmp_path):
    registry = tmp_path / "registry.toml"
    packaged = (Path(__file__).parents[1] / "zoo_core" / "registry.toml").read_text()
    registry.write_text(packaged + '\n[models.gru]\nplugin = "zoo-gru-models"\nsummary = "a GRU"\n')
    result = zoo("--registry", str(registry), "new-plugin", "gru", "--dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: the name 'gru' belongs to zoo-gru-models in registry.toml; choose another NAME")
    assert not (tmp_path / "zoo-gru").exists()
