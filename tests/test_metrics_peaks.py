"""find_peaks and the top peaks behind PG uncertainty: NMS windows, plateaus, background."""

import numpy as np
import pandas as pd

from qgnb.metrics import find_peaks, score


def point_map(h, w, points):
    a = np.zeros((h, w), dtype=np.float32)
    for (r, c), v in points.items():
        a[r, c] = v
    return a


def check_peaks(a, expected_peaks, expected_top, **options):
    """find_peaks gives these peaks and top flags, and score counts the same top peaks."""
    peaks, is_top = find_peaks(a, **options)
    assert peaks.tolist() == expected_peaks
    assert is_top.tolist() == expected_top
    n_top = score(a[None], [[[0, 0, a.shape[1], a.shape[0]]]], **options)["n_top_peaks"].iloc[0]
    if expected_top:
        assert n_top == sum(expected_top)
    else:  # a flat map: no peaks, and n_top_peaks is missing
        assert n_top is pd.NA


def test_plateau_gives_its_first_pixel():
    a = point_map(5, 5, {(1, 1): 1, (1, 2): 1, (2, 1): 1, (2, 2): 1, (4, 4): 0.5})
    check_peaks(a, [[1, 1], [4, 4]], [True, False], nms_window=3)


def test_plateau_wider_than_window_in_two_arms_gives_two_peaks():
    # A V-shaped plateau: (0,0),(1,1),(2,2) and (0,4),(1,3): the arms' first pixels are more
    # than a window apart, so each arm keeps one peak (documented rule).
    a = point_map(3, 5, {(0, 0): 1, (1, 1): 1, (2, 2): 1, (1, 3): 1, (0, 4): 1})
    check_peaks(a, [[0, 0], [0, 4]], [True, True], nms_window=3)


def test_nms_window_suppresses_lower_neighbours():
    a = point_map(1, 9, {(0, 2): 1.0, (0, 3): 0.6, (0, 7): 0.6})
    check_peaks(a, [[0, 2], [0, 7]], [True, False], nms_window=3)
    check_peaks(a, [[0, 2]], [True], nms_window=11)


def test_find_peaks_on_flat_map_is_empty():
    check_peaks(np.zeros((4, 4)), [], [])


def test_zero_background_has_no_peaks():
    # Level 0 is background: (0, 0) is the first pixel of a zero plateau but not a peak.
    check_peaks(point_map(1, 9, {(0, 8): 1.0}), [[0, 8]], [True], nms_window=3)



def test_top_level_threshold_is_the_first_float_at_the_top_level():
    # The bisection's threshold t: quantise(t / max) is the top level, the float below is not.
    import torch

    from qgnb.metrics.batched import _top_level_threshold
    from qgnb.metrics.peaks import quantise

    for dtype in (torch.float32, torch.float64):
        top = torch.tensor([1.0, 3.7, 1e-30, 2.5e20], dtype=dtype)
        for levels in (256, 4, None):
            t = _top_level_threshold(top, top, levels)
            level = quantise(torch.ones((), dtype=dtype), levels)
            below = torch.nextafter(t, torch.zeros_like(t))
            assert (quantise(t / top, levels) == level).all()
            assert (quantise(below / top, levels) < level).all()
    assert _top_level_threshold(torch.tensor([1.0]), torch.tensor([1.0]), None).item() == 1.0
