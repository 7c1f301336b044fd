"""Parse the language model's text answers back into colours and mask bits."""

from __future__ import annotations

import re

# Whitespace is allowed around every symbol: decoded token strings come back space-separated.
_RGB = re.compile(r"^\s*\[\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\]\s*$")
_BIT = re.compile(r"^\s*([01])\s*$")


def parse_rgb(text: str) -> tuple[int, int, int] | None:
    """``(r, g, b)`` from an answer like ``"[12,0,255]"``; None when malformed or out of 0-255.

    >>> parse_rgb("[ 12 , 0 , 255 ]"), parse_rgb("[12,0]"), parse_rgb("[300,0,0]")
    ((12, 0, 255), None, None)
    """
    match = _RGB.match(text)
    if match is None:
        return None
    rgb = tuple(int(v) for v in match.groups())
    if max(rgb) > 255:
        return None
    return rgb  # type: ignore[return-value]


def parse_mask_bit(text: str) -> int | None:
    """1 or 0 from a segmentation answer; None when it is anything else.

    >>> parse_mask_bit(" 1 "), parse_mask_bit("0"), parse_mask_bit("yes")
    (1, 0, None)
    """
    match = _BIT.match(text)
    return None if match is None else int(match.group(1))
