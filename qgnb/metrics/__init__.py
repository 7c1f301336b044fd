"""qgnb.metrics: the grounding metrics, batched in torch, with a per-sample numpy reference.

``score`` scores a stack of maps against boxes (one row per sample), ``summarize`` and
``compare`` aggregate score tables, ``mean_intervals``, ``interval_table`` and
``correlation_of_means`` put bootstrap intervals on them, ``find_peaks`` and ``box_mask``
expose the peak and region rules for plotting, and ``failure_cases`` builds the hand-made maps
on which the pointing game misleads. The definitions are in :mod:`qgnb.metrics.batched`.
"""

from qgnb.metrics.aggregate import compare, summarize
from qgnb.metrics.batched import COLUMNS, METRIC_COLUMNS, score
from qgnb.metrics.cases import CASE_NAMES, failure_cases
from qgnb.metrics.intervals import correlation_of_means, interval_table, mean_intervals
from qgnb.metrics.peaks import find_peaks
from qgnb.metrics.prepare import box_mask, default_nms_window

__all__ = ["CASE_NAMES", "COLUMNS", "METRIC_COLUMNS", "box_mask", "compare",
           "correlation_of_means", "default_nms_window", "failure_cases", "find_peaks",
           "interval_table", "mean_intervals", "score", "summarize"]
