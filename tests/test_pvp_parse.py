"""Answer parsing: well-formed, malformed and out-of-range answers."""

import pytest

from qgnb.pvp.parse import parse_mask_bit, parse_rgb
from qgnb.pvp.tokenizer import build_tokenizer


@pytest.mark.parametrize("text, expected", [
    ("[12,0,255]", (12, 0, 255)),
    ("[ 12 , 0 , 255 ]", (12, 0, 255)),  # decoded tokens come back space-separated
    ("  [0,0,0]\n", (0, 0, 0)),
    ("[12,0]", None),  # two channels
    ("[12,0,255,3]", None),  # four
    ("12,0,255", None),  # no brackets
    ("[12,0,255", None),
    ("[a,0,255]", None),
    ("[-1,0,0]", None),
    ("[256,0,0]", None),  # out of range
    ("[1000,0,0]", None),
    ("[1,2,3] [4,5,6]", None),  # trailing text
    ("", None),
])
def test_parse_rgb(text, expected):
    assert parse_rgb(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("1", 1), ("0", 0), (" 1 ", 1), ("2", None), ("10", None), ("", None), ("one", None),
    ("[1]", None),
])
def test_parse_mask_bit(text, expected):
    assert parse_mask_bit(text) == expected


def test_decoded_answer_tokens_parse_back():
    tok = build_tokenizer(["the"])
    ids = tok.encode("[7,128,255]") + [tok.eos_id, tok.encode("9")[0]]
    assert parse_rgb(tok.decode(ids)) == (7, 128, 255)  # stops at <eos>
