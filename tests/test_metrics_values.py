"""Hand-computed metric values on maps of a few pixels (Captum style: input -> expected)."""

import math

import numpy as np
import pytest
import torch

from qgnb.metrics import score

# Both CPU paths of score: compiled (the default) and eager torch (as on GPUs).
pytestmark = pytest.mark.usefixtures("cpu_path")

# Raw map (one negative value, removed by the ReLU); prepared A = relu(RAW) / 2 is
#   [[0, .5, 1, 0], [0, .25, .5, 0], [0, 0, 0, .25]]: sum 2.5.
RAW = [[0.0, 1.0, 2.0, 0.0], [-3.0, 0.5, 1.0, 0.0], [0.0, 0.0, 0.0, 0.5]]
# Box [1, 0, 3, 2] holds the pixel centres of rows 0-1, columns 1-2: |M| = 4, S_in = 2.25.
BOX = [[1, 0, 3, 2]]


def check_row(maps, boxes, expected, **options):
    row = score(maps, boxes, **options).iloc[0]
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-6, abs=1e-12), name


def test_every_metric_by_hand():
    check_row(torch.tensor([RAW]), [BOX], {
        "pg_hit": 1.0,                       # max at (0, 2), inside M
        "pg_uncertain": 0.0,                 # one top peak
        "n_top_peaks": 1,
        "soft_iou": 2.25 / (4 + 0.25),       # sum min(A, M) / sum max(A, M)
        "soft_dice": 2 * 2.25 / (2.5 + 4),
        "hard_iou": 3 / 4,                   # A >= .5 at (0,1), (0,2), (1,2): all inside
        "hard_dice": 2 * 3 / (3 + 4),
        # only (2, 3) lies outside: centre (3.5, 2.5), 0.5 px right of and below the box
        "wdp": 0.25 * math.hypot(0.5, 0.5) / 5.0 / 2.5,   # diagonal sqrt(3^2 + 4^2) = 5
        "io_ratio": 2.25 / 2.5,
        "flat": False,
    })


def test_every_metric_scale_invariant():
    check_row(torch.tensor([RAW]) * 37.5, [BOX], {
        "soft_iou": 9 / 17, "soft_dice": 9 / 13, "hard_iou": 0.75, "hard_dice": 6 / 7,
        "wdp": math.sqrt(0.5) / 50, "io_ratio": 0.9, "pg_hit": 1.0, "pg_uncertain": 0.0})


def test_whole_image_box():
    check_row(np.array([RAW]), [[[0, 0, 4, 3]]], {
        "pg_hit": 1.0, "pg_uncertain": 0.0, "soft_iou": 2.5 / 12, "soft_dice": 5 / 14.5,
        "hard_iou": 3 / 12, "hard_dice": 6 / 15, "wdp": 0.0, "io_ratio": 1.0})


def test_box_partly_outside_is_clipped():
    # [-10, -10, 2, 1] clips to [0, 0, 2, 1]: row 0, columns 0-1; S_in = 0.5, |M| = 2.
    check_row(np.array([RAW]), [[[-10, -10, 2, 1]]], {
        "pg_hit": 0.0, "io_ratio": 0.5 / 2.5, "soft_iou": 0.5 / (2 + 2.0),
        "soft_dice": 1.0 / 4.5, "hard_iou": 1 / 4, "hard_dice": 2 / 5})


def test_union_of_two_boxes():
    # Boxes [2, 0, 3, 1] -> pixel (0, 2) and [3, 2, 4, 3] -> pixel (2, 3): S_in = 1.25, |M| = 2.
    check_row(np.array([RAW]), [[[2, 0, 3, 1], [3, 2, 4, 3]]], {
        "pg_hit": 1.0, "io_ratio": 1.25 / 2.5, "soft_iou": 1.25 / (2 + 1.25),
        "soft_dice": 2.5 / 4.5, "hard_iou": 1 / 4, "hard_dice": 2 / 5,
        # outside: (0,1)=.5 at 0.5 px; (1,1)=.25 at hypot(.5,.5); (1,2)=.5 at 0.5 px
        "wdp": (0.5 * 0.5 + 0.25 * math.hypot(0.5, 0.5) + 0.5 * 0.5) / 5 / 2.5})


def test_hard_threshold_option():
    # A >= .25: five pixels, four of them inside M.
    check_row(np.array([RAW]), [BOX], {"hard_iou": 4 / 5, "hard_dice": 8 / 9}, threshold=0.25)


def test_io_ratio_zero_when_nothing_inside():
    check_row(np.array([RAW]), [[[0, 2, 1, 3]]], {"io_ratio": 0.0, "soft_iou": 0.0,
                                                  "pg_hit": 0.0, "hard_iou": 0.0})


def test_many_overlapping_boxes():
    # 12 boxes on a 6x6 map: nested, overlapping, duplicated. M = rows 0-3 x cols 0-3 plus
    # row 5 x cols 0-5: 16 + 6 = 22 pixels. A = 1 at (0, 0) only: soft IoU = 1 / 22.
    boxes = [[0, 0, 4, 4], [1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 4, 4], [0, 5, 6, 6],
             [0, 5, 3, 6], [3, 5, 6, 6], [0, 0, 4, 4], [1, 0, 2, 4], [0, 1, 4, 2],
             [2.5, 2.5, 3.5, 3.5], [5, 5, 6, 6]]
    a = np.zeros((1, 6, 6))
    a[0, 0, 0] = 1.0
    check_row(a, [boxes], {"soft_iou": 1 / 22, "soft_dice": 2 / 23, "hard_iou": 1 / 22,
                           "io_ratio": 1.0, "wdp": 0.0, "pg_hit": 1.0})
