"""Plotly figures for the notebooks: a map over its image, interval bars, scatter with fit, gallery.

Every figure uses the package's pixel convention: pixel (row ``i``, column ``j``) covers
``[j, j+1] x [i, i+1]``, so its centre is drawn at ``(j + 0.5, i + 0.5)`` and a box
``[x1, y1, x2, y2]`` is drawn at exactly those coordinates. Maps are shown after the metrics'
preparation (``relu``, then divided by the maximum), so the colour scale is always [0, 1].
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from qgnb.metrics import find_peaks

BOX_COLOR = "#39ff14"
TOP_PEAK_COLOR = "white"
OTHER_PEAK_COLOR = "#bbbbbb"
COLORSCALE = "Jet"
# Gallery layout, in pixels: a square panel, its title set in TITLE_FONT px type, wrapped at
# TITLE_CHARS characters a line (about what fits in a panel at that size) and given
# TITLE_LINE px per line.
PANEL = 220
TITLE_FONT = 11
TITLE_CHARS = 32
TITLE_LINE = 15
# Figure margins (px): room for the main title above, for the legend below.
TOP_MARGIN = 60
BOTTOM_MARGIN = 60
# Bar charts: an explicit height, so that notebook front-ends do not pick a squat default.
BAR_HEIGHT = 460
SCATTER_HEIGHT = 520


def as_numpy(array) -> np.ndarray:
    """A NumPy copy of a NumPy array, torch tensor, PIL image or nested list.

    >>> as_numpy([[1, 2]]).shape
    (1, 2)
    """
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def prepare(heatmap) -> np.ndarray:
    """The map as the metrics see it: ``relu``, then divided by its maximum (zeros if flat).

    >>> prepare([[-1.0, 1.0], [2.0, 4.0]]).tolist()
    [[0.0, 0.25], [0.5, 1.0]]
    """
    # qgnb.metrics prepares inside its batched torch code; figures need it for one numpy map.
    a = np.maximum(as_numpy(heatmap).astype(np.float64), 0.0)
    peak = a.max() if a.size else 0.0
    return a / peak if peak > 0 else np.zeros_like(a)


def box_outline(boxes: Sequence[Sequence[float]]) -> tuple[list, list]:
    """x and y lists that draw each ``xyxy`` box as a closed outline (``None`` between boxes).

    >>> box_outline([[1, 2, 5, 6]])
    ([1.0, 5.0, 5.0, 1.0, 1.0, None], [2.0, 2.0, 6.0, 6.0, 2.0, None])
    """
    xs: list = []
    ys: list = []
    for k, box in enumerate(boxes):
        if len(box) != 4:
            raise ValueError(f"box {k} {list(box)} must have 4 numbers (xyxy)")
        x1, y1, x2, y2 = (float(v) for v in box)
        xs += [x1, x2, x2, x1, x1, None]
        ys += [y1, y1, y2, y2, y1, None]
    return xs, ys


def verdict(row: pd.Series) -> str:
    """A one-line caption of a score row: the PG verdict beside the whole-map metrics.

    >>> verdict(pd.Series({"pg_hit": 1.0, "pg_uncertain": 1.0, "soft_iou": 0.25,
    ...                    "wdp": 0.1, "io_ratio": 0.5, "flat": False}))
    'PG hit (uncertain) · soft IoU 0.250 · WDP 0.100 · IO ratio 0.500'
    """
    if bool(row.get("flat", False)):
        return "flat map: no verdict"
    pg = "PG hit" if row["pg_hit"] == 1 else "PG miss"
    certainty = " (uncertain)" if row["pg_uncertain"] == 1 else ""
    return (f"{pg}{certainty} · soft IoU {row['soft_iou']:.3f} · WDP {row['wdp']:.3f}"
            f" · IO ratio {row['io_ratio']:.3f}")


def _check_shapes(image: np.ndarray, heatmap: np.ndarray, where: str) -> None:
    if heatmap.ndim != 2:
        raise ValueError(f"{where}: heatmap must be 2-D (H, W), got shape {heatmap.shape}")
    if image.shape[:2] != heatmap.shape:
        raise ValueError(
            f"{where}: image is {image.shape[0]}x{image.shape[1]} but the heatmap is "
            f"{heatmap.shape[0]}x{heatmap.shape[1]}; upsample the map to the image first"
        )


def _panel_traces(
    image: np.ndarray, heatmap: np.ndarray, boxes, *, opacity: float, first: bool
) -> list[go.BaseTraceType]:
    h, w = heatmap.shape
    box_x, box_y = box_outline(boxes)
    return [
        go.Image(z=image, x0=0.5, y0=0.5, name="image", hoverinfo="skip"),
        go.Heatmap(
            z=prepare(heatmap).astype(np.float32),  # float32 halves the stored figure
            x=np.arange(w) + 0.5,
            y=np.arange(h) + 0.5,
            coloraxis="coloraxis",
            opacity=opacity,
            name="map",
            hovertemplate="x=%{x}<br>y=%{y}<br>map=%{z:.3f}<extra></extra>",
        ),
        go.Scatter(
            x=box_x,
            y=box_y,
            mode="lines",
            line={"color": BOX_COLOR, "width": 2},
            name="ground-truth box",
            legendgroup="box",
            showlegend=first,
            hoverinfo="skip",
        ),
    ]


def mask_outline(mask) -> tuple[list, list]:
    """x and y lists that draw the boundary of a boolean pixel mask along the pixels' edges.

    Pixel ``(i, j)`` covers ``[j, j+1] x [i, i+1]``, so the outline encloses exactly the
    ``True`` pixels; each straight run of boundary edges is one segment (``None`` between).

    >>> xs, ys = mask_outline(np.array([[True, True], [False, True]]))
    >>> list(zip(xs, ys))[:6]  # the top edge, then the step under pixel (0, 0)
    [(0, 0), (2, 0), (None, None), (0, 1), (1, 1), (None, None)]
    >>> xs.count(None)  # 3 horizontal and 3 vertical segments
    6
    """
    # A contour through pixel centres (plotly's go.Contour) cuts pixels in half; the hard
    # metrics count whole pixels, so the outline follows their edges instead.
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    across_rows = m[:-1, 1:-1] != m[1:, 1:-1]  # (H+1, W): edge on line y=i above pixel (i, j)
    across_cols = m[1:-1, :-1] != m[1:-1, 1:]  # (H, W+1): edge on line x=j left of (i, j)
    xs: list = []
    ys: list = []
    for y, row in enumerate(across_rows):
        for start, stop in _runs(row):
            xs += [start, stop, None]
            ys += [y, y, None]
    for x, col in enumerate(across_cols.T):
        for start, stop in _runs(col):
            xs += [x, x, None]
            ys += [start, stop, None]
    return xs, ys


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True values in a 1-D bool array (``stop`` exclusive)."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def circle_outline(x: float, y: float, radius: float, points: int = 73) -> tuple[list, list]:
    """x and y lists of a closed circle of ``radius`` around ``(x, y)``.

    >>> xs, ys = circle_outline(1.0, 2.0, 3.0, points=5)
    >>> [round(v, 6) for v in xs], [round(v, 6) for v in ys]
    ([4.0, 1.0, -2.0, 1.0, 4.0], [2.0, 5.0, 2.0, -1.0, 2.0])
    """
    angles = np.linspace(0.0, 2.0 * np.pi, points)
    return (x + radius * np.cos(angles)).tolist(), (y + radius * np.sin(angles)).tolist()


def map_figure(
    image,
    heatmap,
    boxes: Sequence[Sequence[float]],
    *,
    nms_window: int | None = None,
    levels: int | None = 256,
    threshold: float | None = None,
    tol: float = 0,
    min_peak: float = 0.5,
    title: str = "Map over the image",
    opacity: float = 0.55,
) -> go.Figure:
    """The map over its image, with the ground-truth boxes and the map's peaks.

    Peaks come from :func:`qgnb.metrics.find_peaks` with the same ``nms_window`` and
    ``levels`` as the metrics: the top peaks (those PG uncertainty looks at) are stars, the
    other surviving peaks at least ``min_peak`` high (a fraction of the maximum; lower ones are
    noise in a real map) open circles. With ``threshold`` the pixels ``A >= threshold`` (the
    region the hard IoU and Dice count) are outlined along their edges; with ``tol > 0`` a
    circle of that radius around the pointing-game point shows the tolerance (a hit when a
    box pixel's centre lies on or inside it).

    >>> import numpy as np
    >>> a = np.zeros((8, 8)); a[2, 5] = 1.0
    >>> fig = map_figure(np.zeros((8, 8, 3), np.uint8), a, [[4, 1, 7, 4]])
    >>> [t.name for t in fig.data]
    ['image', 'map', 'ground-truth box', 'top peak']
    >>> fig.data[3].x.tolist(), fig.data[3].y.tolist()
    ([5.5], [2.5])
    """
    img = as_numpy(image)
    amap = as_numpy(heatmap).astype(np.float64)
    _check_shapes(img, amap, "map_figure")
    if not 0 <= min_peak <= 1:
        raise ValueError(f"map_figure: min_peak must be in [0, 1], got {min_peak!r}")
    h, w = amap.shape
    prepared = prepare(amap)
    fig = go.Figure(_panel_traces(img, amap, boxes, opacity=opacity, first=True))
    peaks, is_top = find_peaks(amap, nms_window=nms_window, levels=levels)
    peaks, is_top = as_numpy(peaks).reshape(-1, 2), as_numpy(is_top).astype(bool)
    high = prepared[peaks[:, 0], peaks[:, 1]] >= min_peak
    for name, keep, symbol, color, size in (
        ("top peak", is_top, "star", TOP_PEAK_COLOR, 15),
        ("other peak", ~is_top & high, "circle-open", OTHER_PEAK_COLOR, 10),
    ):
        if keep.any():
            fig.add_trace(
                go.Scatter(
                    x=peaks[keep, 1] + 0.5,
                    y=peaks[keep, 0] + 0.5,
                    mode="markers",
                    marker={"symbol": symbol, "size": size, "color": color,
                            "line": {"color": "black", "width": 1}},
                    name=name,
                    hovertemplate="peak at x=%{x}, y=%{y}<extra>" + name + "</extra>",
                )
            )
    if threshold is not None:
        xs, ys = mask_outline(prepared >= threshold)
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", line={"color": "white", "width": 2, "dash": "dot"},
                name=f"A ≥ {threshold:g}", hoverinfo="skip",
            )
        )
    if tol > 0 and is_top.any():
        # PG's point p*: the first exact maximum in row-major order, as the metrics take it
        row, col = np.unravel_index(int(np.argmax(amap)), amap.shape)
        xs, ys = circle_outline(col + 0.5, row + 0.5, tol)
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", line={"color": TOP_PEAK_COLOR, "width": 1.5},
                name=f"tolerance {tol:g} px", hoverinfo="skip",
            )
        )
    fig.update_layout(
        title={"text": title},
        coloraxis={"colorscale": COLORSCALE, "cmin": 0.0, "cmax": 1.0,
                   "colorbar": {"title": {"text": "map<br>(relu, /max)"}}},
        legend={"orientation": "h", "y": -0.15},
        width=520,
        height=560,
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
    )
    fig.update_xaxes(title_text="x (pixels)", range=[0, w], constrain="domain")
    # rows grow downwards, as in the image; one pixel is as wide as it is tall
    fig.update_yaxes(title_text="y (pixels)", range=[h, 0], scaleanchor="x", constrain="domain")
    return fig


def wrap_title(text: str, width: int = TITLE_CHARS) -> str:
    """``text`` broken into lines of at most ``width`` characters (at spaces; a longer word
    is split), joined by plotly's ``<br>``.

    >>> wrap_title("blip-base · best: the small red circle left of the square", 24)
    'blip-base · best: the<br>small red circle left of<br>the square'
    """
    return "<br>".join(textwrap.wrap(text, width)) or text


def gallery(
    images: Sequence,
    heatmaps: Sequence,
    boxes: Sequence[Sequence[Sequence[float]]],
    titles: Sequence[str],
    *,
    cols: int = 4,
    title: str = "Gallery",
    opacity: float = 0.55,
) -> go.Figure:
    """A grid of maps over their images with their boxes; one panel per sample.

    Panel ``k`` holds three traces (image, map, box outline) on subplot axes ``k + 1``; a
    white cross marks the map's maximum (the pointing game's point). Panels are ``PANEL``
    pixels square; titles are wrapped to the panel's width (`wrap_title`) and the rows are
    spaced by the tallest title, so that no title overlaps the panel above it or is cut.

    >>> import numpy as np
    >>> img, a = np.zeros((4, 4, 3), np.uint8), np.eye(4)
    >>> fig = gallery([img, img], [a, a], [[[0, 0, 2, 2]], [[2, 2, 4, 4]]], ["hit", "miss"])
    >>> len(fig.data), [ann.text for ann in fig.layout.annotations]
    (8, ['hit', 'miss'])
    """
    n = len(images)
    if not (len(heatmaps) == len(boxes) == len(titles) == n):
        raise ValueError(
            f"gallery: got {n} images, {len(heatmaps)} heatmaps, {len(boxes)} box lists and "
            f"{len(titles)} titles; they must match"
        )
    if n == 0:
        raise ValueError("gallery: no panels to draw")
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    wrapped = [wrap_title(t) for t in titles]
    title_block = TITLE_LINE * max(t.count("<br>") + 1 for t in wrapped) + 8
    gap = 16  # px between panels side by side
    plot_height = rows * PANEL + (rows - 1) * title_block
    plot_width = cols * PANEL + (cols - 1) * gap
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=wrapped,
        horizontal_spacing=gap / plot_width,
        vertical_spacing=title_block / plot_height if rows > 1 else 0.0,
    )
    fig.update_annotations(font={"size": TITLE_FONT})
    for k in range(n):
        img, amap = as_numpy(images[k]), as_numpy(heatmaps[k]).astype(np.float64)
        _check_shapes(img, amap, f"gallery panel {k} ({titles[k]!r})")
        row, col = k // cols + 1, k % cols + 1
        for trace in _panel_traces(img, amap, boxes[k], opacity=opacity, first=k == 0):
            fig.add_trace(trace, row=row, col=col)
        r, c = np.unravel_index(int(np.argmax(amap)), amap.shape)
        fig.add_trace(
            go.Scatter(
                x=[c + 0.5], y=[r + 0.5], mode="markers",
                marker={"symbol": "x", "size": 9, "color": "white",
                        "line": {"color": "black", "width": 1}},
                name="map maximum (PG point)", legendgroup="max", showlegend=k == 0,
            ),
            row=row, col=col,
        )
        h, w = amap.shape
        fig.update_xaxes(range=[0, w], showticklabels=False, row=row, col=col)
        fig.update_yaxes(range=[h, 0], showticklabels=False, row=row, col=col)
    fig.update_layout(
        title={"text": title},
        coloraxis={"colorscale": COLORSCALE, "cmin": 0.0, "cmax": 1.0,
                   # The title beside the bar, not above it: above, it overran the
                   # figure's right edge in JupyterLab ("ma").
                   "colorbar": {"title": {"text": "map", "side": "right"},
                                "thickness": 14}},
        legend={"orientation": "h", "y": 0, "yanchor": "bottom", "yref": "container"},
        margin={"t": TOP_MARGIN + title_block, "b": BOTTOM_MARGIN, "l": 20, "r": 100},
        width=plot_width + 20 + 100,
        height=plot_height + TOP_MARGIN + title_block + BOTTOM_MARGIN,
    )
    return fig


def interval_bars(
    stats_table: pd.DataFrame,
    *,
    x: str,
    color: str | None = None,
    value: str = "mean",
    low: str = "low",
    high: str = "high",
    title: str = "",
    y_title: str = "",
) -> go.Figure:
    """Bars of ``value`` with error bars from ``low`` to ``high`` (e.g. bootstrap intervals).

    One bar per row; rows with the same ``color`` value form one legend entry.

    >>> df = pd.DataFrame({"model": ["a", "b"], "mean": [0.5, 0.7],
    ...                    "low": [0.4, 0.6], "high": [0.55, 0.9]})
    >>> fig = interval_bars(df, x="model", title="t", y_title="IoU")
    >>> fig.data[0].error_y.array.tolist(), fig.data[0].error_y.arrayminus.tolist()
    ([0.05, 0.2], [0.1, 0.1])
    """
    missing = [c for c in (x, value, low, high, color) if c is not None and c not in stats_table]
    if missing:
        raise ValueError(
            f"interval_bars: columns {missing} not in the table (has {list(stats_table.columns)})"
        )
    groups = stats_table.groupby(color, sort=False) if color else [(None, stats_table)]
    fig = go.Figure()
    for name, part in groups:
        fig.add_trace(
            go.Bar(
                x=part[x].astype(str),
                y=part[value],
                name=str(name) if name is not None else value,
                showlegend=name is not None,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (part[high] - part[value]).round(12).to_numpy(),
                    "arrayminus": (part[value] - part[low]).round(12).to_numpy(),
                },
            )
        )
    fig.update_layout(
        title={"text": title},
        xaxis_title=x,
        yaxis_title=y_title or value,
        barmode="group",
        legend_title_text=color or "",
        height=BAR_HEIGHT,
    )
    return fig


def scatter_with_fit(
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    *,
    x_title: str,
    y_title: str,
    title: str,
) -> go.Figure:
    """Labelled points and their least-squares line (``scipy.stats.linregress``), r in the legend.

    The axes are padded beyond the points so that the labels above them are not cut.

    >>> fig = scatter_with_fit([0, 1, 2], [1, 3, 5], ["a", "b", "c"],
    ...                        x_title="x", y_title="y", title="t")
    >>> fig.data[1].name, fig.data[1].y.tolist()
    ('fit: y = 2.000 x + 1.000 (r = 1.000)', [1.0, 5.0])
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (len(xs) == len(ys) == len(labels)):
        raise ValueError(f"scatter_with_fit: {len(xs)} x, {len(ys)} y, {len(labels)} labels")
    if len(xs) < 2:
        raise ValueError(f"scatter_with_fit: a line needs at least 2 points, got {len(xs)}")
    fit = stats.linregress(xs, ys)
    line_x = np.array([xs.min(), xs.max()])
    fig = go.Figure(
        [
            go.Scatter(x=xs, y=ys, mode="markers+text", text=list(labels),
                       textposition="top center", name="data", marker={"size": 10}),
            go.Scatter(
                x=line_x,
                y=fit.intercept + fit.slope * line_x,
                mode="lines",
                line={"dash": "dash"},
                name=f"fit: y = {fit.slope:.3f} x {'-' if fit.intercept < 0 else '+'} "
                     f"{abs(fit.intercept):.3f} (r = {fit.rvalue:.3f})",
            ),
        ]
    )
    fig.update_layout(title={"text": title}, xaxis_title=x_title, yaxis_title=y_title,
                      height=SCATTER_HEIGHT, margin={"t": 70})
    # Room for the labels: above the highest point (a label is drawn over its point) and
    # half a label's width beside the outermost points.
    fig.update_xaxes(range=_padded(xs, 0.12, 0.12))
    fig.update_yaxes(range=_padded(ys, 0.08, 0.2))
    return fig


