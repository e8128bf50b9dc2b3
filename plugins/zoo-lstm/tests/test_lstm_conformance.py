"""zoo-lstm's models pass the zoo's conformance kit (zoo_core.testing), like any third
party's plugin. The same checks run from the command line: `zoo check lstm`.
"""

from zoo_core import testing


@testing.parametrize_checks("lstm", "lstm-stack")
def test_conformance(check):
    check()


@testing.parametrize_checks("lstm", "lstm-stack", overrides={"kernel": "sequence"})
def test_conformance_of_the_sequence_kernel(check):
    check()
