"""Input forms and invariances: lists of different sizes, torch / numpy / float64 / uint8,
CUDA (when present), and scaling the maps by a positive constant."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_reference import check_against_reference, samples

from qgnb.metrics import find_peaks, score


def check_same_table(first, second):
    pd.testing.assert_frame_equal(first, second, check_exact=False, rtol=1e-6)


def test_list_of_different_sizes_equals_each_alone():
    rng = np.random.default_rng(2)
    maps = [rng.random((5, 7)), rng.random((9, 4)), rng.random((5, 7)), rng.random((3, 3))]
    boxes = [[[1, 1, 4, 3]], [[0, 2, 3, 8], [1, 0, 2, 1]], [[2, 2, 7, 5]], [[0, 0, 1, 1]]]
    together = score(maps, boxes, ids=list("abcd"))
    alone = pd.concat([score([m], [b], ids=[i]) for m, b, i in zip(maps, boxes, "abcd",
                                                                     strict=True)])
    check_same_table(together, alone.reset_index(drop=True))
    check_against_reference(maps, boxes)


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(5, 11, 13)).astype(np.float32)
    boxes = [[[2, 3, 9, 8]], [[0, 0, 4, 4], [6, 6, 13, 11]], [[5, 1, 6, 2]], [[-1, -1, 20, 20]],
             [[3, 3, 4, 10]]]
    from_numpy = score(maps, boxes, tol=2)
    check_same_table(from_numpy, score(torch.from_numpy(maps), boxes, tol=2))
    check_same_table(from_numpy, score(list(maps), boxes, tol=2))
    check_same_table(from_numpy, score(maps.astype(np.float64), boxes, tol=2))
    # 8-bit heatmap images are scored as float32.
    image = (np.clip(maps, 0, 1) * 255).astype(np.uint8)
    check_same_table(score(image, boxes), score(image.astype(np.float32), boxes))


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(samples(), st.sampled_from([0.5, 4.0, 1024.0]))
def test_scale_invariance(data, factor):
    # Powers of two and halves keep every float exact, so results are identical.
    maps, boxes = data
    check_same_table(score(maps, boxes, tol=1), score(maps * factor, boxes, tol=1))


def test_scale_invariance_non_power_of_two():
    rng = np.random.default_rng(4)
    maps = rng.random((4, 16, 16)).astype(np.float64)
    boxes = [[[2, 2, 9, 9]]] * 4
    first, second = score(maps, boxes), score(maps * math.pi, boxes)
    check_same_table(first, second)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu():
    rng = np.random.default_rng(5)
    maps = torch.tensor(rng.random((8, 40, 30)), dtype=torch.float32)
    boxes = [[[3, 4, 20, 25], [0, 0, 5, 5]]] * 8
    check_same_table(score(maps, boxes, tol=15), score(maps.cuda(), boxes, tol=15))



def test_maps_that_require_grad_are_scored_as_their_values():
    # Maps straight from an explainer may still be part of an autograd graph.
    rng = np.random.default_rng(6)
    values = torch.tensor(rng.random((3, 12, 10)), dtype=torch.float32)
    boxes = [[[1, 1, 6, 8]], [[0, 0, 3, 3]], [[4, 2, 10, 12]]]
    graph = values.clone().requires_grad_(True) * 1.0
    expected = score(values, boxes, tol=2)
    check_same_table(score(graph, boxes, tol=2), expected)
    check_same_table(score(list(graph), boxes, tol=2), expected)
    peaks, _ = find_peaks(graph[0], nms_window=3)
    assert peaks.tolist() == find_peaks(values[0], nms_window=3)[0].tolist()


def test_numpy_scalar_options_equal_python_numbers():
    rng = np.random.default_rng(7)
    maps = rng.random((4, 20, 20)).astype(np.float32)
    boxes = [[[2, 2, 9, 9]], [[10, 0, 20, 5]], [[0, 10, 4, 20]], [[5, 5, 6, 6]]]
    check_same_table(score(maps, boxes, tol=np.int64(15), nms_window=np.int64(5),
                           levels=np.int32(64), threshold=np.float32(0.25)),
                     score(maps, boxes, tol=15, nms_window=5, levels=64, threshold=0.25))
    with pytest.raises(ValueError, match="tol must be a finite number >= 0, got True"):
        score(maps, boxes, tol=True)
    with pytest.raises(ValueError, match="nms_window must be an odd integer"):
        score(maps, boxes, nms_window=np.float64(5.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu_on_noisy_and_saturated_maps():
    # The sorted-search NMS and the threshold bisection on the device, both NMS paths.
    gen = torch.Generator().manual_seed(8)
    maps = torch.rand(6, 96, 128, generator=gen) ** 4
    maps[5] = maps[5].clamp_max(0.1)  # saturated (44% at the top): the dense separable path
    boxes = [[[5, 5, 30, 40]], [[0, 0, 128, 10], [60, 30, 128, 96]]] * 3
    check_same_table(score(maps, boxes, tol=4), score(maps.cuda(), boxes, tol=4))