def _padded(values: np.ndarray, below: float, above: float) -> list[float]:
    low, high = float(values.min()), float(values.max())
    span = high - low if high > low else max(abs(high), 1.0)
    return [low - below * span, high + above * span]


# PVP figures


def pvp_reconstructions(targets: np.ndarray, reconstructions: dict[str, np.ndarray],
                        title: str = "Target grid and each regime's reconstruction"
                        ) -> go.Figure:
    """One row per scene: its target grid, then each regime's reconstruction (``N x g x g x
    3`` uint8 arrays, same ``N`` and grid), drawn as images with the regime as column title.

    >>> t = np.zeros((2, 4, 4, 3), np.uint8)
    >>> fig = pvp_reconstructions(t, {"connector": t, "connector+lm": t})
    >>> len(fig.data), [a.text for a in fig.layout.annotations]
    (6, ['target', 'connector', 'connector+lm'])
    """
    targets = as_numpy(targets)
    panels = {"target": targets, **{k: as_numpy(v) for k, v in reconstructions.items()}}
    for name, grids in panels.items():
        if grids.shape != targets.shape:
            raise ValueError(f"reconstruction {name!r} has shape {grids.shape}, "
                             f"targets {targets.shape}")
    rows, cols = len(targets), len(panels)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(panels),
                        horizontal_spacing=0.01, vertical_spacing=0.01)
    for i in range(rows):
        for j, grids in enumerate(panels.values()):
            fig.add_trace(go.Image(z=grids[i], name=f"{list(panels)[j]} {i}"), row=i + 1,
                          col=j + 1)
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    # Keep only the column titles (first row): make_subplots titles every column once.
    return fig.update_layout(title=title, height=160 * rows + 80, width=160 * cols + 40,
                             margin={"l": 10, "r": 10, "t": 80, "b": 10})


