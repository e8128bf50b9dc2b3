"""``zoo predict`` and ``zoo export``: a trained run used outside of training.

TensorFlow, numpy and Pillow are imported inside the commands, so ``--help`` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from zoo_core.cli.common import (DownloadProgressBar, echo_json, json_option, message,
                                  store_location, table)
from zoo_core.cli.completion import complete_datasets, complete_models, complete_run_ids
from zoo_core.store import open_store

# what `zoo predict --help` and docs/using-models.md say about the conversion
CONVERSION = """\b
IMAGE files may be:
  pictures (PNG, JPEG, or any format Pillow reads), of any size and colour mode:
    rotated as their EXIF tag says, transparency laid on a black background,
    converted to greyscale (L = 0.299 R + 0.587 G + 0.114 B) for a one-channel
    dataset (Fashion-MNIST, MNIST) or to RGB for a three-channel one (CIFAR-10),
    scaled to fit the dataset's H x W keeping the aspect ratio (Lanczos),
    centred, and padded with the background;
  .npy arrays: one image [H, W] or [H, W, C], or a batch [N, H, W] or
    [N, H, W, C]; uint8 0-255, or floats already in [0, 1];
  IDX files (-ubyte, .idx; gzip-compressed or not): a batch [N, H, W].
Then, as in training, uint8 values are divided by 255.

Fashion-MNIST and MNIST images are light objects on a black background: a photo
or drawing on a white background needs --invert (255 - value; 1 - value for
floats; transparency then becomes white before the inversion)."""


def _complete_run_or_model(ctx, param, incomplete: str):
    return complete_models(ctx, param, incomplete) + complete_run_ids(ctx, param, incomplete)


def _resolve(state, target: str, dataset: str | None):
    """The run RUN_ID|MODEL names, and the zoo: a model name is its best completed run
    on ``dataset``, else its published weights pulled (serving.inference.resolve_model_run);
    anything else a run id."""
    from zoo_core.serving.inference import default_dataset, is_model_name, resolve_model_run

    zoo = state.zoo()
    with open_store(store_location()) as store:
        if is_model_name(zoo, target):
            record = resolve_model_run(zoo, store, target, dataset or default_dataset(zoo, target),
                                       progress=DownloadProgressBar())
        else:
            if dataset is not None:
                raise click.UsageError("--dataset goes with a MODEL, not a RUN_ID (a run has "
                                       "its own dataset)")
            record = store.get(target)
    if record.status != "completed":
        click.echo(f"warning: run {record.run_id} is {record.status}: its best checkpoint so "
                   "far is used", err=True)
    return zoo, record


@click.command("predict", epilog=CONVERSION)
@click.argument("target", metavar="RUN_ID|MODEL", shell_complete=_complete_run_or_model)
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True,
                type=click.Path(dir_okay=True))
@click.option("--dataset", "-d", shell_complete=complete_datasets,
              help="With a MODEL: its best completed run on this dataset  [default: the "
                   "model's first dataset].")
@click.option("--top", "-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many classes to show per image.")
@click.option("--invert", is_flag=True,
              help="Invert the values (255 - v): for dark objects on a light background.")
@json_option
@click.pass_obj
def predict(state, target, images, dataset, top, invert, as_json):
    """Classify image files with a trained run: the top classes and their probabilities.

    RUN_ID is a run's id, a unique prefix of it, or `latest`. MODEL (a model's name)
    means its best completed run (highest validation accuracy) on --dataset in the store.
    A file that cannot be read is one `Error:` line on stderr and the others are still
    classified; the exit code is then 1.
    """
    from zoo_core.serving.images import ImageFileError, read_images  # numpy: only here
    from zoo_core.serving.inference import Classifier
    from zoo_core.serving.inference import predict as predict_images

    zoo, record = _resolve(state, target, dataset)
    shape = zoo.dataset(record.dataset).image_shape
    found, failed = [], []
    for path in images:
        try:
            found.append(read_images(path, shape, invert))
        except ImageFileError as e:
            failed.append({"file": path, "error": message(e)})
            click.echo(f"Error: {message(e)}", err=True)
    for note in (n for f in found for n in f.notes):
        click.echo(f"note: {note}", err=True)
    rows = []
    if found:
        with Classifier.load(zoo, record) as classifier:
            rows = predict_images(classifier, found, top)
    _show_predictions(record, rows, failed, as_json)
    if failed:
        raise click.exceptions.Exit(1)


def _show_predictions(record, rows: list[dict], failed: list[dict], as_json: bool) -> None:
    if as_json:
        echo_json({"run_id": record.run_id, "model": record.model, "dataset": record.dataset,
                   "predictions": rows, "errors": failed})
        return
    click.echo(f"run {record.run_id} ({record.model} on {record.dataset}"
               + (f", test accuracy {100 * record.test_accuracy:.2f}%)"
                  if record.test_accuracy is not None else ")"))
    if rows:
        width = max(len(r["top"]) for r in rows)
        click.echo(table([[r["image"], *[f"{t['class']} {100 * t['probability']:.2f}%"
                                         for t in r["top"]]] for r in rows],
                         ["image", *[f"top {i + 1}" for i in range(width)]]))


@click.command("export")
@click.argument("target", metavar="RUN_ID|MODEL", shell_complete=_complete_run_or_model)
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "tflite"]),
              default="savedmodel", show_default=True, help="What to write.")
@click.option("--output", "-o", type=click.Path(), required=True,
              help="The folder to export into (a SavedModel goes to DIR/NAME/VERSION/, a "
                   "TFLite file to DIR/NAME.tflite), or a FILE.tflite.")
@click.option("--name", help="The exported model's name  [default: the run's model].")
@click.option("--version", type=click.IntRange(min=1),
              help="A SavedModel's version folder  [default: the next free one, 1 at first].")
@click.option("--force", is_flag=True, help="Replace an export that exists.")
@click.option("--dataset", "-d", shell_complete=complete_datasets,
              help="With a MODEL: its best completed run on this dataset.")
@json_option
@click.pass_obj
def export(state, target, fmt, output, name, version, force, dataset, as_json):
    """Export a run's model for use without the zoo: a TensorFlow SavedModel for TF
    Serving, or a TensorFlow Lite file.

    Both take uint8 images [batch, H, W, C] (`images`; scaled in the graph as in
    training) and return `probabilities` (float32 [batch, classes]) and `class_ids`
    (int64 [batch]), under the signature `serving_default`, computed in float32. An
    export is written whole or not at all; an existing one is replaced only with --force.
    """
    from zoo_core.serving import export as exports
    from zoo_core.serving.inference import Classifier

    zoo, record = _resolve(state, target, dataset)
    where = exports.plan(fmt, Path(output), name or record.model, version=version, force=force)
    with Classifier.load(zoo, record) as classifier:
        done = exports.export(classifier, where)
    if as_json:
        click.echo(json.dumps({"run_id": record.run_id, "format": done.format,
                               "name": done.name, "version": done.version,
                               "path": str(done.path)}, indent=2))
        return
    what = "SavedModel" if done.format == "savedmodel" else "TensorFlow Lite model"
    click.echo(f"exported run {record.run_id} as a {what}: {done.path}")


COMMANDS = [predict, export]
