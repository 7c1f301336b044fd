"""The grounding metrics of METRICS.md, batched over a stack of maps in torch (CPU or GPU).

:func:`score` is the entry point. Choices that METRICS.md leaves open, made here:

- **Flat maps** (maximum <= 0 after the ReLU, or constant): every metric is NaN and
  ``n_top_peaks`` is missing. A constant map points nowhere; its soft metrics would only
  measure the box's share of the image, so they are reported as undefined too.
- **Pointing game with tolerance**: ``p*`` (first maximum in row-major order) is a hit when the
  Euclidean distance between its pixel centre and the nearest pixel centre inside ``M`` is at
  most ``tol``. This is TorchRay's rule (``torchray.benchmark.pointing_game``: a hit when any
  mask pixel lies within ``tolerance`` of the point, distances between pixel indices) except
  at the boundary: TorchRay counts ``distance < tolerance`` (so ``tolerance=0`` never hits),
  qgnb counts ``distance <= tol`` as METRICS.md says. Distances between pixel centres are
  square roots of integers, so the two verdicts differ only when the squared distance equals
  ``tol**2`` exactly (at ``tol=15``: offsets (15, 0), (0, 15), (9, 12), (12, 9)).
  The closed-form distance from the centre of ``p*`` to the continuous box would differ by up
  to half a pixel per axis, which is why it is not used here.
- **PG uncertain**: the top peaks (see :mod:`qgnb.metrics.peaks`) are scored like ``p*``;
  the sample is uncertain when their verdicts disagree. ``p*`` is always a top peak.
- **WDP**: ``d(p)`` is the closed form over boxes from the pixel centre, METRICS.md 5.
- **hard_iou / hard_dice**: ``M`` against the prepared map binarised at ``A >= threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from qgnb.metrics.peaks import first_in_window, peak_mask, quantise
from qgnb.metrics.prepare import (
    check_boxes,
    check_options,
    default_nms_window,
    pixel_ranges,
    sample_label,
)

METRIC_COLUMNS = ("pg_hit", "pg_uncertain", "soft_iou", "soft_dice", "hard_iou", "hard_dice",
                  "wdp", "io_ratio")
COLUMNS = METRIC_COLUMNS + ("flat", "n_top_peaks")

# Pixels per chunk: bounds the temporaries (a few copies of the chunk) whatever N is.
CHUNK_PIXELS = 1 << 22
# Above this many pixels at the top level in one sample, its NMS runs dense instead of pairwise.
PAIRWISE_LIMIT = 64


def score(maps, boxes: Sequence, *, tol: float = 0, nms_window: int | None = None,
          levels: int | None = 256, threshold: float = 0.5,
          ids: Sequence | None = None) -> pd.DataFrame:
    """Score heatmaps against ground-truth boxes: one row per sample.

    ``maps``: an ``(N, H, W)`` torch tensor (any device) or numpy array, or a list of 2-D maps
    of different sizes. ``boxes``: per sample a list of ``[x1, y1, x2, y2]`` boxes in that
    map's pixel units (``M`` is their union). Options: ``tol`` pointing-game tolerance in
    pixels, ``nms_window`` odd NMS window side (default 5% of the shorter side, >= 3),
    ``levels`` quantisation levels for top peaks (``None``: exact ties), ``threshold`` for the
    hard metrics, ``ids`` optional sample ids (an ``id`` column first, and named in errors).

    Columns: ``pg_hit, pg_uncertain, soft_iou, soft_dice, hard_iou, hard_dice, wdp, io_ratio``
    (floats; NaN on flat maps), ``flat`` (bool) and ``n_top_peaks`` (nullable int).
    Raises ``ValueError`` naming the sample for NaN/inf in a map, a bad or missing box,
    a map that is not 2-D, or ``len(maps) != len(boxes)``. The choices behind each metric
    are in the module docstring.

    >>> import torch
    >>> a = torch.zeros(1, 4, 4); a[0, 1, 1] = 1.0; a[0, 3, 3] = 1.0
    >>> row = score(a, [[[0, 0, 2, 2]]]).iloc[0]
    >>> float(row.pg_hit), float(row.pg_uncertain), int(row.n_top_peaks), float(row.io_ratio)
    (1.0, 1.0, 2, 0.5)
    """
    check_options(tol, nms_window, levels, threshold)
    groups, n = _as_groups(maps, ids)
    if len(boxes) != n:
        raise ValueError(f"len(maps) = {n} but len(boxes) = {len(boxes)}: one list of boxes "
                         "per map")
    if ids is not None and len(ids) != n:
        raise ValueError(f"len(maps) = {n} but len(ids) = {len(ids)}")
    out = {name: np.full(n, np.nan) for name in METRIC_COLUMNS}
    out["flat"] = np.zeros(n, dtype=bool)
    out["n_top_peaks"] = np.zeros(n, dtype=np.int64)
    for index, stack in groups:
        h, w = stack.shape[-2:]
        clipped = [check_boxes(boxes[i], h, w, sample_label(i, ids)) for i in index]
        window = default_nms_window(h, w) if nms_window is None else nms_window
        per_chunk = max(1, CHUNK_PIXELS // (h * w))
        for start in range(0, len(index), per_chunk):
            part = slice(start, start + per_chunk)
            result = _score_chunk(stack[part], clipped[part], index[part], ids, tol=tol,
                                  window=window, levels=levels, threshold=threshold)
            for name, values in result.items():
                out[name][index[part]] = values
    table = pd.DataFrame({name: out[name] for name in COLUMNS})
    table["n_top_peaks"] = table["n_top_peaks"].astype("Int64").mask(table["flat"])
    if ids is not None:
        table.insert(0, "id", list(ids))
    return table


def _as_groups(maps, ids) -> tuple[list[tuple[np.ndarray, torch.Tensor]], int]:
    """Split the input into same-shape float stacks: ``[(sample indices, (n, H, W) stack)]``."""
    if isinstance(maps, np.ndarray | torch.Tensor):
        if maps.ndim != 3:
            raise ValueError(f"maps must be an (N, H, W) stack (or a list of 2-D maps), got "
                             f"shape {tuple(maps.shape)}")
        stack = _as_float(torch.as_tensor(maps))
        return [(np.arange(len(stack)), stack)], len(stack)
    by_shape: dict[tuple, list[int]] = {}
    tensors = []
    for i, item in enumerate(maps):
        t = _as_float(torch.as_tensor(item))
        if t.ndim != 2:
            raise ValueError(f"{sample_label(i, ids)}: map must be 2-D, got shape "
                             f"{tuple(t.shape)}")
        tensors.append(t)
        by_shape.setdefault((tuple(t.shape), t.device, t.dtype), []).append(i)
    groups = [(np.array(index), torch.stack([tensors[i] for i in index]))
              for index in by_shape.values()]
    return groups, len(tensors)


def _as_float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _score_chunk(x: torch.Tensor, clipped: list[np.ndarray], index: np.ndarray, ids, *,
                 tol: float, window: int, levels: int | None,
                 threshold: float) -> dict[str, np.ndarray]:
    n, h, w = x.shape
    device, dtype = x.device, x.dtype
    flat_x = x.reshape(n, -1)
    top, low = flat_x.amax(dim=1), flat_x.amin(dim=1)
    finite = torch.isfinite(top) & torch.isfinite(low)
    if not bool(finite.all()):
        bad = int(index[int((~finite).nonzero()[0])])
        raise ValueError(f"{sample_label(bad, ids)}: map contains NaN or infinite values")
    flat = (top <= 0) | (top == low)
    a = x.clamp_min(0) / torch.where(flat, 1, top)[:, None, None]

    # Boxes padded to the chunk's largest count: padding gets an empty pixel range and an
    # infinite distance.
    n_box = max(len(b) for b in clipped)
    ranges = np.tile(np.array([1, 0, 1, 0], dtype=np.int64), (n, n_box, 1))
    xyxy = np.full((n, n_box, 4), np.inf)
    for k, b in enumerate(clipped):
        ranges[k, : len(b)] = pixel_ranges(b, h, w)
        xyxy[k, : len(b)] = b
    ranges_t = torch.as_tensor(ranges, device=device)
    xyxy_t = torch.as_tensor(xyxy, device=device, dtype=dtype)

    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    in_rows = (rows >= ranges_t[..., 0:1]) & (rows <= ranges_t[..., 1:2])
    in_cols = (cols >= ranges_t[..., 2:3]) & (cols <= ranges_t[..., 3:4])
    mask = (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)

    maskf = mask.to(dtype)
    area = maskf.sum(dim=(1, 2))
    s_all = a.sum(dim=(1, 2))
    s_in = (a * maskf).sum(dim=(1, 2))
    hard = a >= threshold
    h_in = (hard & mask).sum(dim=(1, 2)).to(dtype)
    h_all = hard.sum(dim=(1, 2)).to(dtype)

    # d(p) = min over boxes of hypot(dx, dy) from the pixel centre (METRICS.md 5).
    yc = rows.to(dtype) + 0.5
    xc = cols.to(dtype) + 0.5
    dy = torch.maximum(xyxy_t[..., 1:2] - yc, yc - xyxy_t[..., 3:4]).clamp_min(0)
    dx = torch.maximum(xyxy_t[..., 0:1] - xc, xc - xyxy_t[..., 2:3]).clamp_min(0)
    d2 = (dy[..., :, None] ** 2 + dx[..., None, :] ** 2).amin(dim=1)
    spill = (a * d2.sqrt()).sum(dim=(1, 2))

    result = {
        "soft_iou": s_in / (area + s_all - s_in),
        "soft_dice": 2 * s_in / (s_all + area),
        "hard_iou": h_in / (h_all + area - h_in),
        "hard_dice": 2 * h_in / (h_all + area),
        "wdp": spill / math.hypot(h, w) / s_all,
        "io_ratio": s_in / s_all,
    }

    # Pixels at the quantised global maximum (the top level); flat maps have none.
    level = quantise(a, levels) == quantise(torch.ones((), device=device, dtype=dtype), levels)
    level &= ~flat[:, None, None]
    sample, r, c = _top_peaks(level, window)
    hit = _hit(r, c, ranges_t[sample], tol)
    n_top = torch.bincount(sample, minlength=n)
    n_hit = torch.bincount(sample, weights=hit.double(), minlength=n)
    # p* = first maximum of A in row-major order = first maximum of the raw map (A == 1 only
    # where x == max(x): for x < m, x / m rounds below 1).
    star = flat_x.argmax(dim=1)
    star_hit = _hit(star // w, star % w, ranges_t, tol)
    result["pg_hit"] = star_hit.to(dtype)
    result["pg_uncertain"] = ((n_hit > 0) & (n_hit < n_top)).to(dtype)
    out = {name: value.double().cpu().numpy() for name, value in result.items()}
    flat_np = flat.cpu().numpy()
    for name in out:
        out[name][flat_np] = np.nan
    out["flat"] = flat_np
    out["n_top_peaks"] = n_top.cpu().numpy()
    return out


def _hit(r: torch.Tensor, c: torch.Tensor, ranges: torch.Tensor, tol: float) -> torch.Tensor:
    """Hit test of points ``(r, c)`` against per-point padded index ranges ``(P, B, 4)``:
    squared distance between pixel centres to the nearest pixel of ``M`` <= ``tol**2``."""
    r, c = r[:, None], c[:, None]
    dr = torch.maximum(ranges[..., 0] - r, r - ranges[..., 1]).clamp_min(0)
    dc = torch.maximum(ranges[..., 2] - c, c - ranges[..., 3]).clamp_min(0)
    # Padded boxes have r0 > r1 and c0 > c1, so they are excluded by making them infinitely far.
    empty = ranges[..., 0] > ranges[..., 1]
    d2 = (dr * dr + dc * dc).double().masked_fill(empty, math.inf)
    return d2.amin(dim=1) <= float(tol) ** 2


def _top_peaks(level: torch.Tensor, window: int) -> tuple[torch.Tensor, ...]:
    """Top peaks of each sample from its top-level mask: ``(sample, row, col)`` in row-major
    order. Pairwise NMS among the few top-level pixels; dense NMS for samples with many."""
    n, _, w = level.shape
    counts = level.reshape(n, -1).sum(dim=1)
    dense = (counts > PAIRWISE_LIMIT).nonzero()[:, 0]
    keep_level = level.clone()
    keep_level[dense] = False
    sample, r, c = keep_level.nonzero().unbind(1)
    keep = torch.ones_like(sample, dtype=torch.bool)
    multi = (counts > 1) & (counts <= PAIRWISE_LIMIT)
    if bool(multi.any()):
        # Candidates of one sample are contiguous (nonzero is row-major); loop only over the
        # samples that have more than one, with pairwise tests inside each.
        starts = torch.cumsum(counts * ~(counts > PAIRWISE_LIMIT), 0) - counts * ~(
            counts > PAIRWISE_LIMIT)
        for k in multi.nonzero()[:, 0].tolist():
            lo, hi = int(starts[k]), int(starts[k]) + int(counts[k])
            keep[lo:hi] = first_in_window(r[lo:hi], c[lo:hi], window)
    parts = [torch.stack([sample[keep], r[keep], c[keep]], dim=1)]
    if len(dense):
        peaks = peak_mask(level[dense].to(torch.float32), window).nonzero()
        peaks[:, 0] = dense[peaks[:, 0]]
        parts.append(peaks)
    allp = torch.cat(parts)
    order = torch.argsort(allp[:, 0] * (level.shape[1] * w) + allp[:, 1] * w + allp[:, 2])
    allp = allp[order]
    return allp[:, 0], allp[:, 1], allp[:, 2]
