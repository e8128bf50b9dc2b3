"""A run's model exported for use without the zoo: a TensorFlow SavedModel (for TF Serving)
or a TensorFlow Lite flatbuffer.

Both hold :func:`zoo_core.serving.inference.inference_graph` with the run's best checkpoint:
uint8 ``images`` [batch, H, W, C] in, scaled in the graph as the trainer scales them, and
``probabilities`` (float32 [batch, classes]) and ``class_ids`` (int64 [batch]) out, under
the signature ``serving_default``. They compute in float32, whatever precision the run
trained in: a run's bfloat16 is a session option of oneDNN's (``settings.precision``),
not part of the graph, and its variables are float32.

A SavedModel goes to ``DIR/NAME/VERSION/`` (TF Serving's layout: ``NAME`` the model's name,
``VERSION`` a whole number, the next free one unless given), with ``assets.extra/zoo.json``
naming the run, its classes and its input; a TFLite file to ``DIR/NAME.tflite``, or to the
``.tflite`` path given. Each is written into a temporary name beside its destination and
renamed into place, so a failed export leaves nothing half-written; an existing export is
replaced only when ``force`` is given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zoo_core import paths
from zoo_core.errors import StoreError, UsageError, ZooError, setting
from zoo_core.serving.inference import CLASS_IDS, IMAGES, PROBABILITIES, Classifier

FORMATS = ("savedmodel", "tflite")
SIGNATURE = "serving_default"
METADATA = Path("assets.extra") / "zoo.json"


@dataclass
class Exported:
    """Where an export goes (:func:`plan`), and what it wrote (:func:`export`)."""

    path: Path  # the version folder of a SavedModel, or the .tflite file
    format: str
    name: str
    version: int | None  # a SavedModel's version; None for TFLite


def plan(fmt: str, out: Path, name: str, *, version: int | None = None,
         force: bool = False) -> Exported:
    """Where an export of ``fmt`` named ``name`` goes under ``out``, checked before anything
    is loaded.

    Args:
        fmt: ``savedmodel`` or ``tflite``.
        out: the folder to export into; for TFLite also a file ending in ``.tflite``.
        name: the exported model's name (the run's model name, unless the user names it).
        version: a SavedModel's version (default: the next free one under ``out/name``).
        force: replace an export that exists.

    Raises:
        UsageError: a bad name, version or format, or the export exists and not ``force``.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UsageError(f"{setting('name', name)}: an export's name may hold letters, digits, "
                         "'.', '_' and '-', starting with a letter or digit")
    if fmt == "savedmodel":
        if version is not None and version < 1:
            raise UsageError(f"{setting('version', version)}: a version is a whole number "
                             "from 1")
        version = version or next_version(Path(out) / name)
        done = Exported(Path(out) / name / str(version), fmt, name, version)
    elif fmt == "tflite":
        target = Path(out) if str(out).endswith(".tflite") else Path(out) / f"{name}.tflite"
        done = Exported(target, fmt, name, None)
    else:
        raise UsageError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    if done.path.exists() and not force:
        raise UsageError(f"{done.path} exists: give another {setting('version')} or "
                         f"{setting('name')}, or {setting('force')} to replace it")
    return done


def export(classifier: Classifier, target: Exported) -> Exported:
    """Write ``classifier``'s run where :func:`plan` said, whole or not at all.

    Raises:
        StoreError: the destination cannot be written.
        ZooError: TensorFlow Lite cannot convert the graph.
    """
    parent = paths.ensure_dir(target.path.parent, "the export folder", StoreError)
    with _staging(parent, f".{target.path.name}.") as tmp:
        write_savedmodel(classifier, tmp / "model")
        if target.format == "savedmodel":
            _write_metadata(classifier, tmp / "model" / METADATA)
            _replace(tmp / "model", target.path)
        else:
            _write(tmp / "model.tflite", _tflite(classifier, tmp / "model"))
            _replace(tmp / "model.tflite", target.path)
    return target


