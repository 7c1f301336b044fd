"""Full-grid reconstruction by asking the model for every cell, and its error on held-out images.

Batched: for each image, one pass of the language model over the image prefix, one pass over
all ``size**2`` prompts (teacher-forced: they are known), then greedy decoding of the answer
tokens for all cells at once (an answer ``[r,g,b]`` and ``<eos>`` are 8 tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from qgnb.pvp.batch import pixel_values, prompt_tensor
from qgnb.pvp.model import WiredVLM
from qgnb.pvp.parse import parse_rgb
from qgnb.pvp.queries import all_cells, mask_grid, reconstruct_prompt, target_grid
from qgnb.pvp.tokenizer import PVPTokenizer

ANSWER_TOKENS = 8  # "[ r , g , b ]" and <eos>


def reconstruct(model: WiredVLM, tokenizer: PVPTokenizer, processor,
                images: Sequence[Image.Image], images_per_batch: int = 4,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``N x size x size x 3`` uint8 reconstructions on the model's grid (``size =
    model.grid``) and an ``N x size x size`` bool array that is True where the answer parsed
    (unparseable cells are left 0 = black).

    >>> from qgnb.pvp.model import build_vlm, random_vision_tower
    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> tok = build_tokenizer([], locations=8); tower, processor = random_vision_tower()
    >>> model = build_vlm(tower, tok, grid=8)
    >>> grids, ok = reconstruct(model, tok, processor, [Image.new("RGB", (64, 64))])
    >>> grids.shape, ok.shape
    ((1, 8, 8, 3), (1, 8, 8))
    """
    size = model.grid
    cells = all_cells(size)
    prompts = prompt_tensor(tokenizer, [reconstruct_prompt(y, x) for y, x in cells])
    grids = np.zeros((len(images), size, size, 3), np.uint8)
    parsed = np.zeros((len(images), size, size), bool)
    model.eval()
    starts = range(0, len(images), images_per_batch)
    for start in tqdm(starts, desc="reconstruct", disable=not progress):
        chunk = images[start : start + images_per_batch]
        answers = model.greedy_answers(pixel_values(processor, chunk),
                                       prompts.expand(len(chunk), -1, -1),
                                       tokenizer.eos_id, ANSWER_TOKENS)
        for i, image_answers in enumerate(answers, start=start):
            for (y, x), ids in zip(cells, image_answers.tolist(), strict=True):
                rgb = parse_rgb(tokenizer.decode(ids))
                if rgb is not None:
                    grids[i, y, x], parsed[i, y, x] = rgb, True
    return grids, parsed


def reconstruction_error(model: WiredVLM, tokenizer: PVPTokenizer, processor,
                         images: Sequence[Image.Image],
                         masks: Sequence[np.ndarray] | None = None,
                         progress: bool = False) -> dict[str, float]:
    """Mean absolute error per channel (0-255 scale) over every parsed cell of ``images`` (on
    the model's grid), their mean (``mae``), and the share of unparseable answers
    (``unparseable``). With the images' object ``masks`` (pixel resolution), also the mean
    error over the object cells alone (``mae_object``: cells ``mask_grid`` marks, i.e. covered
    by the object at least half), where the detail is, and how many there were.

    >>> from qgnb.pvp.model import build_vlm, random_vision_tower
    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> tok = build_tokenizer([], locations=8); tower, processor = random_vision_tower()
    >>> model = build_vlm(tower, tok, grid=8)
    >>> reconstruction_error(model, tok, processor, [Image.new("RGB", (64, 64))])["unparseable"]
    1.0
    """
    grids, parsed = reconstruct(model, tokenizer, processor, images, progress=progress)
    targets = np.stack([target_grid(image, model.grid) for image in images]).astype(np.int64)
    cell_errors = np.abs(grids.astype(np.int64) - targets)  # N x size x size x 3
    scores = _channel_errors(cell_errors[parsed])
    scores["unparseable"] = float(1 - parsed.mean())
    if masks is not None:
        if len(masks) != len(images):
            raise ValueError(f"{len(masks)} masks for {len(images)} images")
        objects = np.stack([mask_grid(m, model.grid) for m in masks])
        scores["mae_object"] = _channel_errors(cell_errors[parsed & objects])["mae"]
        scores["object_cells"] = int(objects.sum())
    return scores


def _channel_errors(errors: np.ndarray) -> dict[str, float]:
    """``mae_r``, ``mae_g``, ``mae_b`` and their mean over ``cells x 3`` errors (NaN if none)."""
    mae = errors.mean(axis=0) if len(errors) else np.full(3, np.nan)
    return {"mae_r": float(mae[0]), "mae_g": float(mae[1]), "mae_b": float(mae[2]),
            "mae": float(mae.mean())}
