"""PVP queries: the downsampled target grid, reconstruction prompts and segmentation queries.

Coordinates are written row first, then column: ``loc: [y,x]`` names the cell in row ``y``
and column ``x`` of the ``size x size`` target grid.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

RECONSTRUCT_TASK = "[reconstruct]"
SEGMENTATION_TASK = "[segmentation]"


def target_grid(image: Image.Image, size: int = 32) -> np.ndarray:
    """The ``size x size x 3`` uint8 target: the image downsampled with PIL's box filter.

    The box filter averages every source pixel that falls into a cell with equal weight, so a
    cell's target is the mean colour of its area (64 -> 32 averages exact 2x2 blocks). That is
    the quantity "the colour at this location" should mean: bilinear or bicubic filters would
    sample a few pixels near the cell centre and pass per-pixel noise straight through.

    >>> img = Image.new("RGB", (4, 4), (10, 20, 30))
    >>> target_grid(img, 2).shape
    (2, 2, 3)
    """
    if size < 1:
        raise ValueError(f"grid size must be at least 1, got {size}")
    return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BOX), np.uint8)


def mask_grid(mask: np.ndarray, size: int = 32) -> np.ndarray:
    """A boolean ``size x size`` mask: a cell is object when at least half its area is object.

    >>> m = np.zeros((4, 4), bool); m[:2, :2] = True
    >>> mask_grid(m, 2).astype(int).tolist()
    [[1, 0], [0, 0]]
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask must be a 2-D bool array, got {mask.dtype} of shape {mask.shape}")
    share = Image.fromarray(mask.astype(np.float32)).resize((size, size), Image.Resampling.BOX)
    return np.asarray(share) >= 0.5


def location_text(y: int, x: int) -> str:
    """How a prompt names the cell in row ``y``, column ``x`` (one token with location tokens).

    >>> location_text(3, 12)
    '[3,12]'
    """
    return f"[{y},{x}]"


def reconstruct_prompt(y: int, x: int) -> str:
    """The reconstruction question for the cell in row ``y``, column ``x``.

    >>> reconstruct_prompt(3, 1)
    '[reconstruct] loc: [3,1] rgb:'
    """
    return f"{RECONSTRUCT_TASK} loc: {location_text(y, x)} rgb:"


