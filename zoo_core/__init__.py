"""zoo: a plugin-based model zoo for TensorFlow v1-style graphs.

Plugins need only two names from here::

    from zoo_core import hookimpl, HParam

``RegisterModel`` and ``RegisterDataset`` describe the ``register`` callbacks the
registration hooks receive, for a plugin author to read and type-check against.
"""

from zoo_core._tf import configure_environment

configure_environment()  # before anyone imports TensorFlow (DESIGN.md, TensorFlow notes)

from zoo_core.catalogue.hookspecs import hookimpl  # noqa: E402
from zoo_core.catalogue.specs import HParam, RegisterDataset, RegisterModel  # noqa: E402

__version__ = "0.1.0"

__all__ = ["hookimpl", "HParam", "RegisterModel", "RegisterDataset", "__version__"]
