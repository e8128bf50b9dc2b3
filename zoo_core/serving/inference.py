"""A run's trained model as a classifier: its graph rebuilt for inference, its best
checkpoint restored, probabilities for a batch of images.

:func:`inference_graph` is the graph ``zoo predict`` runs and ``zoo export`` writes: uint8
``images`` scaled as the trainer scales them (:func:`zoo_core.data.splits.to_float_op`), or
float ``pixels`` fed directly (what :func:`zoo_core.data.to_float` makes of any input), the
builder called the one way the zoo calls it (:func:`zoo_core.train.forward.forward`, with
``training`` False), then ``probabilities`` (softmax) and ``class_ids`` (argmax). Its
variables are the model's, restored from the run's best checkpoint; the run's recorded
settings (its precision, its kernel) decide the session and the graph, as in training.

:func:`resolve_model_run` is the one place that decides which run a model name means.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from zoo_core._tf import seed_graph
from zoo_core._tf import tf as import_tf
from zoo_core.catalogue import Zoo
from zoo_core.catalogue.specs import DatasetSpec, ModelSpec
from zoo_core.data import to_float
from zoo_core.data.downloads import DownloadProgress
from zoo_core.data.splits import to_float_op
from zoo_core.errors import ZooError
from zoo_core.results.evidence import recorded_settings
from zoo_core.store.records import RunRecord
from zoo_core.store import Store
from zoo_core.serving import weights
from zoo_core.settings import RunSettings
from zoo_core.train import checkpoints
from zoo_core.train.blame import graph_errors
from zoo_core.train.evaluate import EVAL_BATCH, best_session
from zoo_core.train.forward import forward

# The names of the inference graph's inputs and outputs (and of an export's signature).
IMAGES, PIXELS, PROBABILITIES, CLASS_IDS = "images", "pixels", "probabilities", "class_ids"
DEFAULT_DATASET = "fashion"  # as `zoo run`, for a model the registry names no dataset for


class NoTrainedRun(ZooError):
    """The store holds no completed run of a model on a dataset."""

    def __init__(self, model: str, dataset: str):
        super().__init__(f"no completed run of {model} on {dataset} in the store: train one "
                         f"with `zoo run {model} --dataset {dataset}`")
        self.model, self.dataset = model, dataset


@dataclass
class InferenceGraph:
    """The tensors of a run's inference graph."""

    graph: Any
    images: Any  # uint8 [batch, H, W, C] placeholder, named "images"
    pixels: Any  # float32 [batch, H, W, C] in [0, 1]: the scaled images, or fed directly
    probabilities: Any  # float32 [batch, classes], named "probabilities"
    class_ids: Any  # int64 [batch], named "class_ids"
    saver: Any  # restores the model's variables from a run's checkpoint


def inference_graph(model: ModelSpec, hparams: Mapping[str, Any], image_shape,
                    num_classes: int, seed: int = 0) -> InferenceGraph:
    """A fresh graph (seed first) around ``model.build`` for inference: no loss, no
    optimizer, ``training`` False; its variables are named as in training.

    Raises:
        BuilderError, LogitsError, PluginError: the builder failed (see ``forward``).
    """
    tf = import_tf()
    v1 = tf.compat.v1
    h, w, c = image_shape
    graph = tf.Graph()
    with graph.as_default():
        seed_graph(tf, seed)
        images = v1.placeholder(tf.uint8, [None, h, w, c], name=IMAGES)
        pixels = v1.placeholder_with_default(to_float_op(tf, images), [None, h, w, c],
                                             name=PIXELS)
        training = v1.placeholder_with_default(False, [], name="training")
        net = forward(model, pixels, training, num_classes=num_classes, hparams=hparams)
        probabilities = tf.nn.softmax(net.logits, name=PROBABILITIES)
        class_ids = tf.argmax(net.logits, axis=1, output_type=tf.int64, name=CLASS_IDS)
        # the graph holds the model's variables only (no optimizer, no step), so a checkpoint
        # of the model's weights alone restores as well as a training one
        saver = v1.train.Saver(var_list=v1.global_variables())
    graph.finalize()
    return InferenceGraph(graph, images, pixels, probabilities, class_ids, saver)


