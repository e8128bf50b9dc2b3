"""TEMPORARY alias while the architecture moves (issue 12): zoo_core.catalogue.hookspecs."""
import sys

from zoo_core.catalogue import hookspecs as _moved

sys.modules[__name__] = _moved
