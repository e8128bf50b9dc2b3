"""TEMPORARY alias while the architecture moves (issue 12): zoo_core.catalogue.registry."""
import sys

from zoo_core.catalogue import registry as _moved

sys.modules[__name__] = _moved
