"""ipywidgets explorers for the notebooks; their callbacks are plain methods the tests drive.

:class:`MetricExplorer` shows one sample's map over its image (boxes, peaks, the threshold's
outline) beside its metric row, with controls for the sample, the hard-metric threshold, the
pointing-game tolerance and the NMS window. Moving a control recomputes the row with
:func:`qgnb.metrics.score` and redraws the figure; nothing is printed. Without a kernel (a
static copy of the notebook, the pages of ``build/``) the explorer shows its first state: its
figure and numbers as HTML beside the widget view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from qgnb.metrics import default_nms_window, score
from qgnb.viz import as_numpy, map_figure

THRESHOLD_RANGE = (0.05, 1.0)
SHOWN_METRICS = (
    "pg_hit", "pg_uncertain", "n_top_peaks", "soft_iou", "soft_dice", "hard_iou", "hard_dice",
    "wdp", "io_ratio",
)


class MetricExplorer(widgets.VBox):
    """Pick a sample, move the threshold, the tolerance and the NMS window; all views follow.

    ``images``, ``maps`` and ``boxes`` are parallel: an RGB image (PIL or H x W x 3 array), a
    map at the image's resolution, and that sample's ``xyxy`` boxes. ``labels`` name the
    samples in the drop-down (default: their positions). ``self.scores`` is the current
    one-row score table and ``self.figure`` the plotly FigureWidget. An option outside its
    slider's range (``threshold`` in [0.05, 1], ``tol`` from 0 to the image diagonal, an odd
    ``nms_window`` up to a quarter of the shorter side) is refused, not clamped.

    >>> import numpy as np
    >>> a = np.zeros((16, 16)); a[4, 4] = 1.0
    >>> ex = MetricExplorer([np.zeros((16, 16, 3), np.uint8)], [a], [[[2, 2, 8, 8]]])
    >>> ex.threshold.value = 0.9
    >>> round(float(ex.scores["hard_iou"].iloc[0]), 4)  # one pixel of the 36 in the box
    0.0278
    """

    def __init__(
        self,
        images: Sequence,
        maps: Sequence,
        boxes: Sequence[Sequence[Sequence[float]]],
        *,
        labels: Sequence[str] | None = None,
        threshold: float = 0.5,
        tol: int = 0,
        nms_window: int | None = None,
        levels: int | None = 256,
    ) -> None:
        n = len(images)
        if n == 0 or len(maps) != n or len(boxes) != n:
            raise ValueError(
                f"MetricExplorer: needs matching, non-empty images, maps and boxes; "
                f"got {n}, {len(maps)}, {len(boxes)}"
            )
        labels = [str(k) for k in range(n)] if labels is None else [str(s) for s in labels]
        if len(labels) != n:
            raise ValueError(f"MetricExplorer: {len(labels)} labels for {n} samples")
        self.images = [as_numpy(im) for im in images]
        self.maps = [as_numpy(m).astype(np.float32) for m in maps]
        self.boxes = [[list(map(float, b)) for b in sample_boxes] for sample_boxes in boxes]
        self.levels = levels
        h, w = np.max([m.shape for m in self.maps], axis=0)
        default_window = default_nms_window(h, w)
        window = default_window if nms_window is None else nms_window
        window_max = max(default_window, min(h, w) // 4 * 2 + 1)
        _check_in_range("threshold", threshold, *THRESHOLD_RANGE)
        _check_in_range("tol", tol, 0, math.ceil(math.hypot(h, w)))
        _check_in_range("nms_window", window, 1, window_max)
        if window % 2 == 0:
            raise ValueError(f"MetricExplorer: nms_window must be odd, got {window}")
        self.sample = widgets.Dropdown(
            options=list(zip(labels, range(n), strict=True)), value=0, description="sample"
        )
        self.threshold = widgets.FloatSlider(
            value=threshold, min=THRESHOLD_RANGE[0], max=THRESHOLD_RANGE[1], step=0.05,
            description="threshold t", continuous_update=False,
        )
        self.tol = widgets.IntSlider(
            value=tol, min=0, max=math.ceil(math.hypot(h, w)), step=1,
            description="tolerance (px)", continuous_update=False,
        )
        self.nms_window = widgets.IntSlider(
            value=window, min=1, max=window_max, step=2, description="NMS window",
            continuous_update=False,
        )
        self.numbers = widgets.HTML()
        self.figure = go.FigureWidget()
        self.scores = pd.DataFrame()
        for control in (self.sample, self.threshold, self.tol, self.nms_window):
            control.style.description_width = "initial"
            control.observe(self.update, names="value")
        super().__init__(
            [
                widgets.HBox([self.sample, self.threshold]),
                widgets.HBox([self.tol, self.nms_window]),
                widgets.HBox([self.figure, self.numbers]),
            ]
        )
        self.update()

    def update(self, change: dict | None = None) -> None:
        """Recompute the current sample's scores and redraw; called on every control change."""
        k = self.sample.value
        self.scores = score(
            self.maps[k][None],
            [self.boxes[k]],
            tol=self.tol.value,
            nms_window=self.nms_window.value,
            levels=self.levels,
            threshold=self.threshold.value,
            ids=[self.sample.label],
        )
        shown = [m for m in SHOWN_METRICS if m in self.scores]
        row = self.scores.iloc[0]
        shown_values = pd.Series({m: _format(row[m]) for m in shown}, name="value")
        self.numbers.value = "<b>metrics of this sample</b>" + shown_values.to_frame().to_html(
            header=False
        )
        fig = map_figure(
            self.images[k], self.maps[k], self.boxes[k],
            nms_window=self.nms_window.value, levels=self.levels,
            threshold=self.threshold.value, tol=self.tol.value,
            title=f"sample {self.sample.label}",
        )
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(list(fig.data))
            self.figure.layout = fig.layout


    def static_html(self) -> str:
        """The current figure and numbers as HTML, for pages without a kernel.

        The figure is plotly's ``<div>`` and drawing script without plotly.js itself, which
        the page already holds where figures draw (the ``build/`` pages embed it).
        """
        figure = pio.to_html(go.Figure(self.figure), include_plotlyjs=False, full_html=False)
        return (
            '<div class="qgnb-explorer-static" style="display:flex;gap:1em;align-items:start">'
            f"<div>{figure}</div><div>{self.numbers.value}<p><i>A static copy of the "
            "explorer's first state: run the notebook to move the controls.</i></p></div></div>"
        )

    def _repr_mimebundle_(self, **kwargs) -> dict:
        # The widget view for a live kernel, with its first state as HTML for every reader
        # that cannot run one (nbconvert, notebook viewers).
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/html"] = self.static_html()
        return bundle


def _check_in_range(name: str, value, low, high) -> None:
    """Refuse an explorer option outside its slider's range (a slider would clamp it silently)."""
    if not (isinstance(value, int | float | np.integer | np.floating) and low <= value <= high):
        raise ValueError(f"MetricExplorer: {name}={value!r} is outside its range [{low}, {high}]")


def _format(value) -> str:
    """A metric as shown: three decimals, counts as integers, NaN named for what it means."""
    if pd.isna(value):
        return "NaN (flat map)"
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{float(value):.3f}"
