"""What a registration is: names, hyperparameter declarations, model and dataset specs,
and the ``register`` callbacks plugins receive (:class:`RegisterModel`,
:class:`RegisterDataset`).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from zoo_core.settings import HParam

# The four files of an IDX dataset, as registry.toml names them.
FILE_ROLES = ("train_images", "train_labels", "test_images", "test_labels")

# The name of a model or dataset, in a plugin's registration and in registry.toml.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
NAME_RULE = "use lower-case letters, digits, '-' and '_', starting with a letter"


def valid_name(text: object) -> bool:
    """Whether ``text`` is a valid model or dataset name (see :data:`NAME_PATTERN`)."""
    return isinstance(text, str) and NAME_PATTERN.fullmatch(text) is not None


@dataclass
class ModelSpec:
    """A registered model: a builder with its declared hyperparameters."""

    name: str
    build: Callable
    summary: str
    hparams: dict[str, HParam]
    plugin: str = ""  # the distribution (or plugin name) that registered it
    plugin_version: str = ""
    # The plugin's own defaults (register(defaults=..., dataset_defaults=...)): trainer
    # settings and hyperparameters, for every dataset and per dataset name.
    settings: dict[str, Any] = field(default_factory=dict)
    dataset_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Published weights per dataset (register(weights=...)): catalogue.weights.Weights.
    weights: dict[str, Any] = field(default_factory=dict)
    package: str = ""  # the plugin's module, where a declared weights ``file`` is found

    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.hparams.items()}


@dataclass
class DatasetSpec:
    """A dataset: how to load it and what it holds."""

    name: str
    summary: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    validation: int = 5000  # examples carved from the training set
    split_seed: int = 0
    # Either ``files`` (IDX files declared in registry.toml, loaded by the core), or
    # ``archive`` (one archive declared in registry.toml: its ``format``, ``file``, ``sha256``
    # and ``folder``, loaded by the core), or ``load`` (a plugin's loader function).
    files: dict[str, dict] = field(default_factory=dict)
    archive: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    load: Callable | None = None
    plugin: str = ""
    plugin_version: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# -------------------------------------------------------------- the register callbacks

class RegisterModel(Protocol):
    """The ``register`` callback :func:`zoo_register_models` receives.

    A plugin calls it once per model; the core checks the registration at once and
    raises :class:`zoo_core.errors.PluginError` saying how to fix a mistake, which fails
    the plugin (none of its registrations is kept) and leaves the rest of the zoo working.
    """

    def __call__(
        self,
        name: str,
        build: Callable[..., Any],
        *,
        summary: str,
        hparams: dict[str, HParam | bool | int | float | str] | None = None,
        inputs: Sequence[str] = ("image",),
        description: str = "",
        defaults: dict[str, Any] | None = None,
        dataset_defaults: dict[str, dict[str, Any]] | None = None,
        weights: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Register one model.

        Args:
            name: the model's name in ``zoo list`` and ``zoo run NAME``: lower-case
                letters, digits, ``-`` and ``_``, starting with a letter; unique across
                the installed plugins.
            build: the builder, ``build(images, *, num_classes, hparams, training) ->
                logits``: float32 images ``[batch, height, width, channels]`` in, float32
                logits ``[batch, num_classes]`` out; ``training`` is a boolean tensor.
            summary: one line for ``zoo list`` (not empty).
            hparams: the model's hyperparameters, name -> default value (bool, int,
                float or str) or -> :class:`HParam`. Names are identifiers and not a
                trainer setting (``epochs``, ``lr``, ...).
            inputs: the kinds of input the model accepts, a tuple of strings;
                ``("image",)`` is the only kind today, and every model gets images.
            description: longer text; accepted for compatibility, not shown.
            defaults: the plugin's defaults for trainer settings (``epochs``, ``lr``,
                ``batch_size``, ``lr_schedule``, ...) and for its own hyperparameters,
                e.g. ``{"lr": 0.005, "epochs": 20}``. They apply on every dataset.
            dataset_defaults: the same per dataset name, over ``defaults``, e.g.
                ``{"fashion": {"lr": 0.005}, "mnist": {"epochs": 5}}``. Settings merge as:
                these (``defaults``, then ``dataset_defaults``) < registry.toml (the
                model's table, then its per-dataset table) < the command line.
            weights: published trained weights per dataset name, each a pack made by
                ``zoo pack``: ``{"fashion": {"file": "weights/mynet-fashion.zoopack",
                "urls": [...], "sha256": ..., "config_id": ..., "test_accuracy": ...}}``
                (``file`` inside the plugin's package, tried before ``urls``; ``zoo pull``
                fetches them). registry.toml's ``[models.NAME.weights.DATASET]`` wins.
        """


class RegisterDataset(Protocol):
    """The ``register`` callback :func:`zoo_register_datasets` receives.

    A plugin calls it once per dataset; a mistake is a
    :class:`zoo_core.errors.PluginError` that fails the plugin, as for models.
    """

    def __call__(
        self,
        name: str,
        load: Callable[[Any], tuple],
        *,
        summary: str,
        classes: Sequence[str],
        image_shape: Sequence[int],
        validation: int = 5000,
    ) -> None:
        """Register one dataset.

        Args:
            name: the dataset's name for ``zoo run MODEL --dataset NAME``: lower-case
                letters, digits, ``-`` and ``_``, starting with a letter. A name that
                registry.toml already defines is ignored, and ``zoo plugins`` says so.
            load: the loader, ``load(data_dir) -> (train_images, train_labels,
                test_images, test_labels)``, numpy arrays: images ``[N, H, W, C]`` (or
                ``[N, H, W]``), uint8 (scaled to [0, 1] by the core) or float; labels
                integers ``[N]`` in ``range(len(classes))``. ``data_dir`` is the folder
                the user chose (a path), or None.
            summary: one line for ``zoo datasets`` (not empty).
            classes: the class names, at least two; labels index into it.
            image_shape: ``(height, width, channels)`` of every image.
            validation: how many training examples to carve off, with a fixed seed, as
                the validation split used for model selection.
        """