def rgb_answer(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """The answer text for a colour.

    >>> rgb_answer((255, 0, 7))
    '[255,0,7]'
    """
    r, g, b = (int(v) for v in rgb)
    return f"[{r},{g},{b}]"


def segmentation_prompt(expression: str, y: int, x: int) -> str:
    """The segmentation question: is cell ``(y, x)`` part of what ``expression`` refers to?

    >>> segmentation_prompt("the red circle", 0, 2)
    '[segmentation] the red circle loc: [0,2] mask:'
    """
    return f"{SEGMENTATION_TASK} {expression} loc: {location_text(y, x)} mask:"


def reconstruct_queries(
    image: Image.Image, size: int = 32, cells: np.ndarray | None = None
) -> list[tuple[str, str]]:
    """``(prompt, answer)`` pairs for the given cells (``k x 2`` array of ``(y, x)``), or for
    every cell in row-major order when ``cells`` is None.

    >>> img = Image.new("RGB", (2, 2), (1, 2, 3))
    >>> reconstruct_queries(img, 2)[1]
    ('[reconstruct] loc: [0,1] rgb:', '[1,2,3]')
    """
    grid = target_grid(image, size)
    if cells is None:
        cells = all_cells(size)
    return [(reconstruct_prompt(y, x), rgb_answer(grid[y, x])) for y, x in np.asarray(cells)]


def all_cells(size: int) -> np.ndarray:
    """Every ``(y, x)`` of a ``size x size`` grid, row-major, as a ``size**2 x 2`` int array.

    >>> all_cells(2).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    ys, xs = np.divmod(np.arange(size * size), size)
    return np.stack([ys, xs], axis=1)


def segmentation_cells(
    mask: np.ndarray,
    n: int,
    rng: np.random.Generator,
    mix: tuple[float, float, float] = (0.5, 0.25, 0.25),
    near: float = 2.0,
) -> np.ndarray:
    """Sample ``n`` cells of a grid mask: object, near background, far background by ``mix``.

    Near background is a background cell within ``near`` cells (Euclidean) of the object; far
    background is the rest. A group that is empty gives its share to the other groups; cells are
    drawn without replacement within a group while it lasts. Returns an ``n x 2`` array of
    ``(y, x)``.

    >>> m = np.zeros((4, 4), bool); m[0, 0] = True
    >>> cells = segmentation_cells(m, 4, np.random.default_rng(0), mix=(1.0, 0.0, 0.0))
    >>> cells.tolist()
    [[0, 0], [0, 0], [0, 0], [0, 0]]
    """
    mask = np.asarray(mask, bool)
    if not np.isclose(sum(mix), 1.0) or min(mix) < 0:
        raise ValueError(f"mix must be three non-negative shares summing to 1, got {mix}")
    distance = ndimage.distance_transform_edt(~mask)  # distance of each cell to the object
    groups = [np.argwhere(mask), np.argwhere(~mask & (distance <= near)),
              np.argwhere(~mask & (distance > near))]
    shares = np.array([m if len(g) else 0.0 for m, g in zip(mix, groups, strict=True)])
    if shares.sum() == 0:
        shares = np.array([float(len(g) > 0) for g in groups])
    counts = rng.multinomial(n, shares / shares.sum())
    picked = [g[rng.choice(len(g), c, replace=c > len(g))] for g, c in
              zip(groups, counts, strict=True) if c]
    return np.concatenate(picked).astype(int)


def segmentation_queries(
    expression: str, mask: np.ndarray, cells: np.ndarray | None = None
) -> list[tuple[str, str]]:
    """``(prompt, answer)`` pairs for a grid mask, answer ``"1"`` inside and ``"0"`` outside,
    for the given cells or every cell in row-major order.

    >>> m = np.array([[True, False]])
    >>> segmentation_queries("the dot", m)[1]
    ('[segmentation] the dot loc: [0,1] mask:', '0')
    """
    mask = np.asarray(mask, bool)
    if cells is None:
        cells = np.argwhere(np.ones_like(mask))
    return [(segmentation_prompt(expression, y, x), str(int(mask[y, x]))) for y, x in cells]


def reconstruct_cells(grid: np.ndarray, n: int, rng: np.random.Generator,
                      detail_share: float = 0.5) -> np.ndarray:
    """Sample ``n`` training cells of a target grid: ``1 - detail_share`` of them uniformly,
    the rest with probability proportional to the cell's distance from the image's median
    colour (shapes and edges). Evaluation always asks every cell; this only spends more of the
    training queries where the detail is, since backgrounds fill most of a scene.

    >>> grid = np.zeros((4, 4, 3), np.uint8); grid[2, 1] = 200
    >>> reconstruct_cells(grid, 3, np.random.default_rng(0), detail_share=1.0).tolist()
    [[2, 1], [2, 1], [2, 1]]
    """
    if not 0 <= detail_share <= 1:
        raise ValueError(f"detail_share must be in [0, 1], got {detail_share}")
    size = grid.shape[0]
    n_detail = int(rng.binomial(n, detail_share))
    uniform = rng.integers(0, size, size=(n - n_detail, 2))
    deviation = np.abs(grid.astype(float) - np.median(grid.reshape(-1, 3), axis=0)).sum(-1)
    if deviation.sum() == 0:  # a flat image has no detail: sample uniformly
        deviation = np.ones_like(deviation)
    flat = rng.choice(size * size, n_detail, p=(deviation / deviation.sum()).ravel())
    detail = np.stack(np.divmod(flat, size), axis=1)
    return np.concatenate([uniform, detail]).astype(int)
