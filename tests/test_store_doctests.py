"""The runnable examples in the docstrings of the store, evaluate, the command line and
qgnb.testing give what they show."""

import doctest
import importlib

import pytest

MODULES = ["qgnb.explain.base", "qgnb.explain.store", "qgnb.explain.evaluate", "qgnb.cli",
           "qgnb.testing"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
