"""How much image detail a vision tower's patch tokens keep: a linear read-out probe.

Each patch token is asked, by ridge regression fitted on training scenes, for the colours of
the target-grid cells its patch covers; the probe's mean absolute error on held-out scenes
says how much of that detail is linearly recoverable from the frozen tokens. Raw pixels are the
reference: a cell's mean colour is a linear function of its patch's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from scipy import linalg

from qgnb.pvp.batch import pixel_values
from qgnb.pvp.queries import target_grid


def patch_cell_colours(images: Sequence[Image.Image], grid: int, patches: int) -> np.ndarray:
    """``(N * patches**2) x (k * k * 3)`` colours of the ``k x k`` grid cells under each patch
    (``k = grid / patches``), patches in row-major order.

    >>> img = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    >>> patch_cell_colours([img], grid=4, patches=2)[0].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]
    """
    if grid % patches:
        raise ValueError(f"grid {grid} is not a multiple of the {patches} patches per side")
    k = grid // patches
    cells = np.stack([target_grid(image, grid) for image in images]).astype(float)
    cells = cells.reshape(len(images), patches, k, patches, k, 3).transpose(0, 1, 3, 2, 4, 5)
    return cells.reshape(len(images) * patches * patches, k * k * 3)


@torch.no_grad()
def patch_tokens(tower, processor, images: Sequence[Image.Image]) -> np.ndarray:
    """``(N * P) x hidden`` last-layer patch tokens (class token dropped) of a CLIP tower.

    >>> from qgnb.pvp.model import random_vision_tower
    >>> tower, processor = random_vision_tower()
    >>> patch_tokens(tower, processor, [Image.new("RGB", (64, 64))]).shape
    (64, 96)
    """
    hidden = tower(pixel_values=pixel_values(processor, images)).last_hidden_state[:, 1:]
    return hidden.reshape(-1, hidden.shape[-1]).numpy().astype(float)


def raw_patches(images: Sequence[Image.Image], patch_size: int) -> np.ndarray:
    """``(N * P) x (patch_size**2 * 3)`` raw pixel values of each patch, row-major.

    >>> raw_patches([Image.new("RGB", (64, 64))], 8).shape
    (64, 192)
    """
    arrays = np.stack([np.asarray(image.convert("RGB"), float) for image in images])
    n, h, w, _ = arrays.shape
    p = patch_size
    blocks = arrays.reshape(n, h // p, p, w // p, p, 3).transpose(0, 1, 3, 2, 4, 5)
    return blocks.reshape(n * (h // p) * (w // p), p * p * 3)


def ridge_probe_error(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                      test_y: np.ndarray, ridge: float = 1e-2) -> float:
    """Mean absolute error of a ridge regression (with intercept) fitted on ``train``.

    >>> x = np.arange(10.0)[:, None]
    >>> round(ridge_probe_error(x, 3 * x + 1, x, 3 * x + 1, ridge=1e-9), 6)
    0.0
    """
    def with_bias(x):
        return np.c_[x, np.ones(len(x))]

    a, b = with_bias(train_x), with_bias(test_x)
    weights = linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ train_y, assume_a="pos")
    return float(np.abs(b @ weights - test_y).mean())


def probe_errors(towers: dict[str, tuple], train_images: Sequence[Image.Image],
                 test_images: Sequence[Image.Image], grid: int = 16) -> dict[str, float]:
    """The probe's held-out error (0-255 scale) for raw pixels and for each named
    ``(tower, processor)``.

    >>> from qgnb.pvp.model import random_vision_tower
    >>> ims = [Image.new("RGB", (64, 64), (v, 0, 0)) for v in (0, 50, 100)]
    >>> errs = probe_errors({"random": random_vision_tower()}, ims, ims)
    >>> sorted(errs)
    ['random', 'raw pixels']
    """
    first = next(iter(towers.values()))[0].config
    patches = first.image_size // first.patch_size
    train_y = patch_cell_colours(train_images, grid, patches)
    test_y = patch_cell_colours(test_images, grid, patches)
    errors = {"raw pixels": ridge_probe_error(raw_patches(train_images, first.patch_size),
                                              train_y, raw_patches(test_images, first.patch_size),
                                              test_y)}
    for name, (tower, processor) in towers.items():
        errors[name] = ridge_probe_error(patch_tokens(tower, processor, train_images), train_y,
                                         patch_tokens(tower, processor, test_images), test_y)
    return errors
