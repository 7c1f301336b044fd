"""Peaks of a heatmap by non-maximum suppression (NMS), and the *top* peaks behind PG uncertainty.

Rule (the definition asks for local maxima that survive non-maximum suppression in a square
window; the choices it leaves open are made here):

- The prepared map ``A`` (ReLU, divided by its maximum) is first quantised to ``levels``
  levels, ``q = floor(A * (levels - 1) + 0.5)``, the value an 8-bit heatmap image would show
  for ``levels=256``; ``levels=None`` keeps the exact floats. NMS runs on ``q``, so values that
  an 8-bit image cannot tell apart count as ties.
- A pixel ``p`` is a *peak* when ``q[p]`` is the maximum of the square window of side
  ``nms_window`` centred on ``p`` (clipped at the image border) **and** no pixel before ``p`` in
  row-major order inside that window has the same value. So a plateau of equal values gives one
  peak, its first pixel in row-major order, instead of one peak per pixel; a plateau wider than
  the window can still give more than one (each needs a window's width of separation).
  Pixels at level 0 are background, never peaks.
- The *top* peaks are the peaks with ``q == max(q)`` (``levels - 1`` after normalisation). The
  first top peak in row-major order is always the pointing-game point ``p*``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qgnb.metrics.prepare import check_options, default_nms_window


def quantise(a: torch.Tensor, levels: int | None) -> torch.Tensor:
    """Quantise a prepared map (values in [0, 1]) to ``levels`` integer levels, as floats.

    ``levels=None`` returns ``a`` unchanged (exact ties only).

    >>> quantise(torch.tensor([0.0, 0.3, 0.998, 1.0]), 256).tolist()
    [0.0, 77.0, 254.0, 255.0]
    """
    if levels is None:
        return a
    return torch.floor(a * (levels - 1) + 0.5)


def peak_mask(q: torch.Tensor, nms_window: int) -> torch.Tensor:
    """Bool mask of the NMS peaks of a stack ``q`` of shape ``(N, H, W)`` (rule in the module doc).

    Three window maxima: the full window (is ``p`` the window maximum?), the window's rows above
    ``p`` and the part of ``p``'s row left of it (is there an earlier pixel as large?). A
    maximum over a rectangle is a maximum over rows of maxima over columns, so each is two 1-D
    max-pools sharing the row pass: ``2 * nms_window`` comparisons a pixel, not
    ``nms_window**2``, with the same result.

    >>> peak_mask(torch.tensor([[[0., 1, 1, 0, 0, 0, 2]]]), 3).int().tolist()
    [[[0, 1, 0, 0, 0, 0, 1]]]
    """
    if q.ndim != 3:
        raise ValueError(f"peak_mask expects an (N, H, W) stack, got shape {tuple(q.shape)}")
    h = nms_window // 2
    if h == 0:
        return torch.ones_like(q, dtype=torch.bool)
    x = q[:, None]
    height, width = q.shape[-2:]
    # Max over each pixel's row segment [c - h, c + h] (padding never wins: -inf).
    across = F.max_pool2d(F.pad(x, (h, h, 0, 0), value=-float("inf")), (1, nms_window),
                          stride=1)
    full = F.max_pool2d(F.pad(across, (0, 0, h, h), value=-float("inf")), (nms_window, 1),
                        stride=1)
    upper = F.max_pool2d(F.pad(across, (0, 0, h, 0), value=-float("inf")), (h, 1),
                         stride=1)[..., :height, :]
    left = F.max_pool2d(F.pad(x, (h, 0, 0, 0), value=-float("inf")), (1, h),
                        stride=1)[..., :, :width]
    return ((x >= full) & (x > upper) & (x > left))[:, 0]


def find_peaks(map2d, *, nms_window: int | None = None,
               levels: int | None = 256) -> tuple[np.ndarray, np.ndarray]:
    """NMS peaks of one heatmap (rule in the module doc), for plotting and inspection.

    Returns ``(peaks, is_top)``: ``peaks`` a ``(K, 2)`` int array of ``(row, col)`` in row-major
    order, ``is_top`` a ``(K,)`` bool array marking the top peaks (those at the quantised
    global maximum). A flat map (maximum <= 0 after the ReLU, or constant) has no peaks.

    >>> a = np.zeros((5, 9)); a[1, 1] = 1.0; a[3, 7] = 0.999; a[3, 4] = 0.5
    >>> peaks, is_top = find_peaks(a, nms_window=3)
    >>> peaks.tolist(), is_top.tolist()
    ([[1, 1], [3, 4], [3, 7]], [True, False, True])
    """
    x = torch.as_tensor(np.asarray(map2d) if not torch.is_tensor(map2d) else map2d.detach())
    if x.ndim != 2:
        raise ValueError(f"find_peaks expects a 2-D map, got shape {tuple(x.shape)}")
    _, nms_window, levels, _ = check_options(0, nms_window, levels, 0.5)
    if not x.is_floating_point():
        x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError("find_peaks: the map contains NaN or infinite values")
    top = x.max()
    if top <= 0 or top == x.min():
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=bool)
    q = quantise(x.clamp_min(0) / top, levels)
    window = default_nms_window(*x.shape) if nms_window is None else nms_window
    peaks = (peak_mask(q[None], window)[0] & (q > 0)).nonzero()
    is_top = q[peaks[:, 0], peaks[:, 1]] == q.max()
    return peaks.cpu().numpy(), is_top.cpu().numpy()
