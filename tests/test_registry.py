"""registry.toml: structure errors name the file, the entry and the fix; settings merge."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zoo_core.catalogue import open_zoo
from zoo_core.catalogue.registry import default_registry_path, read_catalogue
from zoo_core.cli.common import parse_set_options
from zoo_core.errors import HParamError, RegistryError, UsageError, setting

SHIPPED = Path(__file__).resolve().parents[1] / "registry.toml"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


def with_model(extra: str) -> str:
    """The shipped registry's datasets with one extra model entry."""
    text = SHIPPED.read_text()
    return text[: text.index("# ------------------------------------------------------------------"
                             "----- models")] + extra


def test_the_packaged_registry_is_the_shipped_one():
    assert default_registry_path().read_text() == SHIPPED.read_text()
    cat = read_catalogue()
    assert {"rnn", "lstm", "cnn"} <= set(cat.models)
    assert {"fashion", "mnist"} <= set(cat.datasets)


@pytest.mark.parametrize("text, pattern", [
    ("schema = 1\n[models.cnn\n", r"registry.toml: invalid TOML"),
    ("schema = 1\nmodel = {}\n", r"\[top level\] unknown key 'model'; allowed keys: datasets, models, schema"),
    ("schema = 7\n", r"schema = 7, but this zoo-core reads schema 1; upgrade zoo-core"),
    ('[models.cnn]\nplugin = "zoo-cnn"\nsummary = "s"\nepochs = 3\n',
     r"\[models.cnn\] unknown key 'epochs'; allowed keys: datasets, hparams, plugin, reference, summary"),
    ('[models.cnn]\nplugin = 3\nsummary = "s"\n', r"\[models.cnn\] plugin must be a distribution name, got 3"),
    ('[models.cnn]\nsummary = "s"\n', r"\[models.cnn\] is missing 'plugin'"),
    ('[datasets.x]\nsummary = "s"\nclasses = ["a"]\nimage_shape = [2, 2, 1]\nfiles = {}\n',
     r"\[datasets.x\] classes must be a list of at least two names"),
    ('[datasets.x]\nsummary = "s"\nclasses = ["a", "b"]\nimage_shape = [2, 2]\nfiles = {}\n',
     r"\[datasets.x\] image_shape must be \[height, width, channels\]"),
])
def test_malformed_registries_name_the_file_entry_and_fix(tmp_path, text, pattern):
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as err:
        read_catalogue(path)
    assert str(path) in str(err.value)
    assert re.search(pattern, str(err.value)), str(err.value)


def test_a_dataset_file_without_any_checksum_is_refused(tmp_path):
    text = SHIPPED.read_text().replace(
        ', sha256 = "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", '
        'md5_gz = "8d4fb7e6c68d591d4c3dfef9ec88bf0d"', "")
    with pytest.raises(RegistryError, match=r"\[datasets.fashion.files.train_images\] needs sha256"):
        read_catalogue(write(tmp_path, text))


def test_a_missing_registry_file_says_which(tmp_path):
    # the setting is named by marker; the command line shows it as --registry
    # (tests/test_cli_catalogue.py)
    with pytest.raises(RegistryError, match="does not exist: check registry / ZOO_REGISTRY") as err:
        read_catalogue(tmp_path / "nope.toml")
    assert err.value.template.endswith(f"does not exist: check {setting('registry')} / ZOO_REGISTRY")


def test_a_model_whose_plugin_is_missing_is_listed_with_how_to_install(tmp_path):
    path = write(tmp_path, with_model('[models.gru]\nplugin = "zoo-gru"\nsummary = "a GRU"\n'))
    zoo = open_zoo(path)
    row = next(r for r in zoo.rows() if r.name == "gru")
    assert row.status == "not installed"
    assert "pip install zoo-gru" in row.hint
    with pytest.raises(UsageError, match="provided by plugin zoo-gru, which is not installed: pip install zoo-gru"):
        zoo.resolve("gru", "fashion")


def test_unknown_model_suggests_the_closest_names():
    with pytest.raises(UsageError, match=r"unknown model 'cnnn'; did you mean 'cnn'"):
        open_zoo().resolve("cnnn", "fashion")
    with pytest.raises(UsageError, match=r"unknown dataset 'fashon'; did you mean 'fashion'\?"):
        open_zoo().resolve("cnn", "fashon")


