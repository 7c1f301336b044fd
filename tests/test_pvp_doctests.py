"""The runnable examples in the qgnb.pvp docstrings give what they show."""

import doctest
import importlib

import pytest

MODULES = ["batch", "cards", "model", "parse", "probe", "queries", "reconstruct", "recipes",
           "regimes", "report", "segmentation", "tokenizer", "tower", "train"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    # By module path: the package re-exports functions under some module names.
    module = importlib.import_module(f"qgnb.pvp.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
