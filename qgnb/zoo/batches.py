"""Training batches drawn from a pool of synthetic scenes: positives, hard negatives, masks.

Every batch is a function of ``(seed, step)`` alone, so a resumed run draws exactly the
batches the killed run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from qgnb.data.shapes import hard_negatives, referents, shapes

# Share of ITM negatives taken from another scene (the rest change one attribute or the
# relation of the true phrase): easy negatives keep the model from keying on one word alone.
OTHER_SCENE_SHARE = 0.25


@dataclass
class ScenePool:
    """Pre-generated training scenes: images, phrases, hard negatives, target masks, metas."""

    images: list[Image.Image]
    phrases: list[str]
    negatives: list[list[str]]
    masks: torch.Tensor  # (N, H, W) float, 1 on the target object
    metas: list[dict]

    def __len__(self) -> int:
        return len(self.images)


def scene_pool(split: str, n: int, seed: int) -> ScenePool:
    """Generate ``n`` scenes of ``qgnb.data.shapes(split, n, seed)`` with their hard negatives.

    >>> pool = scene_pool("train", 4, 0)
    >>> len(pool), tuple(pool.masks.shape)
    (4, (4, 64, 64))
    """
    samples = [s for s in tqdm(shapes(split, n, seed), desc=f"scenes ({split})", leave=False)]
    negatives = [hard_negatives(s.meta) for s in samples]
    empty = [s.id for s, negs in zip(samples, negatives, strict=True) if not negs]
    if empty:
        raise ValueError(f"scene pool: samples without a hard negative: {empty[:5]}")
    masks = torch.from_numpy(np.stack([s.mask for s in samples])).float()
    return ScenePool([s.image for s in samples], [s.phrase for s in samples], negatives, masks,
                     [s.meta for s in samples])


@dataclass
class Batch:
    """One training batch: B scenes, their true phrases and one negative phrase each."""

    indices: list[int]
    images: list[Image.Image]
    phrases: list[str]
    negatives: list[str]
    masks: torch.Tensor

    def same_text(self) -> torch.Tensor:
        """(B, B) bool: True where two positive phrases are identical (ITC positives)."""
        codes = {p: i for i, p in enumerate(dict.fromkeys(self.phrases))}
        ids = torch.tensor([codes[p] for p in self.phrases])
        return ids[:, None] == ids[None, :]


def draw_batch(pool: ScenePool, batch_size: int, seed: int, step: int) -> Batch:
    """The batch of training step ``step``: scenes, phrases and one negative per scene.

    >>> pool = scene_pool("train", 8, 0)
    >>> batch = draw_batch(pool, 4, seed=0, step=3)
    >>> batch.indices == draw_batch(pool, 4, seed=0, step=3).indices
    True
    """
    rng = np.random.default_rng([seed, step])
    indices = [int(i) for i in rng.integers(len(pool), size=batch_size)]
    negatives = [_negative(pool, i, rng) for i in indices]
    return Batch(indices, [pool.images[i] for i in indices], [pool.phrases[i] for i in indices],
                 negatives, pool.masks[indices])


def _negative(pool: ScenePool, index: int, rng: np.random.Generator) -> str:
    if rng.random() < OTHER_SCENE_SHARE:
        for _ in range(10):
            other = pool.phrases[int(rng.integers(len(pool)))]
            if not referents(pool.metas[index], other):
                return other
    options = pool.negatives[index]
    return options[int(rng.integers(len(options)))]
