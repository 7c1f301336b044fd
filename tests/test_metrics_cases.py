"""qgnb.metrics.cases: each hand-built map shows the failure mode notebook 01 says it shows."""

import numpy as np
import pytest

from qgnb.data import shapes
from qgnb.metrics import score
from qgnb.metrics.cases import CASE_NAMES, NEAR_MISS_OFFSET, blob, failure_cases

# Boxes with the most room on each of the four sides, plus shapes-benchmark targets.
BOXES = [[4, 20, 24, 40], [40, 24, 60, 44], [22, 4, 38, 20], [22, 44, 42, 62]]
BOXES += [shapes("id", n=6, seed=0)[k].boxes[0] for k in range(6)]


def scored(box, tol=0):
    """Score every case of ``box`` in a 64x64 image, one row per case name."""
    maps = failure_cases(box, 64, 64)
    return score(np.stack(list(maps.values())), [[box]] * len(maps), tol=tol, ids=list(maps))


def test_blob_is_an_exact_gaussian_on_pixel_centres():
    b = blob(5, 7, 2, 3, sigma=2.0, peak=0.5)
    assert b[2, 3] == 0.5 and b.argmax() == 2 * 7 + 3
    assert b[2, 5] == pytest.approx(0.5 * np.exp(-4 / 8))
    assert b[0, 3] == b[4, 3] == b[2, 1] == b[2, 5]


@pytest.mark.parametrize("box", BOXES)
def test_each_case_shows_its_failure_mode(box):
    t = scored(box).set_index("id")
    assert list(t.index) == list(CASE_NAMES)
    good = t.loc["good map"]
    assert (good.pg_hit, good.pg_uncertain) == (1.0, 0.0) and good.io_ratio > 0.5
    spurious = t.loc["spurious peak outside"]
    assert spurious.pg_hit == 0.0 and spurious.io_ratio > 0.5
    ties = t.loc["equal peaks across the edge"]
    assert ties.pg_uncertain == 1.0 and ties.n_top_peaks == 2
    outside = t.loc["hit, mass outside"]
    assert outside.pg_hit == 1.0 and outside.io_ratio < 0.2
    assert t.loc["miss by a pixel"].pg_hit == 0.0
    assert t.loc["near miss (tolerance)"].pg_hit == 0.0


@pytest.mark.parametrize("box", BOXES[:4])
def test_tolerance_flips_the_misses_into_hits(box):
    maps = failure_cases(box, 64, 64)
    first_outside = np.unravel_index(maps["miss by a pixel"].argmax(), (64, 64))
    near = np.unravel_index(maps["near miss (tolerance)"].argmax(), (64, 64))
    x1, y1, x2, y2 = box
    # distance from each maximum's pixel to the nearest pixel of the box, in whole pixels
    assert max(x1 - first_outside[1], first_outside[1] - (x2 - 1),
               y1 - first_outside[0], first_outside[0] - (y2 - 1)) == 1
    assert max(x1 - near[1], near[1] - (x2 - 1), y1 - near[0], near[0] - (y2 - 1)) == (
        NEAR_MISS_OFFSET)
    for tol, expected in [(0, 0.0), (1, 1.0), (9, 1.0)]:
        assert scored(box, tol).set_index("id").loc["miss by a pixel"].pg_hit == expected
    for tol, expected in [(9, 0.0), (10, 1.0), (15, 1.0)]:
        assert scored(box, tol).set_index("id").loc["near miss (tolerance)"].pg_hit == expected


def test_failure_cases_reject_a_box_without_room_or_with_fractions():
    with pytest.raises(ValueError, match=r"box \[2, 2, 60, 60\] leaves at most 4 px"):
        failure_cases([2, 2, 60, 60], 64, 64)
    with pytest.raises(ValueError, match="must be integer xyxy"):
        failure_cases([2.5, 2, 20, 20], 64, 64)

