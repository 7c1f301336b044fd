"""Edge cases of score: flat maps, ties, tolerance, empty input, ids."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from qgnb.metrics import score

# Both CPU paths of score: compiled (the default) and eager torch (as on GPUs).
pytestmark = pytest.mark.usefixtures("cpu_path")


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



def test_ids_from_a_series_with_its_own_index():
    ids = pd.Series(["p", "q"], index=[10, 20])
    table = score(np.stack([point_map(2, 2, {(0, 0): 1})] * 2), [[[0, 0, 1, 1]]] * 2, ids=ids)
    assert table["id"].tolist() == ["p", "q"]
    with pytest.raises(ValueError, match=r"sample 1 \(id 'q'\)"):
        score(np.stack([point_map(2, 2, {(0, 0): 1})] * 2), [[[0, 0, 1, 1]], []], ids=ids)