def pvp_regime_errors(summary: pd.DataFrame, references: pd.DataFrame | None = None,
                      title: str = "Reconstruction error per regime over training seeds"
                      ) -> go.Figure:
    """Bars of the median MAE per regime over all cells and over object cells, with the range
    over seeds as error bars, one panel per split. ``summary`` has columns ``split, regime,
    MAE median/min/max, MAE object median/min/max`` (``qgnb.pvp.report.regime_summary``);
    ``references`` (``split, answer, MAE, MAE object``) adds dotted lines at the image-mean
    colour's errors.

    >>> s = pd.DataFrame({"split": ["id"], "regime": ["connector"], "MAE median": [4.0],
    ...     "MAE min": [3.0], "MAE max": [6.0], "MAE object median": [9.0],
    ...     "MAE object min": [8.0], "MAE object max": [9.5]})
    >>> fig = pvp_regime_errors(s)
    >>> list(fig.data[0].y), list(fig.data[0].error_y.array)
    ([4.0, 9.0], [2.0, 0.5])
    """
    splits = list(dict.fromkeys(summary["split"]))
    fig = make_subplots(rows=1, cols=len(splits), subplot_titles=[f"split: {s}" for s in splits],
                        shared_yaxes=True)
    colours = ["#9ecae1", "#4292c6", "#08519c"]
    for j, split in enumerate(splits):
        part = summary[summary["split"] == split]
        for k, (_, row) in enumerate(part.iterrows()):
            medians = [row["MAE median"], row["MAE object median"]]
            fig.add_trace(go.Bar(
                x=["all cells", "object cells"], y=medians, name=row["regime"],
                marker_color=colours[k % len(colours)], legendgroup=row["regime"],
                showlegend=j == 0,
                error_y={"type": "data", "symmetric": False,
                         "array": [row["MAE max"] - medians[0],
                                   row["MAE object max"] - medians[1]],
                         "arrayminus": [medians[0] - row["MAE min"],
                                        medians[1] - row["MAE object min"]]}),
                row=1, col=j + 1)
        if references is not None:
            ref = references[(references["split"] == split)
                             & (references["answer"] == "image mean colour everywhere")]
            for _, r in ref.iterrows():
                for x, column in (("all cells", "MAE"), ("object cells", "MAE object")):
                    fig.add_trace(go.Scatter(
                        x=[x], y=[r[column]], mode="markers", name="image mean colour",
                        marker={"symbol": "line-ew-open", "size": 40, "color": "black"},
                        legendgroup="reference", showlegend=j == 0 and x == "all cells"),
                        row=1, col=j + 1)
    fig.update_yaxes(title_text="mean absolute error (0-255)", col=1)
    return fig.update_layout(title=title, barmode="group", height=420)


