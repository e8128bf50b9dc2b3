"""Plugin loading: entry points, crash isolation, validation, ZOO_LOAD_PLUGINS."""

from __future__ import annotations

import types

import pytest

from zoo_core import HParam, hookimpl
from zoo_core.catalogue import open_zoo
from zoo_core.catalogue.plugins import call_each, load
from zoo_core.errors import HParamError
from zoo_core.settings import as_hparam

GOOD = """
from zoo_core import hookimpl

def build(images, *, num_classes, hparams, training):
    raise NotImplementedError

@hookimpl
def zoo_register_models(register):
    register("tiny", build, summary="a tiny test model", hparams={"width": 8})
"""


def plugin(**hooks):
    """A plugin object with the given hook implementations."""
    mod = types.ModuleType("fake_plugin")
    for name, fn in hooks.items():
        setattr(mod, name, hookimpl(fn))
    return mod


def registers(*args, **kwargs):
    def zoo_register_models(register):
        register(*args, **kwargs)
    return zoo_register_models


def builder(images, *, num_classes, hparams, training):
    return images


def test_the_three_builtin_plugins_load_through_entry_points():
    result = load()
    assert {"rnn", "lstm", "cnn"} <= set(result.models)
    dists = {r.dist for r in result.reports if r.status == "ok"}
    assert {"zoo-rnn", "zoo-lstm", "zoo-cnn"} <= dists


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(fake_dist):
    fake_dist("zoo-broken", {"zoo_broken": "raise ImportError('no module named tensorflo')"})
    fake_dist("zoo-tiny", {"zoo_tiny": GOOD})
    result = load()
    broken = next(r for r in result.reports if r.dist == "zoo-broken")
    assert broken.status == "failed"
    assert "import failed" in broken.error and "tensorflo" in broken.error
    assert "tiny" in result.models and "cnn" in result.models


def test_a_hook_that_raises_is_isolated(fake_dist):
    fake_dist("zoo-raises", {"zoo_raises": """
        from zoo_core import hookimpl
        @hookimpl
        def zoo_register_models(register):
            raise RuntimeError("database of weights unreachable")
    """})
    result = load()
    report = next(r for r in result.reports if r.dist == "zoo-raises")
    assert report.status == "failed"
    assert "RuntimeError: database of weights unreachable" in report.error
    assert "cnn" in result.models


def test_unknown_hook_names_fail_loudly():
    bad = plugin(zoo_register_modles=lambda register: None)
    result = load([bad], entry_points=False)
    assert result.reports[0].status == "failed"
    assert "zoo_register_modles" in result.reports[0].error


def test_duplicate_model_names_name_both_plugins(fake_dist):
    fake_dist("zoo-tiny2", {"zoo_tiny2": GOOD})
    fake_dist("zoo-tiny", {"zoo_tiny": GOOD})
    result = load()
    reports = [r for r in result.reports if r.dist in ("zoo-tiny", "zoo-tiny2")]
    assert [r.status for r in reports] == ["ok", "ok"]
    assert "tiny" not in result.models  # neither wins: the outcome cannot depend on the order
    assert ("model 'tiny' is registered by both tiny (zoo_tiny in zoo-tiny) and "
            "tiny2 (zoo_tiny2 in zoo-tiny2)") in reports[0].refused[0]


@pytest.mark.parametrize("args, kwargs, message", [
    (("tiny", 42), {"summary": "s"}, "builder must be callable"),
    (("Tiny!", builder), {"summary": "s"}, "model name 'Tiny!' is invalid"),
    (("tiny", builder), {"summary": ""}, "give a one-line summary"),
    (("tiny", builder), {"summary": "s", "hparams": {"width": [1, 2]}}, "must be bool, int, float or str"),
    (("tiny", builder), {"summary": "s", "hparams": {"lr": 0.1}}, "'lr' is a trainer setting"),
    (("tiny", builder), {"summary": "s", "hparams": {"bad name": 1}}, "not an identifier"),
    (("tiny", builder), {"summary": "s", "inputs": "image"}, "inputs must be a tuple of input kinds"),
])
def test_invalid_registrations_are_rejected_with_a_fix(args, kwargs, message):
    result = load([plugin(zoo_register_models=registers(*args, **kwargs))], entry_points=False)
    assert result.reports[0].status == "failed"
    assert message in result.reports[0].error
    assert result.models == {}


def test_the_documented_inputs_and_description_arguments_are_still_accepted():
    # A plugin written against the last release's docs passes them; nothing reads them.
    result = load([plugin(zoo_register_models=registers(
        "tiny", builder, summary="s", inputs=("image",), description="a longer text"))],
        entry_points=False)
    assert result.reports[0].status == "ok", result.reports[0].error
    assert result.models["tiny"].summary == "s"


def test_a_default_outside_its_own_bounds_is_refused_at_registration():
    # Refused where the message can name the hyperparameter and the model, not at import.
    assert HParam(0, min=1).problem == "default must be int, >= 1, got 0"
    with pytest.raises(HParamError, match="hyperparameter 'width': default must be int, >= 1"):
        as_hparam("width", HParam(0, min=1))
    result = load([plugin(zoo_register_models=registers(
        "tiny", builder, summary="s", hparams={"width": HParam(0, min=1)}))], entry_points=False)
    assert result.reports[0].error.startswith(
        "model 'tiny': hyperparameter 'width': default must be int, >= 1, got 0 (plugin ")


