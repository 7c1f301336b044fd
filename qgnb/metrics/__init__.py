"""qgnb.metrics: the grounding metrics of METRICS.md, batched in torch, with a numpy reference.

``score`` scores a stack of maps against boxes (one row per sample), ``summarize`` and
``compare`` aggregate score tables, ``find_peaks`` and ``box_mask`` expose the peak and region
rules for plotting.
"""

from qgnb.metrics.aggregate import compare, summarize
from qgnb.metrics.batched import COLUMNS, METRIC_COLUMNS, score
from qgnb.metrics.peaks import find_peaks
from qgnb.metrics.prepare import box_mask, default_nms_window

__all__ = ["COLUMNS", "METRIC_COLUMNS", "box_mask", "compare", "default_nms_window",
           "find_peaks", "score", "summarize"]
