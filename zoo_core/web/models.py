"""The models ``zoo serve`` answers with: each run's classifier loaded once and kept, and
the two ways to ask it: TensorFlow Serving's REST format (``/v1/models/NAME:predict``), and
a file uploaded on a model's card (bounded in bytes, and in pixels before it is decoded).

A NAME is a model (the run ``zoo predict MODEL`` uses: its best completed run on its first
dataset, else the weights shipped in its plugin, read without writing to the store) or a run
id (a unique prefix, or ``latest``). TensorFlow is imported when the first model is loaded.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from zoo_core.catalogue.zoo import Zoo
from zoo_core.errors import UsageError, ZooError
from zoo_core.store.records import RunRecord
from zoo_core.store import Store, open_store
from zoo_core.serving.images import Limits

MAX_BODY_BYTES = 8 << 20  # a predict request's JSON (32 images of 28 x 28 take ~100 kB)
MAX_UPLOAD_BYTES = 4 << 20  # an uploaded file, as sent
MAX_PIXELS = 4096 * 4096  # an uploaded picture's width x height, read before decoding
MAX_INSTANCES = 1024  # images in one predict request
SIGNATURE = "serving_default"  # the one signature, as `zoo export` names it
UPLOAD_LIMITS = Limits(max_bytes=4 * MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS)


class BadRequest(UsageError):
    """A request the server refuses (a 400): one line saying what to send instead."""


class NoModel(ZooError):
    """A NAME that is neither a model with a trained run or shipped weights, nor a run."""


class ThreadStores:
    """The store, opened once per server thread and kept: a request reads through its
    thread's connection (opening one per request was a fifth of a one-image prediction's
    time). A thread's connection closes with the thread, or when the server stops."""

    def __init__(self, location: str | None):
        self.location = location
        self._local = threading.local()

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = open_store(self.location)
        return store


class Models:
    """The classifiers loaded so far, by run (and best epoch): each loaded once, even when
    requests for it arrive together, and kept until :meth:`close`."""

    def __init__(self, zoo: Zoo, stores: ThreadStores):
        self.zoo, self.stores = zoo, stores
        self.loads = 0  # how many classifiers were loaded (each run once)
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}
        self._loaded: dict[tuple, Any] = {}
        self._shipped: dict[tuple[str, str], RunRecord | None] = {}
        self._folder = Path(tempfile.mkdtemp(prefix="zoo-serve-"))

    def resolve(self, name: str, dataset: str | None = None) -> RunRecord:
        """The run NAME means (see the module).

        Raises:
            NoModel: NAME has no trained run or shipped weights; UnknownNameError: no such
                run or model.
        """
        from zoo_core.serving.inference import default_dataset, is_model_name

        store = self.stores.get()
        if not is_model_name(self.zoo, name):
            return store.get(name)
        self.zoo.model(name)  # installed, or the reason it is not
        dataset = dataset or default_dataset(self.zoo, name)
        best = store.best_run(name, dataset)
        return best or self._shipped_run(name, dataset)

    def _shipped_run(self, name: str, dataset: str) -> RunRecord:
        from zoo_core.serving.weights import shipped_run

        with self._lock:
            if (name, dataset) not in self._shipped:
                folder = self._folder / f"{name}-{dataset}"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                self._shipped[(name, dataset)] = shipped_run(self.zoo, name, dataset, folder)
            found = self._shipped[(name, dataset)]
        if found is None:
            raise NoModel(f"no completed run of {name} on {dataset} in the store and no weights "
                          f"shipped for it: train one (`zoo run {name} --dataset {dataset}`) "
                          f"or pull its weights (`zoo pull {name}`)")
        return found

    def classifier(self, record: RunRecord):
        """The run's classifier, loaded on first use (one load per run and best epoch, however
        many requests ask at once)."""
        from zoo_core.serving.inference import Classifier

        key = (record.run_id, record.best_epoch, record.status)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
            loaded = Classifier.load(self.zoo, record)
            with self._lock:
                self._loaded[key] = loaded
                self.loads += 1
        return loaded

    def close(self) -> None:
        with self._lock:
            for classifier in self._loaded.values():
                classifier.close()
            self._loaded.clear()
        shutil.rmtree(self._folder, ignore_errors=True)


# -- TensorFlow Serving's REST format ----------------------------------------------------------


