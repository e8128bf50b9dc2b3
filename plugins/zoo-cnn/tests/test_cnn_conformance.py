"""zoo-cnn's models pass the zoo's conformance kit (zoo_core.testing), like any third
party's plugin. The same checks run from the command line: `zoo check cnn`.
"""

from zoo_core import testing


@testing.parametrize_checks("cnn", "cnn-bn", "resnet")
def test_conformance(check):
    check()
