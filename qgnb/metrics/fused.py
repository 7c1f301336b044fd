"""The per-pixel work of :func:`qgnb.metrics.score` on CPU, compiled into one pass a map.

Every metric needs the same few sums over the pixels (``sum A``, ``sum A M``, ``sum A d``, the
hard mask's two counts, and checks for constant and non-finite maps). In eager torch each is
one or more element-wise operations over the whole stack, about fifteen in all, and each
costs about as much as ``maps.sum()`` on CPU whether the data is in cache or not. Here they
are one loop a row, compiled by numba, that reads each pixel once and keeps everything else
in registers and vector lanes. ``score`` first takes the row maxima with torch (the scale of
``A`` needs each map's maximum before the pass). The arithmetic is the eager version's
(:func:`qgnb.metrics.batched._dense_sums`, still used on GPUs), pixel for pixel:

- ``A = max(x, 0) / scale`` in the map's dtype (a division, never a reciprocal: the hard mask
  compares ``A`` itself with the threshold);
- ``d^2 = min over boxes of dy2[box, row] + dx2[box, col]``; ``M`` exactly where ``d^2 == 0``,
  ``d = sqrt(d^2)``;
- sums accumulated in the map's dtype along a row (reordered into vector lanes) and in
  float64 across rows.

The pixels at the top quantisation level (for PG uncertainty) are then found by reading only
the rows whose maximum reaches it, and the NMS among them scans back over the earlier ones in
the window's rows.

No library computes these fused sums; numba is the well-kept way to fuse them on CPU without a
C++ compiler at run time (``torch.compile`` needs one, and compiles for seconds per shape).
Functions are compiled on first use and cached beside the module.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Reassociation (vector lanes for the row sums), FMA contraction and signed zeros; never
# "no NaNs" (NaN maps must stay visible) nor reciprocals (A is compared with the threshold).
_FASTMATH = {"reassoc", "contract", "nsz"}
# Boxes tested inline per pixel (padded with infinitely far ones); more go through a row buffer.
INLINE_BOXES = 4


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def region_sums(x: np.ndarray, scale: np.ndarray, level: np.ndarray, threshold: np.ndarray,
                dy2: np.ndarray, dx2: np.ndarray, dy2_rest: np.ndarray, dx2_rest: np.ndarray,
                sums: np.ndarray, found: np.ndarray,
                n_found: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per map ``k`` of ``x`` (n, H, W), into ``sums[k]``: ``sum A``, ``sum A M``,
    ``sum A d``, ``sum [A >= threshold]``, ``sum [A >= threshold] M``, the number of pixels
    equal to ``scale[k]`` (all of them: a constant map), and ``sum 0 * x`` (NaN when a value
    is NaN or infinite). The pixels ``x >= level[k]`` go, as flat indices in row-major order,
    into ``found`` (as many as fit) and their number into ``n_found[0]``: a row that holds
    one is scanned again while it is still in cache, which costs far less than reading those
    rows again later.

    ``scale`` (n,) and ``threshold`` (1,) in the map's dtype; ``dy2`` (n, 4, H) and ``dx2``
    (n, 4, W) the squared distances of rows and columns to the first four boxes (padding
    infinite; a map whose third and fourth are padding takes a shorter loop), ``dy2_rest`` /
    ``dx2_rest`` those of the other boxes (n, R, H) / (n, R, W). Only sums and counts (no
    minimum or maximum over pixels, which do not vectorise without assuming away NaN) in the
    loop over a row, so that it runs in vector lanes."""
    n, h, w = x.shape
    n_rest = dy2_rest.shape[1]
    zero = scale[0] * 0  # in the map's dtype (scale is never NaN)
    one = zero + 1
    t = threshold[0]
    rest = np.full(w, np.inf, dtype=dx2.dtype)
    i = 0
    for k in range(n):
        s = scale[k]
        tl = level[k]
        two_boxes = n_rest == 0 and np.isinf(dy2[k, 2, 0]) and np.isinf(dy2[k, 3, 0])
        total = np.zeros(7)
        for r in range(h):
            if n_rest:
                for c in range(w):
                    rest[c] = dy2_rest[k, 0, r] + dx2_rest[k, 0, c]
                for b in range(1, n_rest):
                    for c in range(w):
                        rest[c] = min(rest[c], dy2_rest[k, b, r] + dx2_rest[k, b, c])
            y0, y1, y2, y3 = dy2[k, 0, r], dy2[k, 1, r], dy2[k, 2, r], dy2[k, 3, r]
            s_all = s_in = spill = hard_all = hard_in = equal = check = at_level = zero
            if two_boxes:
                for c in range(w):
                    d2 = min(y0 + dx2[k, 0, c], y1 + dx2[k, 1, c])
                    m = one if d2 == 0 else zero
                    v = x[k, r, c]
                    a = (v if v > zero else zero) / s
                    hard = one if a >= t else zero
                    s_all += a
                    s_in += a * m
                    spill += a * math.sqrt(d2)
                    hard_all += hard
                    hard_in += hard * m
                    equal += one if v == s else zero
                    check += v * zero
                    at_level += one if v >= tl else zero
            else:
                for c in range(w):
                    d2 = min(min(min(y0 + dx2[k, 0, c], y1 + dx2[k, 1, c]),
                                 min(y2 + dx2[k, 2, c], y3 + dx2[k, 3, c])), rest[c])
                    m = one if d2 == 0 else zero
                    v = x[k, r, c]
                    a = (v if v > zero else zero) / s
                    hard = one if a >= t else zero
                    s_all += a
                    s_in += a * m
                    spill += a * math.sqrt(d2)
                    hard_all += hard
                    hard_in += hard * m
                    equal += one if v == s else zero
                    check += v * zero
                    at_level += one if v >= tl else zero
            total[0] += s_all
            total[1] += s_in
            total[2] += spill
            total[3] += hard_all
            total[4] += hard_in
            total[5] += equal
            total[6] += check
            if at_level > 0:
                for c in range(w):
                    if x[k, r, c] >= tl:
                        if i < len(found):
                            found[i] = (k * h + r) * w + c
                        i += 1
        sums[k, :] = total
    n_found[0] = i


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def level_counts(x: np.ndarray, row_max: np.ndarray, level: np.ndarray,
                 skip: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Per map, its pixels ``x >= level`` (0 for a map to ``skip``); only the rows whose
    maximum reaches the level are read, each counted in vector lanes."""
    n, h, w = x.shape
    counts = np.zeros(n, np.int64)
    for k in range(n):
        if skip[k]:
            continue
        t = level[k]
        one, zero = t - t + 1, t - t
        total = 0.0
        for r in range(h):
            if row_max[k, r] >= t:
                found = zero
                for c in range(w):
                    found += one if x[k, r, c] >= t else zero
                total += found
        counts[k] = int(total)
    return counts


@numba.njit(cache=True, nogil=True)
def level_pixels(x: np.ndarray, row_max: np.ndarray, level: np.ndarray,
                 counts: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``(sum(counts), 3)`` rows ``(map, row, col)``, row-major, of the pixels ``x >= level``
    of each map whose count is not 0; only rows whose maximum reaches the level are read."""
    out = np.empty((counts.sum(), 3), np.int64)
    i = 0
    n, h, w = x.shape
    for k in range(n):
        if counts[k] == 0:
            continue
        for r in range(h):
            if row_max[k, r] >= level[k]:
                for c in range(w):
                    if x[k, r, c] >= level[k]:
                        out[i, 0], out[i, 1], out[i, 2] = k, r, c
                        i += 1
    return out


@numba.njit(cache=True, nogil=True)
def earlier_in_window(sample: np.ndarray, r: np.ndarray, c: np.ndarray,
                      half: int) -> np.ndarray:  # pragma: no cover - compiled
    """For pixels ``(sample, r, c)`` in row-major order: whether an earlier one of the same
    sample lies in the window of half-side ``half`` around each (the same row within ``half``
    columns to the left, or one of the ``half`` rows above within ``half`` columns either
    side). Scans back over the earlier pixels of those rows only."""
    found = np.zeros(len(sample), np.bool_)
    for i in range(len(sample)):
        j = i - 1
        while j >= 0 and sample[j] == sample[i] and r[j] >= r[i] - half:
            if abs(c[j] - c[i]) <= half:
                found[i] = True
                break
            j -= 1
    return found


@numba.njit(cache=True, nogil=True)
def _squared_gaps(first: np.ndarray, last: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  size: int, tiny: float) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty((*first.shape, size))
    for k in range(first.shape[0]):
        for b in range(first.shape[1]):
            for i in range(size):
                centre = i + 0.5
                if lo[k, b] <= i <= hi[k, b]:
                    out[k, b, i] = 0.0
                elif np.isnan(first[k, b]):
                    out[k, b, i] = np.inf
                else:
                    gap = max(first[k, b] - centre, centre - last[k, b], 0.0)
                    out[k, b, i] = max(gap * gap, tiny)
    return out


def squared_gaps(first: np.ndarray, last: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 size: int, tiny: float) -> np.ndarray:
    """Squared distance (float64) from the centre of each row (or column) ``i < size`` to each
    box's extent ``[first, last]`` along that axis, ``(n, B)`` each: exactly 0 where
    ``lo <= i <= hi`` (the pixel ranges, so that ``d == 0`` is exactly ``M``), at least
    ``tiny`` elsewhere (never rounded to 0 in the maps' dtype), infinite for padding (NaN).

    >>> squared_gaps(np.array([[1.0, np.nan]]), np.array([[2.0, np.nan]]),
    ...              np.array([[1, 1]]), np.array([[1, 0]]), 4, 1e-38).tolist()
    [[[0.25, 0.0, 0.25, 2.25], [inf, inf, inf, inf]]]
    """
    return _squared_gaps(np.asarray(first, np.float64), np.asarray(last, np.float64),
                         np.asarray(lo, np.int64), np.asarray(hi, np.int64), size, tiny)


def dense_sums(x: np.ndarray, scale: np.ndarray, level: np.ndarray, dy2: np.ndarray,
               dx2: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The pass over the pixels of a C-contiguous stack ``x`` (n, H, W), float32 or float64,
    given each map's ``scale`` (its maximum, or 1) and top ``level`` threshold: the per-map
    sums (n, 7) in float64 (``sum A``, ``sum A M``, ``sum A d``, hard-mask pixels, hard-mask
    pixels in M, pixels equal to the scale, NaN if a value is not finite) and the pixels at
    the level as ``(map, row, col)`` rows in row-major order, or None when there were more
    than ``8 * n * H`` of them (then :func:`level_counts` and :func:`level_pixels` find them).

    >>> x = np.zeros((1, 2, 3), np.float32); x[0, 0, 1] = 2.0; x[0, 1, 2] = 1.0
    >>> dy2 = np.array([[[0.0, 1.0]]], np.float32); dx2 = np.array([[[1.0, 0.0, 0.0]]], np.float32)
    >>> two = np.array([2.0], np.float32)
    >>> sums, at_top = dense_sums(x, two, two, dy2, dx2, 0.5)
    >>> sums[0].tolist(), at_top.tolist()  # A = x / 2; M: row 0, columns 1-2
    ([1.5, 1.0, 0.5, 2.0, 1.0, 1.0, 0.0], [[0, 0, 1]])
    """
    n, h, w = x.shape

    def split(d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inline = np.full((n, INLINE_BOXES, d2.shape[2]), np.inf, x.dtype)
        inline[:, : d2.shape[1]] = d2[:, :INLINE_BOXES]
        return inline, np.ascontiguousarray(d2[:, INLINE_BOXES:], dtype=x.dtype)

    (dy2_inline, dy2_rest), (dx2_inline, dx2_rest) = split(dy2), split(dx2)
    sums, found, n_found = np.empty((n, 7)), np.empty(8 * n * h, np.int64), np.zeros(1, np.int64)
    region_sums(x, scale.astype(x.dtype), level.astype(x.dtype), np.array([threshold], x.dtype),
                dy2_inline, dx2_inline, dy2_rest, dx2_rest, sums, found, n_found)
    if n_found[0] > len(found):
        return sums, None
    flat = found[: n_found[0]]
    return sums, np.stack([flat // (h * w), flat // w % h, flat % w], axis=1)


def compile_all() -> None:
    """Compile (or load from the cache) every kernel for float32 and float64 maps, so that the
    first ``score`` of a session does not pay for it (``make install`` runs this once)."""
    for dtype in (np.float32, np.float64):
        x = np.zeros((1, 2, 2), dtype)
        scale, gaps = np.ones(1, dtype), np.zeros((1, 1, 2), dtype)
        dense_sums(x, scale, scale, gaps, gaps, 0.5)
        counts = level_counts(x, x.max(axis=2), scale, np.zeros(1, np.bool_))
        level_pixels(x, x.max(axis=2), scale, counts)
    squared_gaps(np.zeros((1, 1)), np.ones((1, 1)), np.zeros((1, 1), np.int64),
                 np.zeros((1, 1), np.int64), 2, 1e-38)
    earlier_in_window(np.zeros(2, np.int64), np.zeros(2, np.int64), np.arange(2), 1)
