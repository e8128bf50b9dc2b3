"""TEMPORARY alias while the architecture moves (issue 12): zoo_core.catalogue.plugins."""
import sys

from zoo_core.catalogue import plugins as _moved

sys.modules[__name__] = _moved
