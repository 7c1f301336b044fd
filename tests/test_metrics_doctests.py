"""The runnable examples in the qgnb.metrics docstrings give what they show."""

import doctest

import pytest

from qgnb.metrics import aggregate, batched, peaks, prepare, reference


@pytest.mark.parametrize("module", [aggregate, batched, peaks, prepare, reference])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
