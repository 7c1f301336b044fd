"""Input checks and the shared conventions: box clipping, box -> mask by pixel centres.

Conventions: boxes are ``xyxy`` in continuous pixel units, pixel ``(row i,
column j)`` covers ``[j, j+1] x [i, i+1]`` and lies inside a box when its centre
``(j + 0.5, i + 0.5)`` does, edges included. Boxes are clipped to the image; a box that covers
no pixel centre after clipping, an inverted box or a non-finite box is bad input.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def sample_label(index: int, ids: Sequence | None = None) -> str:
    """The name of sample ``index`` in error messages: ``"sample 3"`` or ``"sample 3 (id 'a')"``.

    >>> sample_label(3, ["x", "y", "z", "a"])
    "sample 3 (id 'a')"
    """
    if ids is None:
        return f"sample {index}"
    return f"sample {index} (id {ids[index]!r})"


def check_boxes(boxes, h: int, w: int, where: str = "boxes") -> np.ndarray:
    """Validate one sample's boxes and clip them to an ``h x w`` image.

    Returns a ``(B, 4)`` float64 array of clipped ``xyxy`` boxes. Raises ``ValueError``
    (prefixed with ``where``) for no box, a non-finite or inverted box, or a box that covers
    no pixel centre once clipped (fully outside the image, or thinner than a pixel between
    two centres).

    >>> check_boxes([[-5, 1, 2, 9]], 4, 4).tolist()
    [[0.0, 1.0, 2.0, 4.0]]
    """
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: boxes {boxes!r} are not numbers ({err})") from None
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None]
    if arr.size == 0:
        raise ValueError(f"{where}: has no box (the ground-truth region would be empty)")
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{where}: boxes must be a list of [x1, y1, x2, y2], got shape "
                         f"{arr.shape}")
    for box in arr:
        shown = _show(box)
        if not np.isfinite(box).all():
            raise ValueError(f"{where}: box {shown} is not finite")
        if box[2] < box[0]:
            raise ValueError(f"{where}: box {shown} has x2 < x1")
        if box[3] < box[1]:
            raise ValueError(f"{where}: box {shown} has y2 < y1")
    clipped = np.clip(arr, 0.0, [w, h, w, h])
    r0, r1, c0, c1 = pixel_ranges(clipped, h, w).T
    empty = (r0 > r1) | (c0 > c1)
    if empty.any():
        k = int(np.flatnonzero(empty)[0])
        raise ValueError(f"{where}: box {_show(arr[k])} covers no pixel centre of the "
                         f"{h}x{w} image after clipping")
    return clipped


def padded_boxes(boxes: Sequence, index: Sequence[int], h: int, w: int,
                 ids: Sequence | None = None) -> np.ndarray:
    """Check and clip the boxes of samples ``index`` (all ``h x w``) at once.

    Returns an ``(n, B, 4)`` float64 array, ``B`` the largest box count, padded with NaN.
    The checks are those of :func:`check_boxes`, vectorised; the first failing sample is
    reported by :func:`check_boxes` itself, so the messages are the same.

    >>> padded_boxes([[[0, 0, 2, 2]], [[1, 1, 3, 3], [-1, 0, 9, 1]]], [0, 1], 4, 4)[:, :, 2]
    array([[ 2., nan],
           [ 3.,  4.]])
    """
    arrays = []
    for i in index:
        try:
            arrays.append(np.asarray(boxes[i], dtype=np.float64).reshape(-1, 4))
        except (TypeError, ValueError):
            check_boxes(boxes[i], h, w, sample_label(i, ids))
            raise
    counts = np.array([len(a) for a in arrays])
    padded = np.full((len(arrays), max(counts.max(initial=0), 1), 4), np.nan)
    for k, a in enumerate(arrays):
        padded[k, : len(a)] = a
    real = np.arange(padded.shape[1]) < counts[:, None]
    clipped = np.clip(padded, 0.0, [w, h, w, h])
    r0, r1, c0, c1 = np.moveaxis(pixel_ranges(clipped.reshape(-1, 4), h, w).reshape(
        *padded.shape[:2], 4), -1, 0)
    with np.errstate(invalid="ignore"):
        good = (np.isfinite(padded).all(axis=2) & (padded[..., 2] >= padded[..., 0])
                & (padded[..., 3] >= padded[..., 1]) & (r0 <= r1) & (c0 <= c1))
    bad = (counts == 0) | (real & ~good).any(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        check_boxes(boxes[index[k]], h, w, sample_label(index[k], ids))
        raise AssertionError("unreachable: check_boxes accepts what padded_boxes rejects")
    return clipped


def pixel_ranges(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inclusive index ranges ``(r0, r1, c0, c1)`` of the pixels whose centres lie in each box.

    Column ``j`` is inside ``[x1, x2]`` when ``x1 <= j + 0.5 <= x2``, that is
    ``ceil(x1 - 0.5) <= j <= floor(x2 - 0.5)``; the ranges are clipped to the image, so an
    empty box has ``r0 > r1`` or ``c0 > c1``.

    >>> pixel_ranges(np.array([[0.5, 0.0, 2.0, 1.6]]), 4, 4).tolist()
    [[0, 1, 0, 1]]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    boxes = np.nan_to_num(boxes, nan=-1.0)  # NaN (padding) gives an empty range
    c0 = np.maximum(np.ceil(boxes[:, 0] - 0.5), 0)
    c1 = np.minimum(np.floor(boxes[:, 2] - 0.5), w - 1)
    r0 = np.maximum(np.ceil(boxes[:, 1] - 0.5), 0)
    r1 = np.minimum(np.floor(boxes[:, 3] - 0.5), h - 1)
    return np.stack([r0, r1, c0, c1], axis=1).astype(np.int64)


def box_mask(boxes, h: int, w: int) -> np.ndarray:
    """The region ``M``: an ``(h, w)`` bool mask, True where a pixel centre lies in some box.

    Boxes are checked and clipped as in :func:`check_boxes`.

    >>> box_mask([[0, 0, 2, 1], [3, 2, 4, 4]], 3, 4).astype(int).tolist()
    [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    """
    clipped = check_boxes(boxes, h, w)
    mask = np.zeros((h, w), dtype=bool)
    for r0, r1, c0, c1 in pixel_ranges(clipped, h, w):
        mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


def default_nms_window(h: int, w: int) -> int:
    """Default NMS window: 5% of the shorter side rounded half up, at least 3, made odd (+1).

    >>> default_nms_window(384, 384), default_nms_window(40, 60), default_nms_window(100, 90)
    (19, 3, 5)
    """
    size = max(3, math.floor(0.05 * min(h, w) + 0.5))
    return size if size % 2 == 1 else size + 1


def check_options(tol: float, nms_window: int | None, levels: int | None,
                  threshold: float) -> tuple[float, int | None, int | None, float]:
    """Check the options of :func:`qgnb.metrics.score`; return them as plain Python numbers.

    Numpy scalars (``np.int64(15)``, a ``np.float32`` threshold) are numbers like any other;
    booleans are not. Raises ``ValueError`` naming the option for a wrong type or range.

    >>> check_options(np.int64(15), np.int64(5), 256, np.float32(0.5))
    (15.0, 5, 256, 0.5)
    """
    if not (_is_real(tol) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if nms_window is not None and (not _is_integer(nms_window) or nms_window < 1
                                   or nms_window % 2 == 0):
        raise ValueError(f"nms_window must be an odd integer >= 1 (or None), got {nms_window!r}")
    if levels is not None and (not _is_integer(levels) or levels < 2):
        raise ValueError(f"levels must be an integer >= 2 (or None), got {levels!r}")
    if not (_is_real(threshold) and 0 <= threshold <= 1):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return (float(tol), None if nms_window is None else int(nms_window),
            None if levels is None else int(levels), float(threshold))


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _show(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"
