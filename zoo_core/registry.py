"""Deprecated: the registry moved into :mod:`zoo_core.catalogue` (docs/architecture.md).

Kept only so that the tests ``zoo new-plugin`` wrote before the move (``from
zoo_core.registry import open_zoo``) keep working; new code imports
``from zoo_core.catalogue import open_zoo``. It goes with the next minor release (0.2),
which scaffolded plugins do not accept (they pin ``zoo-core>=0.1.x,<0.2``).
"""

import warnings

from zoo_core.catalogue import open_zoo

__all__ = ["open_zoo"]

warnings.warn("zoo_core.registry is deprecated: use `from zoo_core.catalogue import open_zoo`",
              DeprecationWarning, stacklevel=2)
