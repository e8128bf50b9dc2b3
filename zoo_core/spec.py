"""TEMPORARY alias while the architecture moves (issue 12): zoo_core.catalogue.specs."""
import sys

from zoo_core.catalogue import specs as _moved

sys.modules[__name__] = _moved