class Classifier:
    """A run's model, restored and ready: :meth:`probabilities` of a batch of images.

    Use it as a context manager (it holds a Session): ``with Classifier.load(zoo, record)
    as c: c.probabilities(x)``.
    """

    def __init__(self, record: RunRecord, model: ModelSpec, dataset: DatasetSpec,
                 settings: RunSettings):
        self.record, self.model, self.dataset, self.settings = record, model, dataset, settings
        self.g = inference_graph(model, settings.hparams, dataset.image_shape,
                                 dataset.num_classes, record.seed)
        self._stack = ExitStack()
        self.session = None

    @classmethod
    def load(cls, zoo: Zoo, record: RunRecord) -> Classifier:
        """The run's model with its recorded settings, its best checkpoint restored.

        Raises:
            UsageError: the run's model or dataset is not installed.
            TrainingError: the run has no checkpoint, or a damaged one.
        """
        spec = zoo.model(record.model)
        classifier = cls(record, spec, zoo.dataset(record.dataset),
                         recorded_settings(record, spec.hparams, as_ran=True))
        classifier.open()
        return classifier

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    def open(self) -> None:
        run_dir = Path(self.record.run_dir)
        prefix = checkpoints.best_prefix(run_dir)
        self.session = self._stack.enter_context(best_session(
            self.g.graph, self.g.saver, self.settings.trainer, run_dir, prefix, "used"))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, classes] for images [N, H, W, C] (uint8, or float in [0, 1]), scaled
        as the trainer scales them (:func:`zoo_core.data.to_float`)."""
        x = to_float(images)
        out = np.empty((len(x), self.dataset.num_classes), np.float32)
        with graph_errors(self.model, self.dataset.image_shape, self.dataset.num_classes,
                          "predicting"):
            for start in range(0, len(x), EVAL_BATCH):
                out[start:start + EVAL_BATCH] = self.session.run(
                    self.g.probabilities, {self.g.pixels: x[start:start + EVAL_BATCH]})
        return out

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def top_classes(probabilities: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """For each row, the ``k`` most probable (class id, probability), most probable first
    (the lower class id first on a tie)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(int(i), float(row[i])) for i in ids] for row, ids in zip(probabilities, order)]


def predict(classifier: Classifier, found: list, top: int) -> list[dict[str, Any]]:
    """``zoo predict``'s answer for the images of ``found`` (:class:`~zoo_core.serving.images.
    Images`, one per file): per image, its name and the ``top`` classes, most probable first,
    each ``{"class", "class_id", "probability"}``."""
    probabilities = classifier.probabilities(np.concatenate([to_float(f.array) for f in found]))
    names = [n for f in found for n in f.names()]
    return [{"image": name, "top": [{"class": classifier.classes[i], "class_id": i,
                                     "probability": p} for i, p in best]}
            for name, best in zip(names, top_classes(probabilities, top))]


def is_model_name(zoo: Zoo, name: str) -> bool:
    """Whether ``name`` names a model (installed, or in the catalogue) rather than a run."""
    return name in zoo.models or name in zoo.catalogue.models


def default_dataset(zoo: Zoo, model: str) -> str:
    """The dataset a model name means without ``--dataset``: the first the registry lists
    for it, else :data:`DEFAULT_DATASET`."""
    entry = zoo.catalogue.models.get(model)
    return next(iter(entry.datasets), DEFAULT_DATASET) if entry is not None else DEFAULT_DATASET


def resolve_model_run(zoo: Zoo, store: Store, model: str, dataset: str,
                      progress: DownloadProgress | None = None) -> RunRecord:
    """The run ``zoo predict MODEL`` (and ``zoo export MODEL``) uses: the best completed run
    of ``model`` on ``dataset`` in ``store``. Best is the highest validation accuracy (the
    test split chooses nothing), full runs before quick tries made with ``--limit``, the
    latest on a tie. With none, the model's published weights for ``dataset`` (a pack
    shipped in its plugin, else downloaded: :func:`~zoo_core.serving.weights.ensure_weights`)
    are imported into ``store`` and used.

    Raises:
        UsageError: ``model`` is not installed.
        NoTrainedRun: the store has no completed run of it on ``dataset``, and the model
            declares no weights for it.
    """
    zoo.model(model)  # installed, or the reason it is not
    zoo.dataset(dataset)
    best = store.best_run(model, dataset)
    if best is None:
        pulled = weights.ensure_weights(zoo, store, model, dataset, progress)
        if pulled is None:
            raise NoTrainedRun(model, dataset)
        return store.get(pulled)
    return best
