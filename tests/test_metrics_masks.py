"""The region M: pixels whose centres lie in a box (edges included), boxes clipped."""

import numpy as np

from qgnb.metrics import box_mask


def check_mask(boxes, h, w, expected):
    assert box_mask(boxes, h, w).astype(int).tolist() == expected


def test_box_mask_by_pixel_centres():
    # x in [0.5, 2.0] holds centres 0.5, 1.5; y in [0.0, 1.6] holds 0.5, 1.5 (edges included).
    check_mask([[0.5, 0.0, 2.0, 1.6]], 3, 3, [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_box_mask_union_and_clipping():
    # [3, 2, 4, 4] reaches below a 3-row image: only row 2 of column 3 remains.
    check_mask([[0, 0, 2, 1], [3, 2, 4, 4]], 3, 4, [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])


def test_box_mask_whole_image():
    check_mask([[-1, -1, 9, 9]], 2, 3, np.ones((2, 3), dtype=int).tolist())
