"""The batched score against the per-sample numpy reference (and find_peaks against its
reference), on random and hand-picked inputs."""


import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qgnb.metrics import METRIC_COLUMNS, find_peaks, score
from qgnb.metrics.prepare import pixel_ranges
from qgnb.metrics.reference import reference_peaks, reference_score

# Both CPU paths of score: compiled (the default) and eager torch (as on GPUs).
pytestmark = pytest.mark.usefixtures("cpu_path")


def check_against_reference(maps, boxes, **options):
    table = score(maps, boxes, **options)
    for i, (a, b) in enumerate(zip(maps, boxes, strict=True)):
        a = a.cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
        expected = reference_score(a, b, **options)
        row = table.iloc[i]
        assert bool(row["flat"]) == expected["flat"], i
        if expected["flat"]:
            assert row[list(METRIC_COLUMNS)].isna().all() and row["n_top_peaks"] is pd.NA
            continue
        assert int(row["n_top_peaks"]) == expected["n_top_peaks"], i
        for name in ("pg_hit", "pg_uncertain"):
            assert row[name] == expected[name], (i, name)
        for name in ("soft_iou", "soft_dice", "hard_iou", "hard_dice", "wdp", "io_ratio"):
            assert row[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6), (i, name)


@st.composite
def samples(draw):
    """A stack of small maps with ties (values from a coarse grid), negatives, flat maps, and
    one to six boxes per map (more than the compiled path tests inline), some reaching
    outside the image."""
    n = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    values = st.sampled_from([-1.0, 0.0, 0.0, 0.25, 0.5, 0.999, 1.0, 2.0, 3.0])
    grid = draw(st.lists(values, min_size=n * h * w, max_size=n * h * w))
    noise = draw(st.floats(0, 1e-3))
    maps = np.array(grid, dtype=np.float32).reshape(n, h, w)
    maps += noise * np.arange(n * h * w, dtype=np.float32).reshape(n, h, w) % 7 / 7
    boxes = []
    coord = st.floats(-3, max(h, w) + 3, allow_nan=False)
    for _ in range(n):
        sample = []
        for _ in range(draw(st.integers(1, 6))):
            x1, y1 = draw(coord), draw(coord)
            box = [x1, y1, x1 + draw(st.floats(0, w + 2)), y1 + draw(st.floats(0, h + 2))]
            r0, r1, c0, c1 = pixel_ranges(np.clip(box, 0, [w, h, w, h]), h, w)[0]
            if r0 <= r1 and c0 <= c1:
                sample.append(box)
        if not sample:
            r, c = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            sample.append([c, r, c + 1, r + 1])
        boxes.append(sample)
    return maps, boxes


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(samples(), st.sampled_from([0, 1, 2.5, 15]), st.sampled_from([None, 1, 3, 5]),
       st.sampled_from([256, 4, None]), st.sampled_from([0.5, 0.25, 1.0, 0.3, 1e-3, 0.0]))
def test_batched_equals_reference(data, tol, nms_window, levels, threshold):
    maps, boxes = data
    check_against_reference(maps, boxes, tol=tol, nms_window=nms_window, levels=levels,
                            threshold=threshold)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(samples(), st.sampled_from([None, 1, 3]), st.sampled_from([256, 4, None]))
def test_find_peaks_equals_reference(data, nms_window, levels):
    maps, _ = data
    for a in maps:
        if a.max() <= 0 or a.max() == a.min():
            continue
        peaks, is_top = find_peaks(a, nms_window=nms_window, levels=levels)
        ref_peaks, ref_top = reference_peaks(a, nms_window=nms_window, levels=levels)
        assert peaks.tolist() == ref_peaks.tolist()
        assert is_top.tolist() == ref_top.tolist()


def test_smooth_random_maps_equal_reference():
    # GradCAM-like maps: a few Gaussian blobs, upsampled size, default window (3 here).
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[0:48, 0:64]
    maps, boxes = [], []
    for _ in range(6):
        a = np.zeros((48, 64), dtype=np.float32)
        for _ in range(3):
            r, c, s = rng.uniform(0, 48), rng.uniform(0, 64), rng.uniform(2, 9)
            a += rng.uniform(0.5, 1) * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * s * s))
        maps.append(a - 0.1)
        x1, y1 = rng.uniform(-5, 50), rng.uniform(-5, 35)
        boxes.append([[x1, y1, x1 + rng.uniform(3, 30), y1 + rng.uniform(3, 20)],
                      [10, 10, 20, 30]])
    check_against_reference(np.stack(maps), boxes, tol=15)
    check_against_reference(np.stack(maps), boxes, levels=None, threshold=0.3)


