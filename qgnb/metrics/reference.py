"""A plain per-sample numpy reference of the metrics, the yardstick of the batched code.

Written independently of :mod:`qgnb.metrics.batched`, as literally as its definitions read:
the mask by testing every pixel centre against every box, PG distances by brute force over
the mask's pixels, NMS by SciPy's maximum filter and a loop over the candidate peaks. Slow,
and meant to be: the tests hold :func:`qgnb.metrics.score` to it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from qgnb.metrics.prepare import check_boxes, default_nms_window


def reference_score(map2d: np.ndarray, boxes, *, tol: float = 0, nms_window: int | None = None,
                    levels: int | None = 256, threshold: float = 0.5) -> dict:
    """Score one map against its boxes; the same keys and meaning as a row of ``score``.

    >>> a = np.zeros((4, 4)); a[1, 1] = 1.0; a[3, 3] = 1.0
    >>> r = reference_score(a, [[0, 0, 2, 2]])
    >>> r["pg_hit"], r["pg_uncertain"], r["n_top_peaks"], r["io_ratio"]
    (1.0, 1.0, 2, 0.5)
    """
    x = np.asarray(map2d)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    h, w = x.shape
    if not np.isfinite(x).all():
        raise ValueError("map contains NaN or infinite values")
    clipped = check_boxes(boxes, h, w)
    nan = float("nan")
    if x.max() <= 0 or x.max() == x.min():
        return {"pg_hit": nan, "pg_uncertain": nan, "soft_iou": nan, "soft_dice": nan,
                "hard_iou": nan, "hard_dice": nan, "wdp": nan, "io_ratio": nan,
                "flat": True, "n_top_peaks": None}
    a = np.maximum(x, 0) / x.max()  # in the map's own dtype, like the batched code

    rows, cols = np.mgrid[0:h, 0:w]
    cy, cx = rows + 0.5, cols + 0.5
    mask = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in clipped:
        mask |= (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
    m = mask.astype(np.float64)
    a64 = a.astype(np.float64)

    soft_iou = np.minimum(a64, m).sum() / np.maximum(a64, m).sum()
    soft_dice = 2 * (a64 * m).sum() / (a64.sum() + m.sum())
    binary = a >= threshold
    hard_iou = (binary & mask).sum() / (binary | mask).sum()
    hard_dice = 2 * (binary & mask).sum() / (binary.sum() + mask.sum())
    dist = np.full((h, w), np.inf)
    for x1, y1, x2, y2 in clipped:
        dx = np.maximum(np.maximum(x1 - cx, 0), cx - x2)
        dy = np.maximum(np.maximum(y1 - cy, 0), cy - y2)
        dist = np.minimum(dist, np.hypot(dx, dy))
    wdp = (a64 * dist)[~mask].sum() / math.hypot(h, w) / a64.sum()
    io_ratio = (a64 * m).sum() / a64.sum()

    inside = np.argwhere(mask)

    def hit(r: int, c: int) -> bool:
        return bool(np.hypot(inside[:, 0] - r, inside[:, 1] - c).min() <= tol)

    star = np.unravel_index(np.argmax(a), a.shape)
    peaks, is_top = reference_peaks(x, nms_window=nms_window, levels=levels)
    verdicts = {hit(r, c) for r, c in peaks[is_top]}
    return {"pg_hit": float(hit(*star)), "pg_uncertain": float(len(verdicts) > 1),
            "soft_iou": float(soft_iou), "soft_dice": float(soft_dice),
            "hard_iou": float(hard_iou), "hard_dice": float(hard_dice), "wdp": float(wdp),
            "io_ratio": float(io_ratio), "flat": False, "n_top_peaks": int(is_top.sum())}


def reference_peaks(map2d: np.ndarray, *, nms_window: int | None = None,
                    levels: int | None = 256) -> tuple[np.ndarray, np.ndarray]:
    """NMS peaks of one (non-flat) map, as :func:`qgnb.metrics.find_peaks` defines them.

    >>> reference_peaks(np.array([[0., 1, 1, 0, 0, 0, 2]]), nms_window=3)[0].tolist()
    [[0, 1], [0, 6]]
    """
    x = np.asarray(map2d)
    a = np.maximum(x, 0) / x.max()
    q = a if levels is None else np.floor(a * (levels - 1) + 0.5)
    k = default_nms_window(*q.shape) if nms_window is None else nms_window
    half = k // 2
    is_max = q == ndimage.maximum_filter(q, size=k, mode="constant", cval=-np.inf)
    peaks = []
    for r, c in np.argwhere(is_max & (q > 0)):
        window = q[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1]
        # Index of p inside the window; an equal value before it (row-major) suppresses p.
        wr, wc = r - max(r - half, 0), c - max(c - half, 0)
        before = np.flatnonzero(window.ravel() == q[r, c])[0] < wr * window.shape[1] + wc
        if not before:
            peaks.append((r, c))
    peaks = np.array(peaks, dtype=np.int64).reshape(-1, 2)
    return peaks, q[peaks[:, 0], peaks[:, 1]] == q.max()
