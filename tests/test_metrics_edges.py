"""Edge cases of score and find_peaks: flat maps, ties, tolerance, plateaus, bad input."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from qgnb.metrics import box_mask, find_peaks, score


def point_map(h, w, points):
    a = np.zeros((h, w), dtype=np.float32)
    for (r, c), v in points.items():
        a[r, c] = v
    return a


def check(maps, boxes, expected, **options):
    table = score(maps, boxes, **options)
    for name, values in expected.items():
        got = table[name].tolist()
        for g, e in zip(got, values, strict=True):
            if isinstance(e, float) and math.isnan(e):
                assert g is pd.NA or math.isnan(g), (name, got)
            else:
                assert g == pytest.approx(e, rel=1e-6), (name, got, values)


def check_error(maps, boxes, message, **options):
    with pytest.raises(ValueError, match=message):
        score(maps, boxes, **options)


def check_peaks(a, expected_peaks, expected_top, **options):
    peaks, is_top = find_peaks(a, **options)
    assert peaks.tolist() == expected_peaks
    assert is_top.tolist() == expected_top


nan = float("nan")


def test_flat_maps_are_nan_and_counted():
    maps = [np.zeros((3, 3)), -np.ones((3, 3)), np.full((3, 3), 0.3), point_map(3, 3, {(1, 1): 1})]
    check(maps, [[[0, 0, 3, 3]]] * 4, {
        "flat": [True, True, True, False], "pg_hit": [nan, nan, nan, 1.0],
        "soft_iou": [nan, nan, nan, 1 / 9], "wdp": [nan, nan, nan, 0.0],
        "n_top_peaks": [nan, nan, nan, 1]})


def test_tie_first_maximum_in_row_major_order_and_uncertain():
    # Equal maxima at (0, 2) and (2, 0); the box holds (2, 0) only. p* = (0, 2): a miss; the
    # two top peaks fall on both sides of M: uncertain.
    a = point_map(3, 3, {(0, 2): 1.0, (2, 0): 1.0})
    check([a], [[[0, 2, 1, 3]]], {"pg_hit": [0.0], "pg_uncertain": [1.0], "n_top_peaks": [2]})


def test_near_tie_counts_at_256_levels_not_exact():
    # 0.999 quantises to 255 like 1.0 (8-bit), 0.997 to 254.
    a = point_map(1, 9, {(0, 0): 1.0, (0, 8): 0.999})
    b = point_map(1, 9, {(0, 0): 1.0, (0, 8): 0.997})
    box = [[[0, 0, 1, 1]]]
    check([a, b], box * 2, {"n_top_peaks": [2, 1], "pg_uncertain": [1.0, 0.0]})
    check([a, b], box * 2, {"n_top_peaks": [1, 1], "pg_uncertain": [0.0, 0.0]}, levels=None)


def test_tolerance_distance_between_pixel_centres():
    # Box [0, 0, 4, 4] = pixels rows/cols 0-3; max at (15, 15): nearest (3, 3) at 16.97 px.
    a = point_map(20, 20, {(15, 15): 1.0})
    for tol, hit in [(0, 0.0), (16, 0.0), (17, 1.0)]:
        check([a], [[[0, 0, 4, 4]]], {"pg_hit": [hit]}, tol=tol)


def test_tolerance_boundary_is_inclusive():
    # Offset (9, 12) from the nearest mask pixel: distance exactly 15.
    a = point_map(20, 20, {(12, 15): 1.0})
    check([a], [[[0, 0, 4, 4]]], {"pg_hit": [1.0]}, tol=15)
    check([a], [[[0, 0, 4, 4]]], {"pg_hit": [0.0]}, tol=14.99)


def test_tolerance_applies_to_uncertainty():
    # Top peaks at (0, 0) (inside) and (0, 10), 8 px from the box's last column (2).
    a = point_map(1, 12, {(0, 0): 1.0, (0, 10): 1.0})
    check([a], [[[0, 0, 3, 1]]], {"pg_uncertain": [1.0]}, tol=7)
    check([a], [[[0, 0, 3, 1]]], {"pg_uncertain": [0.0]}, tol=8)


def test_plateau_gives_its_first_pixel():
    a = point_map(5, 5, {(1, 1): 1, (1, 2): 1, (2, 1): 1, (2, 2): 1, (4, 4): 0.5})
    check_peaks(a, [[1, 1], [4, 4]], [True, False], nms_window=3)
    check([a], [[[0, 0, 5, 5]]], {"n_top_peaks": [1]}, nms_window=3)


def test_plateau_wider_than_window_in_two_arms_gives_two_peaks():
    # A V-shaped plateau: (0,0),(1,1),(2,2) and (0,4),(1,3): the arms' first pixels are more
    # than a window apart, so each arm keeps one peak (documented rule).
    a = point_map(3, 5, {(0, 0): 1, (1, 1): 1, (2, 2): 1, (1, 3): 1, (0, 4): 1})
    check_peaks(a, [[0, 0], [0, 4]], [True, True], nms_window=3)
    check([a], [[[0, 0, 5, 3]]], {"n_top_peaks": [2]}, nms_window=3)


def test_nms_window_suppresses_lower_neighbours():
    a = point_map(1, 9, {(0, 2): 1.0, (0, 3): 0.6, (0, 7): 0.6})
    check_peaks(a, [[0, 2], [0, 7]], [True, False], nms_window=3)
    check_peaks(a, [[0, 2]], [True], nms_window=11)


def test_find_peaks_on_flat_map_is_empty():
    check_peaks(np.zeros((4, 4)), [], [])


def test_zero_background_has_no_peaks():
    # Level 0 is background: (0, 0) is the first pixel of a zero plateau but not a peak.
    check_peaks(point_map(1, 9, {(0, 8): 1.0}), [[0, 8]], [True], nms_window=3)


def test_box_mask_by_pixel_centres():
    # x in [0.5, 2.0] holds centres 0.5, 1.5; y in [0.0, 1.6] holds 0.5, 1.5 (edges included).
    assert box_mask([[0.5, 0.0, 2.0, 1.6]], 3, 3).astype(int).tolist() == [
        [1, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_errors_name_the_sample():
    good = point_map(4, 4, {(1, 1): 1.0})
    bad = good.copy()
    bad[2, 2] = np.nan
    check_error([good, bad], [[[0, 0, 2, 2]]] * 2, r"sample 1: map contains NaN")
    infinite = good.copy()
    infinite[0, 0] = -np.inf
    check_error(np.stack([good, infinite]), [[[0, 0, 2, 2]]] * 2, r"sample 1: map")
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


def test_id_column_first():
    table = score(torch.tensor(np.stack([point_map(2, 2, {(0, 0): 1})] * 2)),
                  [[[0, 0, 1, 1]]] * 2, ids=["x", "y"])
    assert list(table.columns[:2]) == ["id", "pg_hit"]
    assert table["id"].tolist() == ["x", "y"]


def test_empty_input_gives_empty_table():
    for maps in (np.zeros((0, 4, 4)), []):
        table = score(maps, [])
        assert len(table) == 0 and list(table.columns) == [
            "pg_hit", "pg_uncertain", "soft_iou", "soft_dice", "hard_iou", "hard_dice", "wdp",
            "io_ratio", "flat", "n_top_peaks"]
