"""zoo-rnn passes the zoo's conformance kit (zoo_core.testing), like any third party's plugin.

The same checks run from the command line: `zoo check rnn`.
"""

import pytest

from zoo_core import testing


@pytest.mark.parametrize("check", testing.checks("rnn"))
def test_conformance(check):
    check()


@pytest.mark.parametrize("check", testing.checks("rnn", overrides={"kernel": "sequence"}))
def test_conformance_of_the_sequence_kernel(check):
    check()