def next_version(base: Path) -> int:
    """One more than the highest numbered folder in ``base`` (1 when there is none)."""
    found = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return max(found, default=0) + 1


def _tflite(classifier: Classifier, savedmodel: Path) -> bytes:
    """The SavedModel at ``savedmodel`` as a TensorFlow Lite flatbuffer."""
    from zoo_core._tf import tf as import_tf

    converter = import_tf().lite.TFLiteConverter.from_saved_model(
        str(savedmodel), signature_keys=[SIGNATURE])
    try:
        return converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises many kinds
        raise ZooError(f"TensorFlow Lite cannot convert {classifier.record.model}'s graph: "
                       f"{type(e).__name__}: {str(e).strip().splitlines()[0]}") from None


def write_savedmodel(classifier: Classifier, folder: Path) -> None:
    """The classifier's graph and restored variables as a SavedModel in ``folder`` (which
    must not exist), tagged ``serve``, with the signature ``serving_default``."""
    from zoo_core._tf import tf as import_tf

    v1 = import_tf().compat.v1
    g = classifier.g
    with g.graph.as_default():  # the builder reads and writes the classifier's graph
        signature = v1.saved_model.signature_def_utils.predict_signature_def(
            inputs={IMAGES: g.images},
            outputs={PROBABILITIES: g.probabilities, CLASS_IDS: g.class_ids})
        builder = v1.saved_model.Builder(str(folder))
        builder.add_meta_graph_and_variables(
            classifier.session, [v1.saved_model.tag_constants.SERVING],
            signature_def_map={SIGNATURE: signature}, strip_default_attrs=True, saver=g.saver)
        try:
            builder.save()
        except OSError as e:
            raise StoreError(f"cannot write the export in {folder.parent}: "
                             f"{paths.why_not(e, folder)}; {paths.remedy(e)}") from None


def _write_metadata(classifier: Classifier, path: Path) -> None:
    """What a SavedModel serves, for its users: the run, the classes, the input."""
    r, ds = classifier.record, classifier.dataset
    h, w, c = ds.image_shape
    _write(path, json.dumps({
        "run_id": r.run_id, "model": r.model, "dataset": r.dataset, "seed": r.seed,
        "test_accuracy": r.test_accuracy, "classes": list(ds.classes),
        "input": {"name": IMAGES, "dtype": "uint8", "shape": [None, h, w, c],
                  "scaling": "divided by 255 in the graph"},
        "outputs": {PROBABILITIES: "float32 [batch, classes]", CLASS_IDS: "int64 [batch]"},
        "precision": "float32",
    }, indent=2).encode())


class _staging:
    """A temporary folder beside the destination (same file system, so the final rename is
    atomic), removed with whatever is left in it."""

    def __init__(self, parent: Path, prefix: str):
        self.parent, self.prefix = parent, prefix

    def __enter__(self) -> Path:
        try:
            self.path = Path(tempfile.mkdtemp(dir=self.parent, prefix=self.prefix,
                                              suffix=".tmp"))
        except OSError as e:
            raise StoreError(f"cannot write in {self.parent}: {paths.why_not(e, self.parent)}; "
                             f"{paths.remedy(e)}") from None
        return self.path

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _replace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is moved aside first and
    removed after, so the destination always holds a whole export."""
    aside = None
    try:
        if target.exists():
            aside = source.parent / "replaced"
            os.replace(target, aside)
        os.replace(source, target)
    except OSError as e:
        if aside is not None and not target.exists():
            os.replace(aside, target)  # put the old one back
        raise StoreError(f"cannot write {target}: {paths.why_not(e, target)}; "
                         f"{paths.remedy(e)}") from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as e:
        raise StoreError(f"cannot write {path}: {paths.why_not(e, path)}; "
                         f"{paths.remedy(e)}") from None
