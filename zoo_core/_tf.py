"""The one place that prepares and imports TensorFlow.

TF 2.16+ ships Keras 3, which removed the v1 RNN cells and ``tf.compat.v1.layers``.
With ``tf-keras`` installed and ``TF_USE_LEGACY_KERAS=1`` set before TensorFlow is
first imported, they work. :func:`configure_environment` runs when ``zoo_core`` is
imported (cheap: it only sets environment variables); :func:`tf` imports TensorFlow
lazily, so commands that do not train never pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import warnings


def configure_environment() -> None:
    """Set the variables TensorFlow reads at import time."""
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ INFO/WARNING/ERROR noise
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 for a moment.

    TF 2.17+ logs through absl before ``TF_CPP_MIN_LOG_LEVEL`` is read, so its
    import-time lines ("oneDNN custom operations are on", "Could not find cuda
    drivers") ignore the variable. Python exceptions still propagate.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. captured by a test runner)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tf():
    """Import TensorFlow, quietly, with legacy Keras; return the module."""
    configure_environment()
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":  # pragma: no cover - imported elsewhere first
        warnings.warn("TensorFlow was imported before zoo_core without TF_USE_LEGACY_KERAS=1; "
                      "the v1 RNN cells and tf.compat.v1.layers may be missing")
    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")
        import tensorflow as tf_mod  # here only: the one import of TensorFlow, on first use
    tf_mod.get_logger().setLevel(logging.ERROR)
    tf_mod.compat.v1.logging.set_verbosity(tf_mod.compat.v1.logging.ERROR)
    try:
        from absl import logging as absl_logging  # TensorFlow's logger: there once TF is

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover
        pass
    # Deprecation chatter from tf.compat.v1.layers and the v1 cells is expected here.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"tensorflow|tf_keras|keras")
    warnings.filterwarnings("ignore", message=r".*is deprecated.*", category=UserWarning)
    return tf_mod


def seed_graph(tf_mod, seed: int) -> None:
    """Seed the current default graph before any op exists.

    tf-keras initializers (used by ``tf.compat.v1.layers``) draw their op seeds from
    Python's ``random`` when given none, so it is seeded too, with NumPy's.
    """
    import numpy as np  # not at the top: importing zoo_core must not load numpy

    tf_mod.compat.v1.set_random_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
