"""The linear read-out probe on hand-made patches and known linear relations."""

import numpy as np
import pytest
from PIL import Image

from qgnb.pvp.model import random_vision_tower
from qgnb.pvp.probe import (
    patch_cell_colours,
    probe_errors,
    raw_patches,
    ridge_probe_error,
)


def image_4x4():
    return Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))


def test_patch_cell_colours_group_cells_by_patch():
    colours = patch_cell_colours([image_4x4()], grid=4, patches=2)
    assert colours.shape == (4, 12)
    # Patch (1, 0) covers pixels (2,0), (2,1), (3,0), (3,1).
    assert colours[2].tolist() == [24, 25, 26, 27, 28, 29, 36, 37, 38, 39, 40, 41]
    # On a 2x2 grid each patch covers one cell: the box average of its 2x2 pixels,
    # (0 + 3 + 12 + 15) / 4 = 7.5 -> 8, then 8.5 -> 9 and 9.5 -> 10 (PIL rounds half up).
    assert patch_cell_colours([image_4x4()], grid=2, patches=2)[0].tolist() == [8, 9, 10]
    with pytest.raises(ValueError, match="not a multiple"):
        patch_cell_colours([image_4x4()], grid=3, patches=2)


def test_raw_patches_are_row_major_pixel_blocks():
    patches = raw_patches([image_4x4()], 2)
    assert patches.shape == (4, 12)
    assert patches[1].tolist() == [6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23]


def test_ridge_probe_recovers_a_linear_map_and_not_a_random_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ rng.normal(size=(5, 2)) + 4.0
    assert ridge_probe_error(x[:150], y[:150], x[150:], y[150:], ridge=1e-8) < 1e-6
    noise = rng.normal(size=(200, 2))
    assert ridge_probe_error(x[:150], noise[:150], x[150:], noise[150:]) > 0.5


def test_raw_pixels_read_out_cell_means_exactly():
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
              for _ in range(6)]
    errors = probe_errors({"random": random_vision_tower(0, hidden=16, layers=1, heads=2)},
                          images[:4], images[4:], grid=16)
    assert errors["raw pixels"] < 0.6  # only the rounding of the box filter to integers
    assert errors["random"] > 5 * errors["raw pixels"]
