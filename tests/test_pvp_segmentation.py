"""cIoU, mean IoU and the bootstrap interval of a cIoU gain, on hand-made masks."""

import numpy as np
import pytest

from qgnb.pvp.segmentation import ciou, ciou_gain, intersections_unions, mean_iou


def masks(*rows):
    return [np.array(r, bool) for r in rows]


# Sample 1: predicted 2 cells, target 1 of them -> I=1, U=2. Sample 2: I=3, U=4.
PRED = masks([[1, 1, 0, 0]], [[1, 1, 1, 1]])
TRUE = masks([[1, 0, 0, 0]], [[0, 1, 1, 1]])


def test_intersections_and_unions_by_hand():
    inter, union = intersections_unions(PRED, TRUE)
    assert inter.tolist() == [1, 3] and union.tolist() == [2, 4]


def test_ciou_is_summed_intersection_over_summed_union():
    assert ciou(PRED, TRUE) == pytest.approx(4 / 6)


def test_mean_iou_averages_per_sample():
    assert mean_iou(PRED, TRUE) == pytest.approx((1 / 2 + 3 / 4) / 2)


def test_ciou_weighs_large_objects_more_than_mean_iou():
    # A perfect tiny object and a missed large one.
    pred = masks([[1, 0, 0, 0, 0, 0, 0, 0]], [[0, 0, 0, 0, 0, 0, 0, 0]])
    true = masks([[1, 0, 0, 0, 0, 0, 0, 0]], [[1, 1, 1, 1, 1, 1, 1, 0]])
    assert ciou(pred, true) == pytest.approx(1 / 8)
    assert mean_iou(pred, true) == pytest.approx(0.5)


def test_empty_masks_and_mismatches():
    empty = masks([[0, 0]])
    assert ciou(empty, empty) == 1.0 and mean_iou(empty, empty) == 1.0
    assert mean_iou(masks([[0, 0]], [[1, 0]]), masks([[0, 0]], [[0, 1]])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sample 1: predicted mask"):
        ciou(masks([[1]], [[1, 0]]), masks([[1]], [[1]]))
    with pytest.raises(ValueError, match="2 predicted masks but 1 targets"):
        ciou(PRED, TRUE[:1])


def test_ciou_gain_is_the_difference_of_ratios_of_sums():
    ia, ua = np.array([1, 1, 2, 0]), np.array([2, 2, 2, 2])
    ib, ub = np.array([2, 2, 2, 1]), np.array([2, 2, 2, 2])
    result = ciou_gain(ia, ua, ib, ub)
    assert result["gain"] == pytest.approx(7 / 8 - 4 / 8)
    assert result["low"] <= result["gain"] <= result["high"]


def test_ciou_gain_interval_excludes_zero_only_for_a_consistent_gain():
    rng = np.random.default_rng(0)
    union = rng.integers(20, 40, size=60)
    base = (union * 0.5).astype(int)
    better = base + rng.integers(2, 5, size=60)  # every sample improves
    clear = ciou_gain(base, union, better, union)
    assert clear["low"] > 0
    noisy = base + rng.integers(-4, 5, size=60)  # no systematic change
    unclear = ciou_gain(base, union, noisy, union)
    assert unclear["low"] < 0 < unclear["high"]