def test_settings_merge_plugin_then_registry_then_command_line(tmp_path):
    path = write(tmp_path, with_model(
        '[models.cnn]\nplugin = "zoo-cnn"\nsummary = "s"\n'
        "[models.cnn.hparams]\nepochs = 4\ndense = 64\n"
        "[models.cnn.datasets.fashion]\nepochs = 6\n"
    ))
    zoo = open_zoo(path)
    r = zoo.resolve("cnn", "fashion", overrides={"lr": 0.01}, raw_overrides={"dense": "32"})
    assert r.trainer.epochs == 6 and "datasets.fashion" in r.sources["epochs"]
    assert r.trainer.lr == 0.01 and r.sources["lr"] == "command line"
    assert r.hparams["dense"] == 32 and r.sources["dense"] == "command line"
    assert r.hparams["filters"] == 32 and r.sources["filters"] == "zoo-cnn default"
    assert r.trainer.batch_size == 128 and r.sources["batch_size"] == "trainer default"
    assert zoo.resolve("cnn", "mnist").trainer.epochs == 4


def test_registry_hyperparameters_are_checked_against_the_plugin(tmp_path):
    path = write(tmp_path, with_model(
        '[models.cnn]\nplugin = "zoo-cnn"\nsummary = "s"\n[models.cnn.hparams]\ndense = "wide"\n'))
    with pytest.raises(RegistryError, match=r"\[models.cnn.hparams\] dense must be int"):
        open_zoo(path).resolve("cnn", "fashion")
    path = write(tmp_path, with_model(
        '[models.cnn]\nplugin = "zoo-cnn"\nsummary = "s"\n[models.cnn.hparams]\ndepth = 3\n'))
    with pytest.raises(RegistryError, match=r"sets unknown hyperparameter 'depth'; cnn accepts: .*blocks"):
        open_zoo(path).resolve("cnn", "fashion")


def test_the_shipped_registry_agrees_with_the_shipped_plugins():
    zoo = open_zoo()
    for name, entry in zoo.catalogue.models.items():
        assert name in zoo.models, f"{name} is in registry.toml but no plugin registers it"
        assert zoo.models[name].plugin == entry.plugin
        for dataset in entry.datasets:
            zoo.resolve(name, dataset)  # raises when a value does not fit its declaration


@pytest.mark.parametrize("items, expected", [
    (["dropout=0.3"], {"dropout": "0.3"}),
    (["a=b=c", " x = 1"], {"a": "b=c", "x": " 1"}),
])
def test_set_options_parse(items, expected):
    assert parse_set_options(items) == expected


@pytest.mark.parametrize("item", ["dropout", "=3", ""])
def test_set_options_without_key_and_value_are_usage_errors(item):
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_set_options([item])


@pytest.mark.parametrize("key, value, message", [
    ("dense", "wide", "dense must be int"),
    ("dropout", "nan", "dropout must be a finite number"),
    ("epochs", "0", "epochs must be int, >= 1"),
    ("lr_schedule", "onecycle", "one of constant|cosine|step|linear"),
    ("depth", "3", "unknown hyperparameter 'depth' for cnn; valid: augment_erase (int), augment_flip (bool)"),
])
def test_bad_set_values_list_what_is_valid(key, value, message):
    with pytest.raises(HParamError, match=re.escape(message)):
        open_zoo().resolve("cnn", "fashion", raw_overrides={key: value})


def test_an_unreadable_registry_says_which_and_why(tmp_path):
    with pytest.raises(RegistryError, match=rf"^registry file {tmp_path} cannot be read \(Is a directory\): "
                                            r"check registry / ZOO_REGISTRY$") as err:
        read_catalogue(tmp_path)
    assert err.value.template.endswith(f"check {setting('registry')} / ZOO_REGISTRY")
    binary = tmp_path / "registry.toml"
    binary.write_bytes(b"\xff\xfe\x00schema")
    with pytest.raises(RegistryError, match=r"is not UTF-8 text: is it the right file\?"):
        read_catalogue(binary)


