"""Testing graph builders: small helpers, and the conformance kit.

Helpers for a plugin's own tests::

    from zoo_core import testing

    def test_logits():
        images, _ = testing.real_images(16)
        logits = testing.run_builder(my_plugin.build, images, my_plugin.HPARAMS)
        assert logits.shape == (16, 10)

The conformance kit checks the builder contract (DESIGN.md, "The plugin
contract") the way the trainer will exercise it, in the spirit of scikit-learn's
``check_estimator``: named checks, each one skippable, each failure saying which
check, what was expected and what happened. From pytest::

    @pytest.mark.parametrize("check", testing.checks("mynet"))
    def test_conformance(check):
        check()

(or ``@testing.parametrize_checks("mynet", "mynet-large", skip=[...])``), and from
the command line: ``zoo check mynet [--skip NAME ...]``.

The checks (:data:`CHECKS`, in order):

``fresh_graph``
    builds in the trainer's fresh graph and again in a bare one, with the same
    variables; adds nothing to any other graph, leaves the default graph and the
    graph seed alone, does not change ``hparams``.
``logits_shape``
    float32 ``[batch, num_classes]`` logits, with a free batch dimension, for
    batches of 1, 3 and 17 images of every accepted shape (28x28x1, 20x12x1 and
    32x32x3 unless narrowed with ``shapes=``), with 10, 7 and 4 classes.
``batch_independence``
    with ``training`` off, an image's logits do not depend on the rest of its
    batch (catches reshapes that mix examples).
``training_flag``
    the ``training`` tensor switches dropout and batch norm: evaluation is
    deterministic, training differs from it, batch-norm moving statistics
    update. Applicable when the model declares a dropout-like hyperparameter
    (a float or bool whose name contains ``drop`` or ``keep_prob``; one that
    is off is switched on for the check), uses batch norm, or its logits
    depend on ``training`` at all; otherwise skipped as not applicable.
``seed_determinism``
    two fresh graphs with the same seed give identical initial weights and
    logits (training off and on), two runs identical losses over a few Adam
    steps; another seed gives other weights.
``all_variables_train``
    every trainable variable gets a gradient and changes during training.
``overfit_one_batch``
    fits 32 real Fashion-MNIST training images to 90% training accuracy (with
    ``training`` on, as the trainer measures it) within 200 full-batch Adam
    steps at the trainer's default learning rate.
``hparams_honoured``
    the builder reads only declared hyperparameters, and changing each declared
    one (to another valid value) changes the parameter count or the outputs.

Graphs are built with :func:`zoo_core.train.graph.build_graph` (what ``zoo run``
does) wherever training is involved; the other checks build the forward pass
alone, calling the builder exactly as the trainer does
(:func:`zoo_core.train.forward.forward`: seed first, scope ``model``, a ``training``
tensor), to stay fast. Sessions skip Grappler's graph rewrites for the same reason.

The package, from the bottom up:

- ``kit.py``: the vocabulary: :class:`Check`, :class:`CheckResult`,
  :class:`CheckFailure`, how a check fails or does not apply, and the kit's numbers
  (:data:`DEFAULT_SHAPES`, batch sizes, steps, targets).
- ``diagnose.py``: what went wrong and where: the builder's errors, logits the core
  refuses, TensorFlow's run-time errors, the plugin's file and line.
- ``subject.py``: the model under test (``Subject``): its forward and trained
  graphs, sessions and training batch, and the traced builder that sees what
  ``build()`` reads and changes.
- ``checks_graph.py`` (``fresh_graph``, ``logits_shape``, ``batch_independence``),
  ``checks_training.py`` (``training_flag``, ``seed_determinism``,
  ``all_variables_train``, ``overfit_one_batch``), ``checks_hparams.py``
  (``hparams_honoured``): the checks, by what they check.
- ``suite.py``: :data:`CHECKS` in order, :class:`BoundCheck`, and :func:`checks`,
  :func:`run_checks`, :func:`check_model`, :func:`parametrize_checks`.
- ``helpers.py``: :func:`real_images`, :func:`run_builder`, :func:`defaults`,
  :func:`forward_graph` (the forward pass alone, for a plugin's tests of its graph),
  :func:`short_run` (a short real training run, as ``zoo run`` trains, nothing recorded).
- ``kernels.py``: :func:`assert_same_function`: two kernels of one model (its original
  graph and a faster one) give the same logits and gradients for the same weights;
  :func:`loss_graph`, the graph it compares.

Everything a plugin uses is importable from ``zoo_core.testing`` (:data:`__all__`);
the modules are the kit's own business.
"""

from zoo_core.testing.helpers import (
    defaults, forward_graph, real_images, run_builder, short_run,
)
from zoo_core.testing.kit import (
    BATCH_SIZES, CLASS_COUNTS, DEFAULT_SHAPES, OVERFIT_STEPS, OVERFIT_TARGET, SEED_STEPS,
    TRAIN_IMAGES, Check, CheckFailure, CheckResult,
)
from zoo_core.testing.suite import (
    CHECKS, BoundCheck, check_model, checks, parametrize_checks, run_checks,
)
from zoo_core.testing.kernels import LossGraph, assert_same_function, loss_graph

__all__ = [
    # running the kit
    "checks", "run_checks", "check_model", "parametrize_checks",
    "CHECKS", "Check", "CheckResult", "CheckFailure", "BoundCheck",
    # the kit's numbers
    "DEFAULT_SHAPES", "BATCH_SIZES", "CLASS_COUNTS", "TRAIN_IMAGES", "SEED_STEPS",
    "OVERFIT_STEPS", "OVERFIT_TARGET",
    # helpers for a plugin's own tests
    "real_images", "run_builder", "defaults", "forward_graph", "short_run",
    # a faster kernel against the original graph
    "assert_same_function", "loss_graph", "LossGraph",
]
