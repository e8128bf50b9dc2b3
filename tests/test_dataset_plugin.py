"""The dataset hook end to end: a plugin registers a dataset of its own (generated
shapes), and `zoo datasets`, `zoo run` and `zoo leaderboard` use it like a built-in one.

The plugin is installed the way pip installs one: a module and a ``.dist-info`` with
``zoo`` entry points on sys.path (the ``fake_dist`` fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


SHAPES = '''
"""zoo-shapes: a dataset of generated 16x16 shapes, 4 classes, the same on every machine."""

import numpy as np

from zoo_core import hookimpl

CLASSES = ("horizontal bar", "vertical bar", "square", "cross")


def draw(rng, n):
    images = np.zeros((n, 16, 16), np.uint8)
    labels = rng.integers(0, len(CLASSES), n)
    for image, label in zip(images, labels):
        size = int(rng.integers(5, 9))
        top, left = rng.integers(0, 16 - size, 2)
        mid = size // 2
        box = image[top:top + size, left:left + size]
        if label == 0:
            box[mid - 1:mid + 1, :] = 255
        elif label == 1:
            box[:, mid - 1:mid + 1] = 255
        elif label == 2:
            box[[0, -1], :] = 255
            box[:, [0, -1]] = 255
        else:
            box[mid - 1:mid + 1, :] = 255
            box[:, mid - 1:mid + 1] = 255
    noise = rng.integers(0, 60, images.shape).astype(np.uint8)
    return np.maximum(images, noise)[..., None], labels


def load(data_dir):
    rng = np.random.default_rng(2024)
    x_train, y_train = draw(rng, 3000)
    x_test, y_test = draw(rng, 1000)
    return x_train, y_train, x_test, y_test


@hookimpl
def zoo_register_datasets(register):
    register("shapes", load, summary="generated 16x16 shapes: bars, squares, crosses",
             classes=CLASSES, image_shape=(16, 16, 1), validation=500)
'''


@pytest.fixture
def shapes_plugin(fake_dist):
    return fake_dist("zoo-shapes", {"zoo_shapes": SHAPES})


def test_the_plugin_dataset_is_listed(zoo, shapes_plugin):
    plugins = {p["distribution"]: p for p in json.loads(zoo("plugins", "--json").stdout)}
    assert plugins["zoo-shapes"]["status"] == "ok"
    assert plugins["zoo-shapes"]["datasets"] == ["shapes"] and plugins["zoo-shapes"]["models"] == []
    datasets = {d["name"]: d for d in json.loads(zoo("datasets", "--json").stdout)}
    assert datasets["shapes"]["location"] == "plugin zoo-shapes"
    assert datasets["shapes"]["classes"] == 4 and datasets["shapes"]["verified"] == "on load"
    assert "fashion" in datasets  # the registry's own datasets are still there


def test_a_model_trains_on_the_plugin_dataset_end_to_end(zoo, shapes_plugin, zoo_home):
    # the registry's cnn (batch normalization, dropout): 40 steps, after which its moving
    # statistics alone evaluated at 24 % here; the trainer estimates them again
    r = zoo("run", "cnn", "--dataset", "shapes", "--epochs", "2", "--json")
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)
    assert run["status"] == "completed" and run["dataset"] == "shapes"
    assert run["split_sizes"] == {"train": 2500, "val": 500, "test": 1000}
    assert set(run["data_checksums"]) == {"train", "test"}
    assert run["test_accuracy"] > 0.6, run["test_accuracy"]  # chance is 0.25
    config = json.loads(Path(run["run_dir"], "config.json").read_text())
    assert config["data"]["source"] == "plugin zoo-shapes"
    evaluated = json.loads(zoo("evaluate", run["run_id"], "--json").stdout)
    assert evaluated["classes"] == ["horizontal bar", "vertical bar", "square", "cross"]
    assert evaluated["accuracy"] == pytest.approx(run["test_accuracy"])
    board = json.loads(zoo("leaderboard", "--dataset", "shapes", "--format", "json").stdout)
    assert [(row["model"], row["dataset"]) for row in board] == [("cnn", "shapes")]


def test_a_plugin_dataset_of_the_wrong_shape_is_a_clear_error(zoo, fake_dist):
    # another module name: fake_dist's modules stay imported for the rest of the session
    fake_dist("zoo-badshapes", {"zoo_badshapes": SHAPES.replace("image_shape=(16, 16, 1)",
                                                                "image_shape=(28, 28, 1)")})
    r = zoo("run", "cnn", "--dataset", "shapes", "--epochs", "1")
    assert r.exit_code == 1
    assert ("Error: dataset 'shapes' (plugin zoo-badshapes): train images have shape "
            "(3000, 16, 16, 1), expected [N, 28, 28, 1]") in r.output
    assert "Traceback" not in r.output


def test_a_plugin_dataset_that_clashes_with_the_registry_is_reported(zoo, fake_dist):
    fake_dist("zoo-fakefashion", {"zoo_fakefashion": SHAPES.replace('register("shapes"',
                                                                    'register("fashion"')})
    r = zoo("plugins")
    assert "dataset 'fashion' is already in" in r.output
    assert "the plugin's registration is ignored" in r.output