def pvp_curves(curve: pd.DataFrame, column: str = "MAE object",
               title: str = "Held-out error on object cells during training") -> go.Figure:
    """One line per run and seed of ``column`` against the step (``qgnb.pvp.report.curve_table``:
    columns ``seed, run, step`` and the scores); runs share a colour across seeds.

    >>> c = pd.DataFrame({"seed": [0, 0, 1], "run": ["a", "a", "a"], "step": [1, 2, 1],
    ...                   "MAE object": [3.0, 2.0, 4.0]})
    >>> [list(t.y) for t in pvp_curves(c).data]
    [[3.0, 2.0], [4.0]]
    """
    palette = ["#7f7f7f", "#9ecae1", "#4292c6", "#08519c", "#d62728"]
    runs = list(dict.fromkeys(curve["run"]))
    fig = go.Figure()
    for (run, seed), part in curve.groupby(["run", "seed"], sort=False):
        fig.add_trace(go.Scatter(x=part["step"].tolist(), y=part[column].tolist(),
                                 mode="lines+markers",
                                 name=f"{run}, seed {seed}", legendgroup=run,
                                 line={"color": palette[runs.index(run) % len(palette)]}))
    return fig.update_layout(title=title, xaxis_title="training step (from the start of "
                             "stage 0)", yaxis_title=f"{column} (0-255)", height=420)


