"""The grounding metrics (Q-GroundCAM), batched over a stack of maps in torch (CPU or GPU).

A heatmap ``x`` (H x W) is scored against the region ``M``, the union of its sample's boxes
(pixels whose centres lie in a box, see :mod:`qgnb.metrics.prepare`). The prepared map is
``A = relu(x) / max(relu(x))``, in [0, 1]. Per sample:

- ``pg_hit``: the first maximum ``p*`` of ``A`` (row-major) lies in ``M``, or within ``tol``
  pixels of it. ``pg_uncertain``: the top peaks of ``A`` (:mod:`qgnb.metrics.peaks`) fall on
  both sides of ``M`` (tolerance applied as for the hit).
- ``soft_iou = sum(min(A, M)) / sum(max(A, M))``, ``soft_dice = 2 sum(A M) / (sum A + |M|)``;
  ``hard_iou`` and ``hard_dice``: the same with ``A`` binarised at ``A >= threshold``.
- ``wdp = sum over p outside M of A(p) d(p) / D``, divided by ``sum A``: ``d(p)`` the distance
  from the centre of pixel ``p`` to the nearest box, ``min over boxes of hypot(max(x1 - x, 0,
  x - x2), max(y1 - y, 0, y - y2))``, and ``D = sqrt(H^2 + W^2)``. Lower is better; 0 when
  nothing lies outside ``M``.
- ``io_ratio = S_in / (S_in + S_out)`` (``sigmoid(log(S_in / S_out))`` without the log of 0),
  the sums of ``A`` inside and outside ``M``; Quantus calls it ``RelevanceMassAccuracy``.

:func:`score` is the entry point. Choices that the paper's wording leaves open, made here:

- **Flat maps** (maximum <= 0 after the ReLU, or constant): every metric is NaN and
  ``n_top_peaks`` is missing. A constant map points nowhere; its soft metrics would only
  measure the box's share of the image, so they are reported as undefined too.
- **Pointing game with tolerance**: ``p*`` (first maximum in row-major order) is a hit when the
  Euclidean distance between its pixel centre and the nearest pixel centre inside ``M`` is at
  most ``tol``. This is TorchRay's rule (``torchray.benchmark.pointing_game``: a hit when any
  mask pixel lies within ``tolerance`` of the point, distances between pixel indices) except
  at the boundary: TorchRay counts ``distance < tolerance`` (so ``tolerance=0`` never hits),
  qgnb counts ``distance <= tol`` (the definition above). Distances between pixel centres are
  square roots of integers, so the two verdicts differ only when the squared distance equals
  ``tol**2`` exactly (at ``tol=15``: offsets (15, 0), (0, 15), (9, 12), (12, 9)).
  The closed-form distance from the centre of ``p*`` to the continuous box would differ by up
  to half a pixel per axis, which is why it is not used here.
- **PG uncertain**: the top peaks (see :mod:`qgnb.metrics.peaks`) are scored like ``p*``;
  the sample is uncertain when their verdicts disagree. ``p*`` is always a top peak.
- **WDP**: ``d(p)`` is the closed form over boxes from the pixel centre (no distance
  transform): the distance to the box, not to the nearest pixel centre inside it.
- **hard_iou / hard_dice**: ``M`` against the prepared map binarised at ``A >= threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from qgnb.metrics import fused
from qgnb.metrics.peaks import peak_mask, quantise
from qgnb.metrics.prepare import (
    check_options,
    default_nms_window,
    padded_boxes,
    pixel_ranges,
    sample_label,
)

METRIC_COLUMNS = ("pg_hit", "pg_uncertain", "soft_iou", "soft_dice", "hard_iou", "hard_dice",
                  "wdp", "io_ratio")
COLUMNS = METRIC_COLUMNS + ("flat", "n_top_peaks")

# Pixels per chunk: bounds the workspace (16 bytes a pixel for float32) whatever N is; on CPU
# small enough to stay in cache, on GPU large enough to fill the device. The compiled CPU path
# needs no workspace: its chunks only pace the progress bar.
CHUNK_PIXELS = {"cpu": 1 << 19, "cuda": 1 << 25, "fused": 1 << 24}
# On CPU the per-pixel work runs compiled (qgnb.metrics.fused); False: eager torch, as on GPUs
# (the tests run both paths against the reference).
FUSED_ON_CPU = True
# A progress bar from this many maps in one group (a few seconds of work on a laptop CPU).
PROGRESS_FROM = 8192


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
    tol, nms_window, levels, threshold = check_options(tol, nms_window, levels, threshold)
    ids = None if ids is None else list(ids)  # positional, whatever the container's index
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
        clipped = padded_boxes(boxes, index, h, w, ids)
        window = default_nms_window(h, w) if nms_window is None else nms_window
        fused_path = stack.device.type == "cpu" and FUSED_ON_CPU
        budget = CHUNK_PIXELS["fused"] if fused_path else CHUNK_PIXELS.get(stack.device.type,
                                                                           CHUNK_PIXELS["cpu"])
        per_chunk = min(len(index), max(1, budget // (h * w)))
        ranges, dy2, dx2 = _box_tensors(clipped, h, w, stack.dtype, stack.device)
        dense = _FusedDenseSums(stack, levels) if fused_path else _EagerDenseSums(
            per_chunk, h, w, stack.dtype, stack.device)
        parts = []
        with tqdm(total=len(index), desc="score", unit="map", leave=False,
                  disable=len(index) < PROGRESS_FROM) as progress:
            for k in range(0, len(index), per_chunk):
                parts.append(dense(stack[k : k + per_chunk], dy2[k : k + per_chunk],
                                   dx2[k : k + per_chunk], threshold))
                progress.update(len(parts[-1][0]))
        row_max, sums = (torch.cat([p[i] for p in parts]) for i in (0, 1))
        level = (torch.cat([p[2] for p in parts]).unbind(1)
                 if fused_path else None)
        result = _metrics(stack, row_max, sums, ranges, index, ids, tol=tol, window=window,
                          levels=levels, level=level)
        for name, values in result.items():
            out[name][index] = values
    table = pd.DataFrame({name: out[name] for name in COLUMNS})
    table["n_top_peaks"] = table["n_top_peaks"].astype("Int64").mask(table["flat"])
    if ids is not None:
        table.insert(0, "id", ids)
    return table


def _as_groups(maps, ids) -> tuple[list[tuple[np.ndarray, torch.Tensor]], int]:
    """Split the input into same-shape float stacks: ``[(sample indices, (n, H, W) stack)]``."""
    if isinstance(maps, np.ndarray | torch.Tensor):
        if maps.ndim != 3:
            raise ValueError(f"maps must be an (N, H, W) stack (or a list of 2-D maps), got "
                             f"shape {tuple(maps.shape)}")
        stack = _as_float(torch.as_tensor(maps))
        return ([(np.arange(len(stack)), stack)] if len(stack) else []), len(stack)
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
    t = t.detach()  # a map straight from an explainer may still require grad
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class _FusedDenseSums:
    """:func:`_dense_sums` on CPU, plus the pixels at the top level (what
    :func:`_top_level_pixels` finds): the row maxima of the whole stack first (torch, one
    pass), each map's top-level threshold from them, then per chunk one compiled pass for
    everything else (:mod:`qgnb.metrics.fused`). Chunks are taken in order; their top-level
    pixels come back as ``(map, row, col)`` rows numbered across the chunks."""

    def __init__(self, stack: torch.Tensor, levels: int | None):
        self.row_max = stack.amax(dim=2)  # NaN propagates: such a map is reported by _metrics
        self.top = self.row_max.amax(dim=1)
        self.scale = torch.where((self.top > 0) & torch.isfinite(self.top), self.top, 1)
        self.level = _top_level_threshold(self.scale, self.scale, levels)
        self.done = 0

    def __call__(self, x: torch.Tensor, dy2: torch.Tensor, dx2: torch.Tensor,
                 threshold: float) -> tuple[torch.Tensor, ...]:
        part = slice(self.done, self.done + len(x))
        x_np, row_max, top = x.contiguous().numpy(), self.row_max[part], self.top[part]
        level = self.level[part].numpy()
        sums, found = fused.dense_sums(x_np, self.scale[part].numpy(), level, dy2.numpy(),
                                       dx2.numpy(), threshold)
        sums = torch.from_numpy(sums)
        nonfinite = ~torch.isfinite(top) | torch.isnan(sums[:, 6])
        constant = sums[:, 5] == x[0].numel()
        flat = ((top <= 0) | constant | nonfinite).numpy()
        if found is None:  # too many to keep in one pass (saturated maps): read those rows again
            row_max_np = row_max.numpy()
            counts = fused.level_counts(x_np, row_max_np, level, flat)
            found = fused.level_pixels(x_np, row_max_np, level, counts)
        else:
            found = found[~flat[found[:, 0]]]
        found = torch.from_numpy(found)
        found[:, 0] += self.done
        self.done += len(x)
        head = torch.stack([top.double(), nonfinite.double(), constant.double()], dim=1)
        return row_max, torch.cat([head, sums[:, :5]], dim=1), found


class _EagerDenseSums:
    """:func:`_dense_sums` with float buffers reused by every chunk of one group (the path
    for GPUs, where eager element-wise operations are cheap). Fresh full-size temporaries
    per chunk cost more than the arithmetic (page faults), and only fast float element-wise
    ops are used (comparisons into bool and bool -> float copies are several times slower)."""

    def __init__(self, n: int, h: int, w: int, dtype: torch.dtype, device: torch.device):
        def buffer() -> torch.Tensor:
            return torch.empty(n, h, w, dtype=dtype, device=device)

        self.a, self.hard, self.inside, self.d = (buffer() for _ in range(4))

    def __call__(self, x: torch.Tensor, dy2: torch.Tensor, dx2: torch.Tensor,
                 threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
        return _dense_sums(x, dy2, dx2, self, threshold)


def _dense_sums(x: torch.Tensor, dy2: torch.Tensor, dx2: torch.Tensor, ws: _EagerDenseSums,
                threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The passes over the pixels of a chunk ``x`` ``(n, H, W)``, in eager torch: its row
    maxima ``(n, H)`` and the per-map sums ``(n, 8)``: max, whether a value is NaN or infinite
    (0/1, reported later), whether the map is constant (0/1), S_all, S_in, the WDP numerator,
    hard-mask pixels, hard-mask pixels in M."""
    n = x.shape[0]
    row_max, row_min = x.amax(dim=2), x.amin(dim=2)
    top, low = row_max.amax(dim=1), row_min.amin(dim=1)
    flat = (top <= 0) | (top == low) | ~torch.isfinite(top)
    scale = torch.where(flat, 1, top)

    a, hard, inside, d = (t[:n] for t in (ws.a, ws.hard, ws.inside, ws.d))
    # The prepared map A = relu(x) / max.
    if bool((low < 0).any()):
        torch.clamp_min(x, 0, out=a)
        a.div_(scale[:, None, None])
    else:
        torch.div(x, scale[:, None, None], out=a)
    _binarise(a, threshold, out=hard)
    # d(p)^2 = min over boxes of dy^2 + dx^2 (outer sums of per-row and per-column vectors);
    # it is 0 exactly inside M and >= the smallest normal float outside (see _box_tensors), so
    # M = clamp(1 - K d^2, 0) with K = 2**(max exponent) (1 - K d^2 <= -1 outside).
    torch.add(dy2[:, 0, :, None], dx2[:, 0, None, :], out=d)
    for b in range(1, dy2.shape[1]):
        torch.add(dy2[:, b, :, None], dx2[:, b, None, :], out=inside)  # as scratch
        torch.minimum(d, inside, out=d)
    big = 2.0 ** (math.frexp(torch.finfo(d.dtype).max)[1] - 1)
    torch.add(torch.ones((), dtype=d.dtype, device=x.device), d, alpha=-big, out=inside)
    inside.clamp_min_(0)
    # d = sqrt(d^2 + M) - M: exact (sqrt(1) - 1 == 0 inside, d - 0 outside), and keeps zeros out
    # of sqrt, which torch evaluates about five times slower on CPU than other values.
    d.add_(inside).sqrt_().sub_(inside)

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if u.device.type == "cpu" and u[0].numel() >= 1 << 15:
            # One BLAS dot per large map: no temporary, faster on CPU than vecdot (mul + sum)
            # or bmm; small maps are better served by one vecdot call than by many dots.
            return torch.stack([torch.dot(u[k].view(-1), v[k].view(-1)) for k in range(n)])
        return torch.linalg.vecdot(u.reshape(n, -1), v.reshape(n, -1))

    def total(u: torch.Tensor) -> torch.Tensor:
        return u.sum(dim=(1, 2))

    nonfinite = ~torch.isfinite(top) | ~torch.isfinite(low)
    sums = torch.stack([top, nonfinite.to(top.dtype), (top == low).to(top.dtype), total(a),
                        dot(a, inside), dot(a, d), total(hard), dot(hard, inside)],
                       dim=1).double()
    return row_max, sums


