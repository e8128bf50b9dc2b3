"""zoo-legacy: the zoo finds the model, and it passes the zoo's conformance kit.

Install the plugin first (``pip install -e .``): the kit looks the model up by its
name, through the entry point, the way ``zoo run`` does. ``zoo check legacy``
runs the same checks from the command line.
"""

import pytest

import zoo_legacy
from zoo_core import testing
from zoo_core.registry import open_zoo


def test_registered_through_the_entry_point():
    spec = open_zoo().model("legacy")
    assert spec.build is zoo_legacy.build
    assert set(spec.hparams) == set(zoo_legacy.HPARAMS)


@pytest.mark.parametrize("check", testing.checks("legacy"))
def test_conformance(check):
    check()