def pvp_segmentation_gain(gains: pd.DataFrame, goal: float = 5.0,
                          title: str = "cIoU gain of the PVP-adapted encoder, per seed"
                          ) -> go.Figure:
    """Each seed's cIoU gain (points) with its 95% paired bootstrap interval, one marker per
    seed and split (``qgnb.pvp.report.segmentation_gain``: ``seed, split, cIoU gain, low,
    high``), with dotted lines at 0 and at the ``goal``.

    >>> g = pd.DataFrame({"seed": [0], "split": ["id"], "cIoU gain": [7.0], "low": [2.0],
    ...                   "high": [9.0]})
    >>> t = pvp_segmentation_gain(g).data[0]
    >>> list(t.y), list(t.error_y.array), list(t.error_y.arrayminus)
    ([7.0], [2.0], [5.0])
    """
    fig = go.Figure()
    for split, part in gains.groupby("split", sort=False):
        fig.add_trace(go.Scatter(
            x=[f"seed {s}" for s in part["seed"]], y=part["cIoU gain"].tolist(), mode="markers",
            name=split, marker={"size": 11},
            error_y={"type": "data", "symmetric": False,
                     "array": (part["high"] - part["cIoU gain"]).tolist(),
                     "arrayminus": (part["cIoU gain"] - part["low"]).tolist()}))
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    fig.add_hline(y=goal, line_dash="dot", line_color="green",
                  annotation_text=f"goal: +{goal:g} points")
    return fig.update_layout(title=title, yaxis_title="cIoU gain (points)", height=400)