def _metrics(stack: torch.Tensor, row_max: torch.Tensor, sums: torch.Tensor,
             ranges: torch.Tensor, index: np.ndarray, ids, *, tol: float, window: int,
             levels: int | None, level: tuple[torch.Tensor, ...] | None = None
             ) -> dict[str, np.ndarray]:
    """Every column of one group from its sums, row maxima and boxes; reads only the few
    rows of ``stack`` that hold pixels at the top level (unless ``level``, those pixels as
    ``(sample, row, col)``, is given)."""
    n, h, w = stack.shape
    device = stack.device
    top, nonfinite, constant, s_all, s_in, spill, h_all, h_in = sums.T
    area = _union_area(ranges)
    if bool(nonfinite.any()):
        bad = int(index[int(nonfinite.nonzero()[0])])
        raise ValueError(f"{sample_label(bad, ids)}: map contains NaN or infinite values")
    flat = (top <= 0) | (constant > 0)
    scale = torch.where(flat, 1, top).to(stack.dtype)
    result = {
        "soft_iou": s_in / (area + s_all - s_in),
        "soft_dice": 2 * s_in / (s_all + area),
        "hard_iou": h_in / (h_all + area - h_in),
        "hard_dice": 2 * h_in / (h_all + area),
        "wdp": spill / math.hypot(h, w) / s_all,
        "io_ratio": s_in / s_all,
    }

    if level is None:
        level = _top_level_pixels(stack, row_max, scale, flat, levels)
    sample, r, c = _top_peaks(*level, stack, scale, levels, window)
    hit = _hit(r, c, ranges[sample], tol)
    n_top = torch.bincount(sample, minlength=n)
    n_hit = torch.bincount(sample, weights=hit.double(), minlength=n)
    # p* = first maximum of A in row-major order. A == 1 exactly where x == max(x) (for
    # x < m, x / m rounds below 1), so: the first row holding the maximum, then its column.
    top_x = top.to(stack.dtype)
    star_r = (row_max == top_x[:, None]).to(torch.uint8).argmax(dim=1)
    star_row = stack[torch.arange(n, device=device), star_r]
    star_c = (star_row == top_x[:, None]).to(torch.uint8).argmax(dim=1)
    result["pg_hit"] = _hit(star_r, star_c, ranges, tol).double()
    result["pg_uncertain"] = ((n_hit > 0) & (n_hit < n_top)).double()
    out = {name: value.cpu().numpy() for name, value in result.items()}
    flat_np = flat.cpu().numpy()
    for name in out:
        out[name][flat_np] = np.nan
    out["flat"] = flat_np
    out["n_top_peaks"] = n_top.cpu().numpy()
    return out