def status(record: RunRecord) -> dict[str, Any]:
    """``GET /v1/models/NAME``: one version, available (TF Serving's model status)."""
    return {"model_version_status": [{
        "version": "1", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}


def parse_predict(body: bytes, image_shape) -> tuple[Any, bool]:
    """A predict request's images, uint8 [N, H, W, C], and whether it came in the row format
    (``instances``; else the columnar ``inputs``).

    Raises:
        BadRequest: not JSON, neither or both of ``instances`` and ``inputs``, another
            signature, or values that are not uint8 images of ``image_shape``.
    """
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"the request body is not JSON ({e})") from None
    if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
        raise BadRequest('send {"instances": [image, ...]} or {"inputs": [image, ...]}, '
                         "each image uint8 values [H][W][C]")
    signature = request.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise BadRequest(f"unknown signature_name {str(signature)[:80]!r}: the one signature "
                         f"is {SIGNATURE!r}")
    rows = "instances" in request
    values = request["instances"] if rows else request["inputs"]
    if rows and isinstance(values, list) and values and all(isinstance(v, dict) for v in values):
        values = [_named(v) for v in values]
    elif isinstance(values, dict):
        values = _named(values)
    return _images(values, image_shape), rows


def _named(value: dict) -> Any:
    """The ``images`` input of a request that names its inputs."""
    if set(value) != {"images"}:
        raise BadRequest(f"unknown inputs {sorted(value)[:5]}: the one input is 'images'")
    return value["images"]


def _images(values: Any, image_shape) -> Any:
    import numpy as np

    h, w, c = image_shape
    try:
        x = np.asarray(values)
    except ValueError:
        x = None
    if x is None or x.dtype == object or x.dtype.kind not in "iuf" or x.ndim not in (3, 4):
        raise BadRequest(f"images must be a list of uint8 arrays [{h}][{w}][{c}] "
                         "(all of the same shape)")
    if x.ndim == 3 and c == 1:
        x = x[..., None]
    if x.shape[1:] != (h, w, c):
        raise BadRequest(f"images of shape {list(x.shape[1:])}, expected [{h}, {w}, {c}]")
    if not 0 < len(x) <= MAX_INSTANCES:
        raise BadRequest(f"{len(x)} images in one request: send 1 to {MAX_INSTANCES}")
    if x.size and (x.min() < 0 or x.max() > 255 or (x.dtype.kind == "f"
                                                   and not np.all(np.floor(x) == x))):
        raise BadRequest("image values must be whole numbers from 0 to 255 (uint8)")
    return x.astype(np.uint8)


def predictions(classifier, x, rows: bool) -> dict[str, Any]:
    """The answer: ``{"predictions": [{"probabilities", "class_ids"}, ...]}`` for the row
    format, ``{"outputs": {"probabilities", "class_ids"}}`` for the columnar one (as TF Serving
    answers for a signature with these two outputs)."""
    probabilities = classifier.probabilities(x)
    class_ids = probabilities.argmax(axis=1)
    if rows:
        return {"predictions": [{"probabilities": p.tolist(), "class_ids": int(i)}
                                for p, i in zip(probabilities, class_ids)]}
    return {"outputs": {"probabilities": probabilities.tolist(),
                        "class_ids": class_ids.tolist()}}


# -- a file uploaded on a model's card --------------------------------------------------------


def try_upload(models: Models, name: str, body: bytes, invert: bool,
               dataset: str | None = None, top: int = 3) -> dict[str, Any]:
    """``zoo predict NAME FILE --json`` for an uploaded file's bytes, within the caps.

    Raises:
        BadRequest: too big, or not an image this model's dataset takes (the reason).
    """
    from zoo_core.serving.images import ImageFileError, decode_images
    from zoo_core.serving.inference import predict

    if len(body) > MAX_UPLOAD_BYTES:
        raise BadRequest(f"the file is over {MAX_UPLOAD_BYTES >> 20} MB: send a smaller one")
    record = models.resolve(name, dataset)
    shape = models.zoo.dataset(record.dataset).image_shape
    try:
        found = decode_images(body, "the file", shape, invert, UPLOAD_LIMITS)
    except ImageFileError as e:
        raise BadRequest(str(e)) from None
    rows = predict(models.classifier(record), [found], top)
    return {"run_id": record.run_id, "model": record.model, "dataset": record.dataset,
            "predictions": rows, "errors": [], "notes": found.notes}