def reading_bars(by_layer: pd.DataFrame, *, cols: int = 2,
                 title: str = "PG accuracy of every candidate reading, per model") -> go.Figure:
    """Per model, one panel of grouped bars: the PG accuracy of each candidate reading
    (``reading``, e.g. "layer 0, all") on the validation stream and on the test phrases
    (columns ``model, reading, validation PG, id PG, chosen``; ``chosen`` non-empty on the
    reading the rule picked, whose label is set in bold). Panels share the y axis [0, 1];
    rows are spaced so that each panel's title and tick labels clear the panel above.

    >>> t = pd.DataFrame({"model": ["a", "a"], "reading": ["layer 0", "layer 1"],
    ...                   "validation PG": [0.5, 0.25], "id PG": [0.4, 0.3],
    ...                   "chosen": ["<- rule", ""]})
    >>> fig = reading_bars(t)
    >>> [list(d.y) for d in fig.data], list(fig.data[0].x)
    ([[0.5, 0.25], [0.4, 0.3]], ['<b>layer 0</b>', 'layer 1'])
    """
    missing = {"model", "reading", "validation PG", "id PG", "chosen"} - set(by_layer.columns)
    if missing:
        raise ValueError(f"reading_bars: by_layer lacks columns {sorted(missing)}")
    models = list(dict.fromkeys(by_layer["model"]))
    cols = min(cols, len(models))
    rows = math.ceil(len(models) / cols)
    panel, gap = 260, 90  # px: a panel's height; room for the x tick labels and next title
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=models, shared_yaxes=True,
                        vertical_spacing=gap / (rows * panel + (rows - 1) * gap)
                        if rows > 1 else 0.0, horizontal_spacing=0.06)
    colours = {"validation PG": "#9ecae1", "id PG": "#08519c"}
    for k, model in enumerate(models):
        part = by_layer[by_layer["model"] == model]
        labels = [f"<b>{r}</b>" if c else r for r, c in zip(part["reading"], part["chosen"],
                                                               strict=True)]
        for column, colour in colours.items():
            fig.add_trace(go.Bar(x=labels, y=part[column].tolist(), name=column,
                                 marker_color=colour, legendgroup=column, showlegend=k == 0),
                          row=k // cols + 1, col=k % cols + 1)
    fig.update_yaxes(range=[0, 1])
    fig.update_yaxes(title_text="PG accuracy", col=1)
    fig.update_xaxes(tickangle=-35, tickfont={"size": 10})
    return fig.update_layout(
        title={"text": title + " (bold: the rule's choice)"}, barmode="group",
        height=rows * panel + (rows - 1) * gap + TOP_MARGIN + BOTTOM_MARGIN + 40,
        margin={"t": TOP_MARGIN + 20, "b": BOTTOM_MARGIN + 40},
        # At the figure's bottom edge, below the tilted tick labels (anchored at its top, it
        # fell off the figure).
        legend={"orientation": "h", "y": 0, "yanchor": "bottom", "yref": "container"})


def uncertainty_by_levels(quantisation: pd.DataFrame, *,
                          title: str = "PG uncertainty against quantisation levels"
                          ) -> go.Figure:
    """One panel per split: each model's PG uncertainty (share of uncertain samples)
    against the number of quantisation levels, on a log axis ticked at the levels measured
    (columns ``model, split, levels, pg_uncertainty``).

    >>> q = pd.DataFrame({"model": ["a", "a"], "split": ["id", "id"], "levels": [32, 256],
    ...                   "pg_uncertainty": [0.1, 0.0]})
    >>> fig = uncertainty_by_levels(q)
    >>> list(fig.data[0].x), list(fig.layout.xaxis.tickvals)
    ([32, 256], [32, 256])
    """
    missing = {"model", "split", "levels", "pg_uncertainty"} - set(quantisation.columns)
    if missing:
        raise ValueError(f"uncertainty_by_levels: quantisation lacks columns {sorted(missing)}")
    splits = list(dict.fromkeys(quantisation["split"]))
    models = list(dict.fromkeys(quantisation["model"]))
    levels = sorted(int(v) for v in set(quantisation["levels"]))
    fig = make_subplots(rows=1, cols=len(splits), subplot_titles=[f"split: {s}" for s in splits],
                        shared_yaxes=True, horizontal_spacing=0.08)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for j, split in enumerate(splits):
        for i, model in enumerate(models):
            part = quantisation[(quantisation["split"] == split)
                                & (quantisation["model"] == model)].sort_values("levels")
            fig.add_trace(go.Scatter(
                x=part["levels"].astype(int).tolist(), y=part["pg_uncertainty"].tolist(),
                mode="lines+markers", name=model, legendgroup=model, showlegend=j == 0,
                line={"color": palette[i % len(palette)]}), row=1, col=j + 1)
    top = float(quantisation["pg_uncertainty"].max())
    fig.update_xaxes(type="log", tickvals=levels, ticktext=[str(v) for v in levels],
                     title_text="quantisation levels")
    fig.update_yaxes(range=[0, max(0.05, 1.15 * top)])
    fig.update_yaxes(title_text="PG uncertainty", col=1)
    return fig.update_layout(title={"text": title}, height=SCATTER_HEIGHT - 60)
