"""Bad input to score raises ValueError naming the sample (and its id)."""

import numpy as np
import pytest

from qgnb.metrics import score

# Both CPU paths of score: compiled (the default) and eager torch (as on GPUs).
pytestmark = pytest.mark.usefixtures("cpu_path")


def point_map(h, w, points):
    a = np.zeros((h, w), dtype=np.float32)
    for (r, c), v in points.items():
        a[r, c] = v
    return a


def check_error(maps, boxes, message, **options):
    with pytest.raises(ValueError, match=message):
        score(maps, boxes, **options)


def test_errors_name_the_sample():
    good = point_map(4, 4, {(1, 1): 1.0})
    bad = good.copy()
    bad[2, 2] = np.nan
    check_error([good, bad], [[[0, 0, 2, 2]]] * 2, r"sample 1: map contains NaN")
    for value, where in [(-np.inf, (0, 0)), (np.inf, (3, 3)), (np.nan, (0, 0)),
                         (-np.inf, (3, 3))]:
        infinite = good.copy()
        infinite[where] = value
        check_error(np.stack([good, infinite]), [[[0, 0, 2, 2]]] * 2,
                    r"sample 1: map contains NaN or infinite values")
    check_error([good, bad], [[[0, 0, 2, 2]]] * 2, r"sample 1 \(id 'b'\)", ids=["a", "b"])
    check_error([good, good], [[[0, 0, 2, 2]], [[3, 0, 1, 2]]], r"sample 1: .*x2 < x1")
    check_error([good], [[[0, 3, 2, 1]]], r"sample 0: .*y2 < y1")
    check_error([good], [[[0, 0, np.inf, 2]]], r"sample 0: .*not finite")
    check_error([good, good], [[[0, 0, 2, 2]], []], r"sample 1: has no box")
    check_error([good], [[[5, 0, 9, 3]]], r"sample 0: box \[5, 0, 9, 3\] covers no pixel")
    check_error([good], [[[0.6, 0, 1.4, 3]]], r"covers no pixel centre")
    check_error([good, good], [[[0, 0, 2, 2]]], r"len\(maps\) = 2 but len\(boxes\) = 1")
    check_error(good, [[[0, 0, 2, 2]]], r"\(N, H, W\) stack")
    check_error([good, good[0]], [[[0, 0, 2, 2]]] * 2, r"sample 1: map must be 2-D")
    check_error([good], [[[0, 0, 2, 2]]], r"nms_window must be an odd", nms_window=4)
    check_error([good], [[[0, 0, 2, 2]]], r"tol must be", tol=-1)

