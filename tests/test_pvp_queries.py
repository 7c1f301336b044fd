"""PVP query generation on hand-made images: exact prompts, answers, grids and sampled cells."""

import numpy as np
import pytest
from PIL import Image

from qgnb.pvp.queries import (
    all_cells,
    mask_grid,
    reconstruct_cells,
    reconstruct_queries,
    segmentation_cells,
    segmentation_queries,
    target_grid,
)


def image_4x4() -> Image.Image:
    # Channel r counts 0..15 in row-major order; g = 10 * r; b is 255 in the top rows, 0 below.
    r = np.arange(16, dtype=np.uint8).reshape(4, 4)
    b = np.array([[255] * 4] * 2 + [[0] * 4] * 2, dtype=np.uint8)
    return Image.fromarray(np.stack([r, r * 10, b], axis=-1))


def check_queries(size, expected):
    assert reconstruct_queries(image_4x4(), size) == expected


def test_full_resolution_queries_are_the_pixels_row_then_column():
    queries = reconstruct_queries(image_4x4(), 4)
    assert len(queries) == 16
    assert queries[0] == ("[reconstruct] loc: [0,0] rgb:", "[0,0,255]")
    assert queries[1] == ("[reconstruct] loc: [0,1] rgb:", "[1,10,255]")
    assert queries[4] == ("[reconstruct] loc: [1,0] rgb:", "[4,40,255]")  # row 1, column 0
    assert queries[14] == ("[reconstruct] loc: [3,2] rgb:", "[14,140,0]")


def test_2x2_grid_answers_are_box_averages_of_2x2_blocks():
    # Top-left block r = 0, 1, 4, 5 -> 2.5 rounds to 3 (PIL rounds half up on uint8);
    # g = 0, 10, 40, 50 -> 25. Top-right r = 2, 3, 6, 7 -> 4.5 -> 5; g = 45.
    check_queries(2, [
        ("[reconstruct] loc: [0,0] rgb:", "[3,25,255]"),
        ("[reconstruct] loc: [0,1] rgb:", "[5,45,255]"),
        ("[reconstruct] loc: [1,0] rgb:", "[11,105,0]"),
        ("[reconstruct] loc: [1,1] rgb:", "[13,125,0]"),
    ])


def test_target_grid_of_a_flat_image_is_flat_and_checks_size():
    grid = target_grid(Image.new("RGB", (64, 64), (7, 8, 9)), 32)
    assert grid.shape == (32, 32, 3) and grid.dtype == np.uint8
    assert (grid == [7, 8, 9]).all()
    with pytest.raises(ValueError, match="grid size"):
        target_grid(image_4x4(), 0)


def test_queries_for_chosen_cells_follow_the_given_order():
    queries = reconstruct_queries(image_4x4(), 4, np.array([[3, 0], [0, 3]]))
    assert queries == [("[reconstruct] loc: [3,0] rgb:", "[12,120,0]"),
                       ("[reconstruct] loc: [0,3] rgb:", "[3,30,255]")]


def test_all_cells_is_row_major():
    assert all_cells(3).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2],
                                     [2, 0], [2, 1], [2, 2]]


def test_mask_grid_keeps_cells_at_least_half_object():
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True  # half of the top-left 2x2 cell
    mask[2, 2] = True  # a quarter of the bottom-right cell
    assert mask_grid(mask, 2).tolist() == [[True, False], [False, False]]
    with pytest.raises(ValueError, match="2-D bool"):
        mask_grid(np.zeros((4, 4), int), 2)


def test_segmentation_queries_exact_text():
    mask = np.array([[False, True], [False, False]])
    assert segmentation_queries("the red circle", mask) == [
        ("[segmentation] the red circle loc: [0,0] mask:", "0"),
        ("[segmentation] the red circle loc: [0,1] mask:", "1"),
        ("[segmentation] the red circle loc: [1,0] mask:", "0"),
        ("[segmentation] the red circle loc: [1,1] mask:", "0"),
    ]


def test_segmentation_cells_follow_the_mix_of_object_near_and_far():
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = True
    cells = segmentation_cells(mask, 400, np.random.default_rng(0), mix=(0.5, 0.25, 0.25))
    distance = np.hypot(cells[:, 0], cells[:, 1])  # distance to the single object cell
    on_object, near = (distance == 0).mean(), ((distance > 0) & (distance <= 2)).mean()
    assert on_object == pytest.approx(0.5, abs=0.08)
    assert near == pytest.approx(0.25, abs=0.08)
    assert (distance > 2).mean() == pytest.approx(0.25, abs=0.08)


def test_segmentation_cells_give_an_empty_group_share_to_the_others():
    mask = np.ones((3, 3), bool)  # no background at all
    cells = segmentation_cells(mask, 9, np.random.default_rng(0))
    assert mask[cells[:, 0], cells[:, 1]].all()
    # Nine draws over nine object cells go without replacement: every cell once.
    assert sorted(map(tuple, cells.tolist())) == [(y, x) for y in range(3) for x in range(3)]


def test_segmentation_cells_reject_a_bad_mix():
    with pytest.raises(ValueError, match="mix"):
        segmentation_cells(np.ones((2, 2), bool), 4, np.random.default_rng(0), mix=(1, 1, 0))


def test_reconstruct_cells_mix_uniform_and_detail_cells():
    grid = np.full((8, 8, 3), 100, np.uint8)
    grid[5, 6] = (200, 100, 100)  # the only cell away from the median colour
    cells = reconstruct_cells(grid, 400, np.random.default_rng(0), detail_share=0.5)
    on_detail = ((cells[:, 0] == 5) & (cells[:, 1] == 6)).mean()
    assert on_detail == pytest.approx(0.5 + 0.5 / 64, abs=0.06)
    flat = np.zeros((4, 4, 3), np.uint8)  # no detail anywhere: every cell equally likely
    cells = reconstruct_cells(flat, 1600, np.random.default_rng(1), detail_share=1.0)
    counts = np.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    assert counts.min() > 60 and counts.max() < 140
    with pytest.raises(ValueError, match="detail_share"):
        reconstruct_cells(flat, 4, np.random.default_rng(0), detail_share=1.5)
