"""Layout of qgnb.viz's gallery, bar and scatter figures: sizes, margins, annotation text."""

import numpy as np
import pandas as pd
import pytest

from qgnb.viz import (
    BAR_HEIGHT,
    PANEL,
    TITLE_CHARS,
    TITLE_FONT,
    TITLE_LINE,
    TOP_MARGIN,
    gallery,
    interval_bars,
    reading_bars,
    scatter_with_fit,
    uncertainty_by_levels,
    wrap_title,
)

LONG = "blip-large · worst: the small purple diamond left of the large yellow cross"


def _long_gallery(n: int = 8, cols: int = 4):
    image, heatmap = np.zeros((64, 64, 3), np.uint8), np.eye(64)
    titles = [LONG if k % 2 else f"base · best: the circle {k}" for k in range(n)]
    return gallery([image] * n, [heatmap] * n, [[[0, 0, 8, 8]]] * n, titles, cols=cols,
                   title="Highest and lowest IO ratio per model (id split)")


def test_wrap_title_keeps_lines_short_and_words_whole():
    lines = wrap_title(LONG).split("<br>")
    assert all(len(line) <= TITLE_CHARS for line in lines)
    assert " ".join(lines) == LONG
    assert wrap_title("hit") == "hit"


def test_gallery_titles_fit_their_panel_and_clear_the_panel_above():
    fig = _long_gallery()
    layout = fig.layout
    plot_height = layout.height - layout.margin.t - layout.margin.b
    plot_width = layout.width - layout.margin.l - layout.margin.r
    # Every panel is PANEL pixels square (within a pixel).
    for k in range(1, 9):
        suffix = "" if k == 1 else str(k)
        x_domain = layout[f"xaxis{suffix}"].domain
        y_domain = layout[f"yaxis{suffix}"].domain
        assert (x_domain[1] - x_domain[0]) * plot_width == pytest.approx(PANEL, abs=1)
        assert (y_domain[1] - y_domain[0]) * plot_height == pytest.approx(PANEL, abs=1)
    # A line of TITLE_CHARS characters at TITLE_FONT px (average glyph ~0.6 em) fits a panel.
    assert TITLE_CHARS * 0.6 * TITLE_FONT <= PANEL
    tops = sorted({round(layout[f"yaxis{'' if k == 1 else k}"].domain[1], 6) for k in range(1, 9)})
    bottoms = sorted({round(layout[f"yaxis{'' if k == 1 else k}"].domain[0], 6)
                      for k in range(1, 9)})
    for annotation in layout.annotations:
        lines = annotation.text.split("<br>")
        assert all(len(line) <= TITLE_CHARS for line in lines)
        assert annotation.font.size == TITLE_FONT
        bottom_px = annotation.y * plot_height  # annotations sit on their panel's top edge
        top_px = bottom_px + len(lines) * TITLE_LINE
        above = [b for b in bottoms if b > annotation.y + 1e-9]
        ceiling = above[0] * plot_height if above else plot_height + layout.margin.t - TOP_MARGIN
        assert top_px <= ceiling + 1e-6, (annotation.text, top_px, ceiling)
        assert round(annotation.y, 6) in tops


def test_gallery_short_titles_are_not_wrapped_and_one_row_has_no_gap():
    image, heatmap = np.zeros((8, 8, 3), np.uint8), np.eye(8)
    fig = gallery([image] * 2, [heatmap] * 2, [[[0, 0, 2, 2]]] * 2, ["hit", "miss"])
    assert [a.text for a in fig.layout.annotations] == ["hit", "miss"]
    plot_height = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert plot_height == PANEL


def test_interval_bars_have_an_explicit_readable_height():
    table = pd.DataFrame({"model": ["a", "b"], "mean": [0.5, 0.7], "low": [0.4, 0.6],
                          "high": [0.6, 0.8]})
    fig = interval_bars(table, x="model", title="t", y_title="acc")
    assert fig.layout.height == BAR_HEIGHT
    assert BAR_HEIGHT >= 420


def test_scatter_with_fit_signs_a_negative_intercept_and_leaves_room_for_labels():
    x, y = np.array([0.1, 0.2, 0.3]), np.array([0.094, 0.194, 0.294])  # y = x - 0.006
    fig = scatter_with_fit(x, y, ["a", "b", "c"], x_title="IO", y_title="PG", title="t")
    assert "y = 1.000 x - 0.006" in fig.data[1].name
    assert "+ -" not in fig.data[1].name
    low, high = fig.layout.yaxis.range
    span = y.max() - y.min()
    assert high >= y.max() + 0.15 * span  # the top point's label is drawn above it
    assert low < y.min()
    x_low, x_high = fig.layout.xaxis.range
    assert x_low < x.min() and x_high > x.max()
    assert fig.layout.height >= 450


def test_gallery_colorbar_title_sits_beside_the_bar_inside_the_right_margin():
    fig = _long_gallery()
    bar = fig.layout.coloraxis.colorbar
    assert bar.title.text == "map" and bar.title.side == "right"
    # bar + tick labels ("0.5", about 20 px) + the rotated title (about 16 px) + padding
    assert fig.layout.margin.r >= bar.thickness + 20 + 16 + 2 * 10


def _by_layer():
    rows = []
    for model in ["clip", "blip-base", "blip-amc", "blip-large"]:
        for k, reading in enumerate(["layer 0, all", "layer 0, cls", "layer 1, words"]):
            rows.append({"model": model, "reading": reading, "validation PG": 0.2 * k + 0.1,
                         "id PG": 0.2 * k, "chosen": "<- rule" if k == 2 else ""})
    return pd.DataFrame(rows)


def test_reading_bars_one_panel_a_model_with_room_between_rows():
    fig = reading_bars(_by_layer())
    assert [a.text for a in fig.layout.annotations] == ["clip", "blip-base", "blip-amc",
                                                        "blip-large"]
    assert len(fig.data) == 8 and [d.name for d in fig.data[:2]] == ["validation PG", "id PG"]
    plot = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    top_row, bottom_row = fig.layout.yaxis.domain, fig.layout.yaxis3.domain
    # room in px between the rows, for the upper panel's tilted tick labels and the title below
    assert (top_row[0] - bottom_row[1]) * plot >= 80
    assert list(fig.data[0].x)[2] == "<b>layer 1, words</b>" and "<b>" not in fig.data[0].x[0]
    assert all(axis.range == (0, 1) for axis in (fig.layout.yaxis, fig.layout.yaxis4))
    # the legend sits inside the figure, at its bottom edge, in the bottom margin
    legend = fig.layout.legend
    assert (legend.yref, legend.y, legend.yanchor) == ("container", 0, "bottom")


def test_reading_bars_names_missing_columns():
    with pytest.raises(ValueError, match="chosen"):
        reading_bars(_by_layer().drop(columns="chosen"))


def test_uncertainty_by_levels_ticks_the_levels_on_a_log_axis_per_split():
    q = pd.DataFrame([{"model": m, "split": s, "levels": lv, "pg_uncertainty": u}
                      for m in ["base", "amc"] for s in ["id", "ood"]
                      for lv, u in [(32, 0.2), (64, 0.1), (128, 0.04), (256, 0.0)]])
    fig = uncertainty_by_levels(q)
    assert [a.text for a in fig.layout.annotations] == ["split: id", "split: ood"]
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis2.tickvals) == [32, 64, 128, 256]
    assert list(fig.layout.xaxis.ticktext) == ["32", "64", "128", "256"]
    assert len(fig.data) == 4 and [d.showlegend for d in fig.data] == [True, True, False, False]
    assert fig.layout.yaxis.range[1] >= 0.2
