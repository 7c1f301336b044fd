"""The runnable examples in the docstrings of the real-data loaders give what they show."""

import doctest

import pytest

from qgnb.data import flickr30k, records, refcoco, spatialsense


@pytest.mark.parametrize("module", [flickr30k, records, refcoco, spatialsense])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
