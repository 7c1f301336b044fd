"""The runnable examples in the docstrings of the explainers and the paper table give what
they show."""

import doctest

import pytest
import transformers

from qgnb.explain import (
    albef,
    albef_model,
    blip,
    clip,
    cross_attention,
    openclip,
    paper_table,
    recipes,
)

transformers.logging.set_verbosity_error()


@pytest.mark.parametrize("module", [recipes, blip, albef, albef_model, clip, openclip,
                                    cross_attention, paper_table])
def test_docstring_examples(module):
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