def test_a_huge_number_in_the_registry_is_a_clear_error(tmp_path):
    path = write(tmp_path, with_model(
        '[models.cnn]\nplugin = "zoo-cnn"\nsummary = "s"\n[models.cnn.hparams]\n'
        f"dropout = {10 ** 400}\n"))
    with pytest.raises(RegistryError, match=r"\[models.cnn.hparams\] dropout must be a finite number, "
                                            r"got 1000000000\d+…$") as err:
        open_zoo(path).resolve("cnn", "fashion")
    assert len(str(err.value)) < len(str(path)) + 150


def test_reference_results_were_measured_with_the_current_defaults(monkeypatch):
    from zoo_core import settings as settings_module

    # measured on a CPU with bfloat16 (precision "auto" computed in bfloat16 there)
    monkeypatch.setattr(settings_module, "cpu_has_bf16", lambda: True)
    zoo = open_zoo()
    checked = 0
    for name, entry in zoo.catalogue.models.items():
        for dataset, ref in entry.reference.items():
            settings = zoo.resolve(name, dataset).settings
            assert settings.config_id == ref["config_id"], (
                f"registry.toml's reference result for {name} on {dataset} was measured with "
                f"other settings; run `{ref['command']}` and record the new figures")
            checked += 1
    assert checked >= 1


def test_every_shipped_model_has_a_fashion_reference_with_the_command_that_reproduces_it():
    from zoo_core.results.reproduce import reproduce_command

    zoo = open_zoo()
    for name, entry in zoo.catalogue.models.items():
        ref = entry.reference.get("fashion")
        assert ref is not None, f"registry.toml has no [models.{name}.reference.fashion]"
        resolved = zoo.resolve(name, "fashion")
        assert ref["command"] == reproduce_command(
            name, "fashion", resolved.settings.config, ref["seeds"], resolved.settings.config)
        assert len(ref["seeds"]) >= 3 and 0 < ref["test_accuracy_std"] < 0.02


@pytest.mark.parametrize("ref, message", [
    ('config_id = "x"\ncommand = "zoo run cnn"', "is missing 'test_accuracy'"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 91.5', "a fraction, at most 1"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nseeds = "0,1"', "seeds must be a list"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nruns = 3', "unknown key 'runs'"),
    # the evidence a reference row may carry (issue 13)
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nflops = 3',
     "unknown key 'flops'; allowed keys: command, config_id, cores, cpu, examples_per_second, "
     "git, macs, params, precision"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nparams = "421k"',
     "params must be a whole number of trainable parameters, got '421k'"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nmacs = 4.2e6',
     "macs must be a whole number of multiply-accumulates per example, got 4200000.0"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\ncores = -2',
     "cores must be a whole number of cores, got -2"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nexamples_per_second = true',
     "examples_per_second must be a non-negative number, got True"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nprecision = "bf16"',
     "precision must be float32 or bfloat16, got 'bf16'"),
    ('config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\ncpu = 2', "cpu must be the CPU's model name"),
])
def test_malformed_reference_results_are_refused(tmp_path, ref, message):
    path = write(tmp_path, with_model(
        '[models.cnn]\nplugin = "zoo-cnn"\nsummary = "s"\n[models.cnn.reference.fashion]\n' + ref))
    with pytest.raises(RegistryError, match=re.escape(message)):
        read_catalogue(path)


def test_a_reference_row_may_carry_its_evidence(tmp_path):
    path = write(tmp_path, with_model(
        '[models.cnn]\nplugin = "zoo-cnn"\nsummary = "s"\n[models.cnn.reference.fashion]\n'
        'config_id = "x"\ncommand = "c"\ntest_accuracy = 0.9\nparams = 421_642\n'
        'macs = 4_241_152\nexamples_per_second = 4584.5\ncpu = "AMD EPYC"\ncores = 2\n'
        'tensorflow = "2.21.0"\nprecision = "bfloat16"\ngit = "6b55e44"\n'))
    ref = read_catalogue(path).models["cnn"].reference["fashion"]
    assert (ref["params"], ref["macs"], ref["cores"], ref["precision"]) == \
        (421_642, 4_241_152, 2, "bfloat16")
