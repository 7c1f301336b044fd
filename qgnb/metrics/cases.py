"""Hand-built heatmaps on which the pointing game misleads (notebook 01's cases).

Each map is drawn around one ground-truth box from Gaussian blobs placed on pixel centres,
so every peak value is exact (1.0 is exactly 1.0) and each case shows one failure mode.
Blobs are combined with a pixel-wise maximum, not a sum, so that no blob's tail moves another
blob's peak value or position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CASE_NAMES = (
    "good map",
    "spurious peak outside",
    "equal peaks across the edge",
    "hit, mass outside",
    "miss by a pixel",
    "near miss (tolerance)",
)
# The near-miss peak lies this many pixels beyond the box edge (pixel centre 9.5 px away):
# a miss at tol=0, a hit at TorchRay's tol=15.
NEAR_MISS_OFFSET = 10


def blob(
    height: int, width: int, row: int, col: int, sigma: float, peak: float = 1.0
) -> np.ndarray:
    """An isotropic Gaussian of height ``peak`` centred on pixel ``(row, col)``.

    >>> b = blob(3, 3, 1, 1, sigma=1.0)
    >>> float(b[1, 1]), round(float(b[1, 2]), 4)
    (1.0, 0.6065)
    """
    rows, cols = np.mgrid[0:height, 0:width]
    return peak * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2.0 * sigma**2))


def _roomiest_side(box: Sequence[float], height: int, width: int) -> tuple[str, float]:
    x1, y1, x2, y2 = box
    rooms = {"left": x1, "right": width - x2, "up": y1, "down": height - y2}
    side = max(rooms, key=rooms.get)
    return side, rooms[side]


def _along(box: Sequence[float], side: str, offset: int) -> tuple[int, int]:
    """Pixel on the box's centre line, ``offset`` pixels beyond the edge facing ``side``.

    ``offset`` 1 is the first pixel outside; 0 the last pixel inside, -1 the one before it.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    row_mid, col_mid = (y1 + y2 - 1) // 2, (x1 + x2 - 1) // 2
    if side == "right":
        return row_mid, x2 - 1 + offset
    if side == "left":
        return row_mid, x1 - offset
    if side == "down":
        return y2 - 1 + offset, col_mid
    return y1 - offset, col_mid


def failure_cases(box: Sequence[float], height: int, width: int) -> dict[str, np.ndarray]:
    """Six maps around ``box`` (integer ``xyxy``): a good one and five that fool the pointing game.

    Outside activation is placed on the side of the box with the most room. The cases:

    - ``good map``: one blob centred in the box; hit, certain, most mass inside.
    - ``spurious peak outside``: a broad blob (0.9) fills the box, a sharp spike (1.0) sits
      outside: a miss, although most of the mass is inside.
    - ``equal peaks across the edge``: two sharp peaks of exactly 1.0, three pixels inside
      and three outside the edge: the verdict hangs on a tie, PG uncertain.
    - ``hit, mass outside``: a sharp spike (1.0) at the box centre, a broad blob (0.8) outside:
      a hit, although most of the mass is outside.
    - ``miss by a pixel``: a broad blob whose maximum is the first pixel outside the edge.
    - ``near miss (tolerance)``: a blob whose maximum is ``NEAR_MISS_OFFSET`` pixels outside:
      a miss at ``tol=0``, a hit at ``tol=15``.

    >>> maps = failure_cases([20, 20, 40, 40], 64, 64)
    >>> list(maps) == list(CASE_NAMES), maps["good map"].shape
    (True, (64, 64))
    """
    x1, y1, x2, y2 = box
    if any(float(v) != int(v) for v in box) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"failure_cases: box {list(box)} must be integer xyxy with x1<x2, y1<y2")
    side, room = _roomiest_side(box, height, width)
    if room < NEAR_MISS_OFFSET + 4:
        raise ValueError(
            f"failure_cases: box {list(box)} leaves at most {room} px beside it in a "
            f"{width}x{height} image; the cases need {NEAR_MISS_OFFSET + 4}"
        )
    size = min(x2 - x1, y2 - y1)
    broad = max(size / 3.0, 2.0)
    centre = (int(y1 + y2 - 1) // 2, int(x1 + x2 - 1) // 2)

    def at(offset: int, sigma: float, peak: float = 1.0) -> np.ndarray:
        return blob(height, width, *_along(box, side, offset), sigma=sigma, peak=peak)

    return {
        "good map": blob(height, width, *centre, sigma=broad),
        "spurious peak outside": np.maximum(
            blob(height, width, *centre, sigma=broad, peak=0.9), at(6, sigma=1.0)
        ),
        "equal peaks across the edge": np.maximum(at(-2, sigma=1.0), at(3, sigma=1.0)),
        "hit, mass outside": np.maximum(
            blob(height, width, *centre, sigma=1.0), at(12, sigma=6.0, peak=0.8)
        ),
        "miss by a pixel": at(1, sigma=broad),
        "near miss (tolerance)": at(NEAR_MISS_OFFSET, sigma=2.0),
    }
