"""qgnb.viz: the figures hold the data they claim (boxes, peaks, intervals, fit line)."""

import doctest

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import qgnb.viz
from qgnb.metrics import METRIC_COLUMNS, compare, find_peaks, score
from qgnb.viz import (
    box_outline,
    gallery,
    interval_bars,
    map_figure,
    prepare,
    scatter_with_fit,
    verdict,
)

IMAGE = np.zeros((12, 16, 3), dtype=np.uint8)


def trace(fig, name):
    """The one trace called ``name`` in ``fig``."""
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def test_prepare_is_relu_then_divide_by_max():
    assert prepare([[-2.0, 1.0], [2.0, 4.0]]).tolist() == [[0.0, 0.25], [0.5, 1.0]]
    assert prepare(np.full((2, 2), -1.0)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_box_outline_closes_each_box_and_separates_boxes():
    xs, ys = box_outline([[1, 2, 5, 6], [0, 0, 1, 1]])
    assert xs == [1, 5, 5, 1, 1, None, 0, 1, 1, 0, 0, None]
    assert ys == [2, 2, 6, 6, 2, None, 0, 0, 1, 1, 0, None]
    with pytest.raises(ValueError, match=r"box 0 \[1, 2, 5\] must have 4 numbers"):
        box_outline([[1, 2, 5]])


def test_map_figure_draws_box_map_and_peaks_at_find_peaks_positions():
    a = np.zeros((12, 16))
    a[2, 3] = 1.0  # top peak inside the box
    a[9, 12] = 1.0  # equal top peak outside
    a[5, 14] = 0.6  # a lower peak
    a[10, 2] = 0.02  # a peak too, but noise: below min_peak, not drawn
    boxes = [[1, 1, 6, 5]]
    fig = map_figure(IMAGE, a, boxes, nms_window=3, title="two top peaks")
    assert fig.layout.title.text == "two top peaks"
    assert fig.layout.xaxis.title.text == "x (pixels)"
    assert list(fig.layout.yaxis.range) == [12, 0]  # rows grow downwards, as in the image
    box = trace(fig, "ground-truth box")
    assert list(box.x) == [1, 6, 6, 1, 1, None] and list(box.y) == [1, 1, 5, 5, 1, None]
    assert np.allclose(trace(fig, "map").z, prepare(a), atol=1e-7)
    peaks, is_top = find_peaks(a, nms_window=3)
    top, other = trace(fig, "top peak"), trace(fig, "other peak")
    assert list(top.x) == list(peaks[is_top, 1] + 0.5) == [3.5, 12.5]
    assert list(top.y) == list(peaks[is_top, 0] + 0.5) == [2.5, 9.5]
    assert peaks[~is_top].tolist() == [[5, 14], [10, 2]]
    assert list(other.x) == [14.5] and list(other.y) == [5.5]
    lowered = map_figure(IMAGE, a, boxes, nms_window=3, min_peak=0.01)
    assert list(trace(lowered, "other peak").x) == [14.5, 2.5]
    with pytest.raises(ValueError, match="min_peak must be in"):
        map_figure(IMAGE, a, boxes, min_peak=2)


def segments(fig, name):
    """The straight segments of a lines trace, as ((x0, y0), (x1, y1)) pairs."""
    t = trace(fig, name)
    points = list(zip(t.x, t.y, strict=True))
    return {(points[k], points[k + 1]) for k in range(0, len(points), 3)}


def test_threshold_outline_follows_the_edges_of_the_pixels_the_hard_metrics_count():
    a = np.zeros((4, 4))
    a[0, 0], a[0, 1], a[1, 0], a[3, 3] = 1.0, 0.5, 0.5, 0.5  # notebook 02's worked example
    fig = map_figure(np.zeros((4, 4, 3), np.uint8), a, [[0, 0, 2, 2]], threshold=0.5)
    assert segments(fig, "A ≥ 0.5") == {
        ((0, 0), (2, 0)), ((1, 1), (2, 1)), ((0, 2), (1, 2)), ((3, 3), (4, 3)), ((3, 4), (4, 4)),
        ((0, 0), (0, 2)), ((1, 1), (1, 2)), ((2, 0), (2, 1)), ((3, 3), (3, 4)), ((4, 3), (4, 4)),
    }  # the L of pixels (0, 0), (0, 1), (1, 0) and the single pixel (3, 3)
    # the 4 outlined pixels are the hard region: 3 in the box of 4, IoU 3 / (4 + 4 - 3)
    assert score(a[None], [[[0, 0, 2, 2]]], threshold=0.5).hard_iou.iloc[0] == pytest.approx(0.6)
    above = map_figure(np.zeros((4, 4, 3), np.uint8), a, [[0, 0, 2, 2]], threshold=0.75)
    assert segments(above, "A ≥ 0.75") == {
        ((0, 0), (1, 0)), ((0, 1), (1, 1)), ((0, 0), (0, 1)), ((1, 0), (1, 1))
    }


def test_map_figure_threshold_outline_and_no_peaks_on_a_flat_map():
    fig = map_figure(IMAGE, np.zeros((12, 16)), [[0, 0, 4, 4]], threshold=0.3, tol=5)
    names = [t.name for t in fig.data]
    assert "top peak" not in names and "other peak" not in names
    assert "tolerance 5 px" not in names  # no PG point on a flat map
    outline = trace(fig, "A ≥ 0.3")
    assert list(outline.x) == [] and list(outline.y) == []


def test_tolerance_is_a_circle_around_the_first_exact_maximum():
    a = np.zeros((12, 16))
    a[2, 3], a[9, 12] = 0.999, 1.0  # tie once quantised; PG's point is the exact maximum
    fig = map_figure(IMAGE, a, [[0, 0, 4, 4]], tol=4)
    circle = trace(fig, "tolerance 4 px")
    xs, ys = np.array(circle.x), np.array(circle.y)
    assert np.allclose(np.hypot(xs - 12.5, ys - 9.5), 4.0)
    assert np.allclose([xs[0], ys[0]], [xs[-1], ys[-1]])  # closed
    assert "tolerance 0 px" not in [t.name for t in map_figure(IMAGE, a, [[0, 0, 4, 4]]).data]


def test_map_figure_rejects_a_map_of_another_size():
    with pytest.raises(ValueError, match="image is 12x16 but the heatmap is 6x8"):
        map_figure(IMAGE, np.zeros((6, 8)), [[0, 0, 4, 4]])


def test_gallery_one_panel_per_sample_with_its_box_and_maximum():
    maps = [np.zeros((12, 16)), np.zeros((12, 16))]
    maps[0][4, 7] = 1.0
    maps[1][10, 1] = 2.0
    fig = gallery([IMAGE, IMAGE], maps, [[[0, 0, 8, 6]], [[8, 6, 16, 12]]], ["best", "worst"])
    assert [a.text for a in fig.layout.annotations] == ["best", "worst"]
    boxes = [t for t in fig.data if t.name == "ground-truth box"]
    assert [list(b.x[:4]) for b in boxes] == [[0, 8, 8, 0], [8, 16, 16, 8]]
    assert [b.xaxis for b in boxes] == ["x", "x2"]
    maxima = [t for t in fig.data if t.name == "map maximum (PG point)"]
    assert [(m.x[0], m.y[0]) for m in maxima] == [(7.5, 4.5), (1.5, 10.5)]
    assert [m.showlegend for m in maxima] == [True, False]


def test_gallery_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 images, 1 heatmaps"):
        gallery([IMAGE, IMAGE], [np.zeros((12, 16))], [[[0, 0, 1, 1]]] * 2, ["a", "b"])


def test_interval_bars_error_bars_reach_low_and_high():
    table = pd.DataFrame(
        {
            "model": ["a", "b", "a", "b"],
            "split": ["id", "id", "ood", "ood"],
            "mean": [0.5, 0.7, 0.4, 0.2],
            "low": [0.45, 0.6, 0.3, 0.1],
            "high": [0.52, 0.9, 0.5, 0.25],
        }
    )
    fig = interval_bars(table, x="model", color="split", title="PG accuracy", y_title="acc")
    assert [t.name for t in fig.data] == ["id", "ood"]
    for bars, (_, part) in zip(fig.data, table.groupby("split"), strict=True):
        y = np.asarray(bars.y)
        assert np.allclose(y + bars.error_y.array, part["high"])
        assert np.allclose(y - bars.error_y.arrayminus, part["low"])
    with pytest.raises(ValueError, match=r"columns \['upper'\] not in the table"):
        interval_bars(table, x="model", high="upper")


def test_interval_bars_show_compare_differences_with_their_bootstrap_bounds():
    rng = np.random.default_rng(1)
    a = score(rng.random((30, 8, 8)), [[[0, 0, 4, 4]]] * 30)
    b = score(rng.random((30, 8, 8)) + 0.5 * np.eye(8), [[[0, 0, 4, 4]]] * 30)
    diff = compare(a, b).rename_axis("metric").reset_index()
    fig = interval_bars(diff, x="metric", value="diff", low="ci_low", high="ci_high")
    bars = fig.data[0]
    assert list(bars.x) == list(METRIC_COLUMNS)
    assert np.allclose(np.asarray(bars.y) + bars.error_y.array, diff["ci_high"])
    assert np.allclose(np.asarray(bars.y) - bars.error_y.arrayminus, diff["ci_low"])


def test_scatter_with_fit_line_is_the_least_squares_line():
    rng = np.random.default_rng(0)
    x = rng.random(8)
    y = 0.7 * x + rng.normal(0, 0.05, 8)
    fig = scatter_with_fit(x, y, list("abcdefgh"), x_title="IO", y_title="PG", title="t")
    slope, intercept = np.polyfit(x, y, 1)
    line = fig.data[1]
    assert np.allclose(line.x, [x.min(), x.max()])
    assert np.allclose(line.y, intercept + slope * np.array([x.min(), x.max()]))
    assert f"r = {stats.pearsonr(x, y)[0]:.3f}" in line.name
    assert list(fig.data[0].text) == list("abcdefgh")
    with pytest.raises(ValueError, match="at least 2 points"):
        scatter_with_fit([1], [1], ["a"], x_title="x", y_title="y", title="t")


def test_verdict_reads_the_score_row():
    # eye(8) in box [0, 0, 4, 4]: 4 of the 8 ones inside (IO 0.5, soft IoU 4 / (16 + 4));
    # outside, the ones at centres k + 0.5 (k = 4..7) lie sqrt(2) (k - 3.5) from the box, so
    # WDP = sqrt(2) (0.5 + 1.5 + 2.5 + 3.5) / sqrt(128) / 8 = 0.125. NMS keeps only (0, 0).
    rows = score(np.stack([np.eye(8), np.zeros((8, 8))]), [[[0, 0, 4, 4]]] * 2)
    assert verdict(rows.iloc[0]) == "PG hit · soft IoU 0.200 · WDP 0.125 · IO ratio 0.500"
    assert verdict(rows.iloc[1]) == "flat map: no verdict"
    tied = np.zeros((8, 8))
    tied[0, 0] = tied[7, 7] = 1.0
    row = score(tied[None], [[[0, 0, 4, 4]]]).iloc[0]
    # soft IoU 1 / (16 + 1); WDP: the outside one lies sqrt(2) 3.5 from the box, / sqrt(128) / 2
    assert verdict(row) == (
        f"PG hit (uncertain) · soft IoU 0.059 · WDP {3.5 / 8 / 2:.3f} · IO ratio 0.500"
    )


def test_docstring_examples_run():
    assert doctest.testmod(qgnb.viz).failed == 0