def test_saturated_maps_equal_reference():
    # Clipped maps: hundreds of pixels at the maximum (the dense NMS path, beyond the pairwise
    # limit), mixed in one stack with ordinary maps (the pairwise path).
    rng = np.random.default_rng(6)
    maps = np.minimum(rng.random((4, 30, 40)) * 2, 1.0).astype(np.float32)
    maps[1] = rng.random((30, 40))
    maps[3, :, :20] = 1.0
    maps[3, :, 20:] = 0.2
    boxes = [[[5, 5, 20, 15]], [[0, 0, 10, 10], [30, 20, 40, 30]], [[-5, 10, 45, 12]],
             [[25, 0, 40, 30]]]
    table = score(maps, boxes, tol=3)
    assert table["n_top_peaks"].iloc[0] > 5
    check_against_reference(maps, boxes, tol=3)
    check_against_reference(maps, boxes, nms_window=7, levels=None)



def test_noisy_texture_equals_reference():
    # rand**4: tens of pixels tie at the top level, scattered over the map (the sorted-search
    # NMS; the dense path used to run here), at the default window and wider ones.
    gen = torch.Generator().manual_seed(3)
    maps = torch.rand(6, 96, 128, generator=gen) ** 4
    boxes = [[[5, 5, 30, 40]], [[0, 0, 128, 10], [60, 30, 128, 96]], [[40, 20, 41, 21]]] * 2
    assert (score(maps, boxes)["n_top_peaks"] >= 3).all()
    check_against_reference(maps, boxes, tol=4)
    check_against_reference(maps, boxes, nms_window=9)
    check_against_reference(maps, boxes, nms_window=31, levels=64)


def test_top_level_ties_at_the_window_edge():
    # Window 5 (half 2). Map 0: (2, 2) suppresses (2, 4) (same row, 2 to the left) and
    # (4, 0) (2 rows above, 2 columns right), not (2, 7) (5 to the left) nor (5, 5) (3 rows
    # below); (4, 0) suppresses (5, 1). Map 1: (0, 0) is alone in its map, whatever map 0 has
    # in its last row; (5, 0) is not near (4, 9), the row before it.
    a = np.zeros((2, 6, 10), dtype=np.float32)
    for r, c in [(2, 2), (2, 4), (4, 0), (2, 7), (5, 1), (5, 5), (5, 9)]:
        a[0, r, c] = 1.0
    for r, c in [(0, 0), (4, 9), (5, 0)]:
        a[1, r, c] = 1.0
    boxes = [[[0, 0, 3, 3]], [[0, 0, 1, 1]]]
    table = score(a, boxes, nms_window=5)
    assert table["n_top_peaks"].tolist() == [4, 3]
    assert find_peaks(a[0], nms_window=5)[0].tolist() == [[2, 2], [2, 7], [5, 5], [5, 9]]
    check_against_reference(a, boxes, nms_window=5)
    check_against_reference(a, boxes, nms_window=3)
    check_against_reference(a, boxes, nms_window=1)


def test_compiled_pass_keeps_the_top_level_pixels_or_leaves_them_to_a_second_read():
    from qgnb.metrics import fused

    rng = np.random.default_rng(3)
    x = rng.random((3, 12, 20)).astype(np.float32)
    x[2] = np.minimum(x[2] * 3, 1.0)  # saturated: more top-level pixels than one pass keeps
    row_max = x.max(axis=2)
    level = (row_max.max(axis=1) * 0.97).astype(np.float32)
    gaps = np.zeros((3, 1, 12), np.float32), np.zeros((3, 1, 20), np.float32)
    counts = fused.level_counts(x, row_max, level, np.zeros(3, bool))
    expected = fused.level_pixels(x, row_max, level, counts)
    assert counts[2] > 8 * 12  # beyond what one pass keeps for a stack of one map
    sums, found = fused.dense_sums(x[2:], row_max.max(axis=1)[2:], level[2:], gaps[0][2:],
                                   gaps[1][2:], 0.5)
    assert found is None
    sums, found = fused.dense_sums(x[:2], row_max.max(axis=1)[:2], level[:2], gaps[0][:2],
                                   gaps[1][:2], 0.5)
    np.testing.assert_array_equal(found, expected[expected[:, 0] < 2])
    np.testing.assert_array_equal(found, np.argwhere(x[:2] >= level[:2, None, None]))