def _union_area(ranges: torch.Tensor) -> torch.Tensor:
    """|M|: pixel count of the union of the index rectangles ``(n, B, 4)``, by coordinate
    compression: the box edges cut the image into at most ``(2B)^2`` cells, each wholly in or
    out of M (no pass over the pixels)."""
    n, n_box = ranges.shape[:2]
    step = max(1, (1 << 22) // (4 * n_box**3))  # bounds the (step, 2B, 2B, B) test below
    areas = []
    for part in ranges.split(step):
        rows = torch.cat([part[..., 0], part[..., 1] + 1], dim=1).sort(dim=1).values
        cols = torch.cat([part[..., 2], part[..., 3] + 1], dim=1).sort(dim=1).values
        # Cell (i, j) spans rows [rows[i], rows[i+1]) and columns [cols[j], cols[j+1]); it is
        # in M when some box covers its first pixel.
        r, c = rows[:, :-1, None, None], cols[:, None, :-1, None]
        box = part[:, None, None, :, :]
        covered = ((box[..., 0] <= r) & (r <= box[..., 1]) & (box[..., 2] <= c)
                   & (c <= box[..., 3])).any(dim=3)
        size = rows.diff(dim=1)[:, :, None] * cols.diff(dim=1)[:, None, :]
        areas.append((covered * size).sum(dim=(1, 2)))
    return torch.cat(areas).double()


def _binarise(a: torch.Tensor, threshold: float, out: torch.Tensor) -> None:
    """``out = [a >= threshold]`` as 0/1 floats, ``a`` in [0, 1], threshold in [0, 1].

    Two fast float ops instead of a comparison into bool and a bool -> float copy (several
    times slower on CPU): with ``p`` the float just below ``threshold`` (in ``a``'s dtype),
    ``a >= threshold`` iff ``a - p > 0``, and ``K * (a - p)`` is exact for ``K`` a power of two
    (2**120) and >= 1 whenever ``a - p > 0`` (such a difference is at least ``ulp(p)``).
    Thresholds too small for that (below ``2**-60``) take the plain comparison."""
    t = torch.tensor(threshold, dtype=a.dtype)
    if threshold == 0:
        out.fill_(1)
    elif threshold < 2.0**-60:
        out.copy_(a >= t)
    else:
        below = float(torch.nextafter(t, torch.zeros_like(t)))
        # K * a - K * p == K * (a - p) exactly: scaling by a power of two commutes with rounding.
        torch.add(torch.tensor(-below * 2.0**120, dtype=a.dtype, device=a.device), a,
                  alpha=2.0**120, out=out)
        out.clamp_(0, 1)


def _box_tensors(clipped: np.ndarray, h: int, w: int, dtype: torch.dtype,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From padded clipped boxes ``(n, B, 4)`` (NaN padding): inclusive pixel ranges
    ``(n, B, 4)`` and squared distances from each row / column centre to each box,
    ``(n, B, H)`` and ``(n, B, W)`` (:func:`qgnb.metrics.fused.squared_gaps`, on CPU: a few
    numbers a box, where a dozen eager torch operations cost more than the metrics' pixels).
    Padding has an empty range and an infinite distance."""
    n, n_box = clipped.shape[:2]
    ranges = pixel_ranges(clipped.reshape(-1, 4), h, w).reshape(n, n_box, 4)
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    tiny = float(torch.finfo(dtype).tiny)
    dy2 = fused.squared_gaps(clipped[..., 1], clipped[..., 3], ranges[..., 0], ranges[..., 1],
                             h, tiny).astype(np_dtype)
    dx2 = fused.squared_gaps(clipped[..., 0], clipped[..., 2], ranges[..., 2], ranges[..., 3],
                             w, tiny).astype(np_dtype)
    return tuple(torch.from_numpy(a).to(device) for a in (ranges, dy2, dx2))


def _top_level_pixels(x: torch.Tensor, row_max: torch.Tensor, scale: torch.Tensor,
                      flat: torch.Tensor, levels: int | None) -> tuple[torch.Tensor, ...]:
    """``(sample, row, col)`` of the pixels at the quantised global maximum, row-major.

    A pixel is at the top level exactly when ``x >= t`` for its sample's threshold ``t``
    (:func:`_top_level_threshold`), so a row holds one exactly when its maximum is ``>= t``:
    only those few rows are read again, with one comparison a pixel."""
    t = _top_level_threshold(torch.where(flat, 1, row_max.amax(dim=1)), scale, levels)
    level_rows = (row_max >= t[:, None]) & ~flat[:, None]
    sample, r = level_rows.nonzero().unbind(1)
    k, c = (x[sample, r] >= t[sample, None]).nonzero().unbind(1)
    return sample[k], r[k], c


def _top_level_threshold(top: torch.Tensor, scale: torch.Tensor,
                         levels: int | None) -> torch.Tensor:
    """Per sample, the smallest float ``t`` whose quantised value ``quantise(relu(t) / scale)``
    is the top level (``top``, the maximum, is at it). That test is monotone in ``t``, and
    non-negative floats are ordered like their bit patterns, so bisecting the bit patterns
    between 0 and ``top`` finds ``t`` exactly, with the very operations ``quantise`` uses
    (a threshold computed in closed form could differ from them by a rounding)."""
    bits = torch.int32 if top.dtype == torch.float32 else torch.int64
    top_level = quantise(torch.ones((), dtype=top.dtype, device=top.device), levels)

    def at_top(pattern: torch.Tensor) -> torch.Tensor:
        return quantise(pattern.view(top.dtype).clamp_min(0) / scale, levels) == top_level

    low = torch.zeros_like(top).view(bits)  # 0.0: below the top level (top_level >= 1)
    high = top.contiguous().view(bits)
    while bool((high - low > 1).any()):
        middle = low + (high - low) // 2
        up = at_top(middle)
        high, low = torch.where(up, middle, high), torch.where(up, low, middle)
    return high.view(top.dtype)


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


def _top_peaks(sample: torch.Tensor, r: torch.Tensor, c: torch.Tensor, x: torch.Tensor,
               scale: torch.Tensor, levels: int | None,
               window: int) -> tuple[torch.Tensor, ...]:
    """NMS among the top-level pixels ``(sample, r, c)`` (row-major): keep those with no
    earlier top-level pixel of the same sample in their window.

    The cost follows the number of top-level pixels, not the map's texture: sorted searches
    around each of them (:func:`_earlier_in_window`). Only a sample with more than
    ``H * W / window`` of them (a saturated map) runs the dense separable NMS over its map,
    cheaper per pixel at that density."""
    n, h, w = x.shape
    if len(sample) == 0:
        return sample, r, c
    counts = torch.bincount(sample, minlength=n)
    dense = counts[sample] * window > h * w
    sparse = ~dense
    keep = torch.zeros_like(sample, dtype=torch.bool)
    if x.device.type == "cpu" and FUSED_ON_CPU:
        earlier = torch.from_numpy(fused.earlier_in_window(
            sample[sparse].numpy(), r[sparse].numpy(), c[sparse].numpy(), window // 2))
    else:
        earlier = _earlier_in_window(sample[sparse], r[sparse], c[sparse], h, w, window // 2)
    keep[sparse] = ~earlier
    owners = torch.unique(sample[dense])
    if len(owners) == 0:
        return sample[keep], r[keep], c[keep]
    top_level = quantise(torch.ones((), dtype=x.dtype, device=x.device), levels)
    found = []
    for part in owners.split(max(1, CHUNK_PIXELS["cpu"] // (h * w))):
        level = quantise(x[part].clamp_min(0) / scale[part, None, None], levels) == top_level
        extra = (peak_mask(level.to(x.dtype), window) & level).nonzero()
        found.append(torch.stack([part[extra[:, 0]], extra[:, 1], extra[:, 2]], 1))
    merged = torch.cat([torch.stack([sample[keep], r[keep], c[keep]], 1), *found])
    merged = merged[torch.argsort(merged[:, 0] * h * w + merged[:, 1] * w + merged[:, 2])]
    return merged[:, 0], merged[:, 1], merged[:, 2]


def _earlier_in_window(sample: torch.Tensor, r: torch.Tensor, c: torch.Tensor, h: int, w: int,
                       half: int) -> torch.Tensor:
    """For pixels ``(sample, r, c)`` of ``h x w`` maps, given in row-major order: whether an
    earlier one of the same sample lies in the window of half-side ``half`` around each
    (the same row within ``half`` columns to the left, or one of the ``half`` rows above
    within ``half`` columns either side). One sorted search per row above."""
    key = (sample * h + r) * w + c  # increasing, as the pixels are row-major
    earlier = torch.zeros_like(key, dtype=torch.bool)
    if half == 0 or len(key) < 2:
        return earlier
    row = sample * h + r
    earlier[1:] = (row[1:] == row[:-1]) & (key[1:] - key[:-1] <= half)
    above = torch.arange(1, half + 1, device=key.device)
    for part in torch.arange(len(key), device=key.device).split(1 << 16):
        rows = r[part, None] - above
        start = (sample[part, None] * h + rows) * w
        first = start + (c[part, None] - half).clamp_min(0)
        last = start + (c[part, None] + half).clamp_max(w - 1)
        # The first pixel at or after the window row's left end: is it before its right end?
        at = torch.searchsorted(key, first).clamp_max(len(key) - 1)
        hit = (key[at] >= first) & (key[at] <= last) & (rows >= 0)
        earlier[part] |= hit.any(dim=1)
    return earlier
