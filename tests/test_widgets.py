"""qgnb.widgets: moving a control changes the numbers and the figure to what score() gives."""

import math

import numpy as np
import pytest

from qgnb.metrics import find_peaks, score
from qgnb.viz import mask_outline, prepare
from qgnb.widgets import MetricExplorer

RNG = np.random.default_rng(0)
IMAGES = [RNG.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
MAPS = [RNG.random((16, 16)), np.zeros((16, 16))]
MAPS[1][3, 12] = 1.0  # sample "b": one peak outside its box
BOXES = [[[2, 2, 8, 8]], [[0, 0, 4, 4], [12, 10, 16, 16]]]


def explorer():
    return MetricExplorer(IMAGES, MAPS, BOXES, labels=["a", "b"])


def expected(k, **options):
    """score() of sample ``k`` alone with the explorer's defaults overridden by ``options``."""
    kwargs = {"tol": 0, "nms_window": 3, "threshold": 0.5} | options
    return score(MAPS[k][None], [BOXES[k]], **kwargs).iloc[0]


def trace(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def test_threshold_slider_sets_the_hard_iou_shown_to_scores_value():
    ex = explorer()
    for t in (0.3, 0.75, 0.95):
        ex.threshold.value = t
        want = expected(0, threshold=t)
        assert ex.scores["hard_iou"].iloc[0] == pytest.approx(want.hard_iou)
        assert ex.scores["hard_dice"].iloc[0] == pytest.approx(want.hard_dice)
        assert f"<td>{want.hard_iou:.3f}</td>" in ex.numbers.value
        outline = trace(ex.figure, f"A ≥ {t:g}")
        want_x, want_y = mask_outline(prepare(MAPS[0]) >= t)
        assert list(outline.x) == want_x and list(outline.y) == want_y
    assert ex.scores["soft_iou"].iloc[0] == pytest.approx(expected(0).soft_iou)


def test_sample_dropdown_switches_map_boxes_and_scores():
    ex = explorer()
    ex.sample.value = 1
    assert ex.scores["id"].iloc[0] == "b"
    assert ex.scores["pg_hit"].iloc[0] == 0.0  # the peak at column 12, row 3 is in no box
    assert ex.figure.layout.title.text == "sample b"
    box = trace(ex.figure, "ground-truth box")
    assert list(box.x) == [0, 4, 4, 0, 0, None, 12, 16, 16, 12, 12, None]
    top = trace(ex.figure, "top peak")
    assert (list(top.x), list(top.y)) == ([12.5], [3.5])


def test_tolerance_slider_turns_the_near_miss_into_a_hit():
    ex = explorer()
    ex.sample.value = 1
    ex.tol.value = 6  # the nearest box pixel, (row 10, col 12), is 7 px below the peak
    assert ex.scores["pg_hit"].iloc[0] == 0.0
    ex.tol.value = 7
    assert ex.scores["pg_hit"].iloc[0] == expected(1, tol=7).pg_hit == 1.0
    circle = trace(ex.figure, "tolerance 7 px")  # drawn around the peak at (12.5, 3.5)
    assert np.allclose(np.hypot(np.array(circle.x) - 12.5, np.array(circle.y) - 3.5), 7)


def test_nms_window_slider_changes_the_peaks_drawn_and_counted():
    ex = explorer()
    assert ex.nms_window.value == 3  # the metrics' default for a 16x16 map
    for window in (1, 5, 7):
        ex.nms_window.value = window
        peaks, is_top = find_peaks(MAPS[0], nms_window=window)
        other = trace(ex.figure, "other peak")
        high = prepare(MAPS[0])[peaks[:, 0], peaks[:, 1]] >= 0.5  # lower peaks are not drawn
        assert len(other.x) == int((~is_top & high).sum()) > 0
        assert ex.scores["n_top_peaks"].iloc[0] == expected(0, nms_window=window).n_top_peaks


def test_explorer_refuses_options_outside_its_sliders_instead_of_clamping():
    for option, value, message in [
        ("threshold", 0.01, r"threshold=0.01 is outside its range \[0.05, 1.0\]"),
        ("threshold", 1.5, r"threshold=1.5 is outside its range"),
        ("tol", -1, r"tol=-1 is outside its range \[0, 23\]"),  # diagonal of 16x16: 22.6
        ("tol", 24, r"tol=24 is outside its range"),
        ("nms_window", 11, r"nms_window=11 is outside its range \[1, 9\]"),
        ("nms_window", 4, r"nms_window must be odd, got 4"),
    ]:
        with pytest.raises(ValueError, match=message):
            MetricExplorer(IMAGES, MAPS, BOXES, **{option: value})
    ex = MetricExplorer(IMAGES, MAPS, BOXES, threshold=1.0, tol=23, nms_window=9)
    assert (ex.threshold.value, ex.tol.value, ex.nms_window.value) == (1.0, 23, 9)
    assert ex.tol.max == math.ceil(math.hypot(16, 16))


def test_a_static_copy_shows_the_first_state_figure_and_numbers():
    ex = explorer()
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # live kernels get the widget
    page = bundle["text/html"]
    assert ex.numbers.value in page and f"<td>{expected(0).soft_iou:.3f}</td>" in page
    assert "Plotly.newPlot" in page and "sample a" in page  # the figure's title
    assert "plotly.js v" not in page  # the library itself is left to the page
    ex.sample.value = 1
    assert "sample b" in ex._repr_mimebundle_()["text/html"]


def test_explorer_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="got 2, 1, 2"):
        MetricExplorer(IMAGES, MAPS[:1], BOXES)
    with pytest.raises(ValueError, match="1 labels for 2 samples"):
        MetricExplorer(IMAGES, MAPS, BOXES, labels=["a"])

