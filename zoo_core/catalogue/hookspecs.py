"""The zoo's hook specifications: everything a plugin may implement, and nothing else.

A plugin is a module listed under the ``zoo`` entry-point group that implements
some of these hooks, marked with :data:`zoo_core.hookimpl`::

    from zoo_core import hookimpl

    @hookimpl
    def zoo_register_models(register):
        register("mynet", build, summary="My network", hparams={"width": 64})

Hooks are called with keyword arguments only. Registration hooks receive a
``register`` callback rather than returning values, so the core can validate each
registration and knows which plugin made it.
"""

from __future__ import annotations

import pluggy

from zoo_core.catalogue.specs import RegisterDataset, RegisterModel

PROJECT_NAME = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def zoo_register_models(register: RegisterModel):
    """Register graph builders (models) with the zoo.

    :param register: call ``register(name, build, *, summary, hparams=None,
        inputs=("image",), description="", defaults=None, dataset_defaults=None,
        weights=None)`` once per model (see
        :class:`~zoo_core.catalogue.specs.RegisterModel`); ``defaults`` and
        ``dataset_defaults`` are the plugin's trainer settings (``{"lr": 0.005}``),
        for every dataset and per dataset name; ``weights`` its published trained
        weights per dataset name (packs made by ``zoo pack``, shipped in the plugin's
        package or fetched from URLs: ``zoo pull``).
        ``build(images, *, num_classes, hparams, training) -> logits`` turns a
        float32 ``[batch, height, width, channels]`` tensor into
        ``[batch, num_classes]`` logits. ``hparams`` maps each declared
        hyperparameter name to its default (a bool, int, float or str) or to a
        :class:`zoo_core.HParam` with a type, bounds and help text.
    :return: nothing; the return value is ignored.
    """


@hookspec
def zoo_register_datasets(register: RegisterDataset):
    """Register datasets with the zoo.

    :param register: call ``register(name, load, *, summary, classes,
        image_shape, validation=5000)`` once per dataset (see
        :class:`~zoo_core.catalogue.specs.RegisterDataset`). ``load(data_dir)``
        returns ``(train_images, train_labels, test_images, test_labels)`` as
        numpy arrays: images uint8 or float ``[N, H, W, C]`` (uint8 is scaled
        to [0, 1]), labels integer ``[N]`` in ``range(len(classes))``.
        ``data_dir`` is the user's ``--data-dir`` or ``None``.
    :return: nothing; the return value is ignored.
    """


@hookspec
def zoo_run_finished(run):
    """Called after every ``zoo run`` ends, for reporters and notifiers.

    :param run: a :class:`zoo_core.store.records.RunRecord` with the run's status,
        settings and metrics, as stored in the results store.
    :return: nothing; the return value is ignored.
    """
