"""qgnb.metrics: the grounding metrics, batched in torch, with a per-sample numpy reference.

``score`` scores a stack of maps against boxes (one row per sample), ``summarize`` and
``compare`` aggregate score tables, ``find_peaks`` and ``box_mask`` expose the peak and region
rules for plotting. The definitions are in :mod:`qgnb.metrics.batched`.
"""

from qgnb.metrics.aggregate import compare, summarize
from qgnb.metrics.batched import COLUMNS, METRIC_COLUMNS, score
from qgnb.metrics.peaks import find_peaks
from qgnb.metrics.prepare import box_mask, default_nms_window

__all__ = ["COLUMNS", "METRIC_COLUMNS", "box_mask", "compare", "default_nms_window",
           "find_peaks", "score", "summarize"]