def test_a_plugin_with_one_bad_registration_registers_nothing():
    def zoo_register_models(register):
        register("ok", builder, summary="fine")
        register("bad", None, summary="not callable")
    result = load([plugin(zoo_register_models=zoo_register_models)], entry_points=False)
    assert result.models == {}


def test_zoo_load_plugins_limits_what_loads(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "cnn, zoo-lstm")
    result = load()
    assert {r.dist for r in result.reports} == {"zoo-cnn", "zoo-lstm"}
    assert {"cnn", "lstm"} <= set(result.models) and "rnn" not in result.models
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    result = load()
    assert result.models == {} and result.reports == []


def test_datasets_register_through_their_hook():
    def loader(data_dir):
        raise AssertionError("not called while listing")

    def zoo_register_datasets(register):
        register("blobs", loader, summary="blobs", classes=["a", "b"], image_shape=(8, 8, 1))
    zoo = open_zoo(plugins=[plugin(zoo_register_datasets=zoo_register_datasets)], entry_points=False)
    assert zoo.dataset("blobs").load is loader
    assert zoo.dataset("fashion").files  # the registry's own datasets are still there


def test_a_plugin_object_that_cannot_be_hashed_is_reported_and_the_others_load():
    odd = types.SimpleNamespace(zoo_register_models=hookimpl(registers("odd", builder, summary="s")))
    result = load([odd, plugin(zoo_register_models=registers("tiny", builder, summary="s"))],
                  entry_points=False)
    assert [r.status for r in result.reports] == ["failed", "ok"]
    assert "cannot be hashed; a plugin is a module" in result.reports[0].error
    assert list(result.models) == ["tiny"]


def test_run_finished_reaches_every_reporter_though_one_raises():
    told = []

    def zoo_run_finished(run):
        told.append(run)

    def broken(run):
        raise ConnectionError("the chat server is down")

    result = load([plugin(zoo_run_finished=broken), plugin(zoo_run_finished=zoo_run_finished),
                   plugin(zoo_register_models=registers("quiet", builder, summary="no hook"))],
                  entry_points=False)
    failures = call_each(result.manager, "zoo_run_finished", run="the record")
    assert told == ["the record"]
    assert [type(e).__name__ for _, e in failures] == ["ConnectionError"]
    assert failures[0][0] in {name for name, _ in result.manager.list_name_plugin()}


# -- plugins that hang, exit or misbehave ------------------------------------------------------

def test_a_plugin_that_hangs_at_import_is_skipped_after_the_timeout(fake_dist, monkeypatch):
    from zoo_core.catalogue import plugins

    fake_dist("zoo-tiny", {"zoo_tiny": GOOD})
    load()  # the healthy plugins are imported once, at full speed
    fake_dist("zoo-hangs", {"zoo_hangs": "import time\ntime.sleep(30)\n"})
    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", "0.5")
    result = load()  # the import sleeps 30 s: load() returns after the timeout, saying so
    hung = next(r for r in result.reports if r.dist == "zoo-hangs")
    assert hung.status == "failed"
    assert hung.error == ("import did not finish within 0.5 s (zoo_hangs hangs at import time); "
                          "fix the plugin, or raise ZOO_PLUGIN_TIMEOUT if it is only slow")
    assert {"tiny", "cnn", "lstm", "rnn"} <= set(result.models)
    # a second load in the same process does not wait for it again: it finds it still stuck
    again = next(r for r in load().reports if r.dist == "zoo-hangs")
    assert "still stuck since an earlier attempt" in again.error
    plugins._STUCK.clear()


def test_a_registration_hook_that_hangs_is_skipped(monkeypatch):
    import threading

    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", "0.3")
    release = threading.Event()

    def zoo_register_models(register):
        register("late", builder, summary="registers after the timeout")
        release.wait(10)
    result = load([plugin(zoo_register_models=zoo_register_models)], entry_points=False)
    release.set()
    assert result.reports[0].status == "failed"
    assert "registration hooks did not finish within 0.3 s" in result.reports[0].error
    assert result.models == {}


@pytest.mark.parametrize("source, message", [
    ("import sys\nsys.exit(3)\n", "import failed: SystemExit: 3"),
    ("raise RuntimeError('line one\\nline two')\n", "import failed: RuntimeError: line one line two"),
    ("def broken(:\n", "import failed: SyntaxError"),
])
def test_import_failures_of_every_kind_are_one_line(fake_dist, source, message):
    fake_dist("zoo-odd", {"zoo_odd": source})
    result = load()
    report = next(r for r in result.reports if r.dist == "zoo-odd")
    assert report.status == "failed" and report.error.startswith(message)
    assert "\n" not in report.error
    assert "cnn" in result.models


def test_a_hook_that_calls_sys_exit_is_isolated():
    import sys

    def zoo_register_models(register):
        sys.exit("plugin gave up")
    result = load([plugin(zoo_register_models=zoo_register_models)], entry_points=False)
    assert result.reports[0].status == "failed"
    assert result.reports[0].error == "SystemExit: plugin gave up"


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_a_bad_plugin_timeout_is_a_usage_error(monkeypatch, value):
    from zoo_core.errors import UsageError

    monkeypatch.setenv("ZOO_PLUGIN_TIMEOUT", value)
    with pytest.raises(UsageError, match=rf"ZOO_PLUGIN_TIMEOUT='{value}': expected seconds"):
        load()
