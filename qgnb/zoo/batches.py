"""Training batches drawn from a pool of synthetic scenes: positives, hard negatives, boxes.

Every batch is a function of ``(seed, step)`` alone, so a resumed run draws exactly the
batches the killed run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from qgnb.data.shapes import RELATIONS, describe, hard_negatives, referents, shapes
from qgnb.metrics import box_mask

# Share of ITM negatives taken from another scene (the rest change one attribute or the
# relation of the true phrase): easy negatives keep the model from keying on one word alone.
OTHER_SCENE_SHARE = 0.25


@dataclass
class ScenePool:
    """Pre-generated training scenes: images, phrases, hard negatives, target regions, metas."""

    images: list[Image.Image]
    phrases: list[str]
    negatives: list[list[str]]
    regions: torch.Tensor  # (N, H, W) float, 1 inside the target's box (the scored region)
    metas: list[dict]
    relation_negatives: list[list[str]]

    def __len__(self) -> int:
        return len(self.images)


def scene_pool(split: str, n: int, seed: int, size: int = 64) -> ScenePool:
    """Generate ``n`` scenes of ``qgnb.data.shapes(split, n, seed, size)`` with their hard
    negatives.

    >>> pool = scene_pool("train", 4, 0, size=96)
    >>> len(pool), tuple(pool.regions.shape)
    (4, (4, 96, 96))
    """
    samples = [s for s in tqdm(shapes(split, n, seed, size), desc=f"scenes ({split})",
                               leave=False)]
    negatives = [hard_negatives(s.meta) for s in samples]
    empty = [s.id for s, negs in zip(samples, negatives, strict=True) if not negs]
    if empty:
        raise ValueError(f"scene pool: samples without a hard negative: {empty[:5]}")
    regions = np.stack([box_mask(s.boxes, s.image.height, s.image.width) for s in samples])
    return ScenePool([s.image for s in samples], [s.phrase for s in samples], negatives,
                     torch.from_numpy(regions).float(), [s.meta for s in samples],
                     [relation_negatives(s.meta) for s in samples])


@dataclass
class Batch:
    """One training batch: B scenes, their true phrases and K negative phrases each.

    ``negatives`` is negative-major: the first negative of every scene, then the second...
    (with K = 1, one negative per scene in scene order).
    """

    indices: list[int]
    images: list[Image.Image]
    phrases: list[str]
    negatives: list[str]
    regions: torch.Tensor
    metas: list[dict]

    def same_text(self) -> torch.Tensor:
        """(B, B) bool: True where two positive phrases are identical (ITC positives)."""
        codes = {p: i for i, p in enumerate(dict.fromkeys(self.phrases))}
        ids = torch.tensor([codes[p] for p in self.phrases])
        return ids[:, None] == ids[None, :]


def draw_batch(pool: ScenePool, batch_size: int, seed: int, step: int,
               negatives_per_scene: int = 1, relation_share: float = 0.0) -> Batch:
    """The batch of training step ``step``: scenes, phrases and ``negatives_per_scene``
    negatives per scene (drawn independently; a scene may repeat one). A hard negative of a
    relational phrase changes its relation with probability ``relation_share`` (when one
    such negative exists), otherwise it is drawn from all its hard negatives.

    >>> pool = scene_pool("train", 8, 0)
    >>> batch = draw_batch(pool, 4, seed=0, step=3)
    >>> batch.indices == draw_batch(pool, 4, seed=0, step=3).indices
    True
    """
    rng = np.random.default_rng([seed, step])
    indices = [int(i) for i in rng.integers(len(pool), size=batch_size)]
    negatives = [_negative(pool, i, rng, relation_share)
                 for _ in range(negatives_per_scene) for i in indices]
    return Batch(indices, [pool.images[i] for i in indices], [pool.phrases[i] for i in indices],
                 negatives, pool.regions[indices], [pool.metas[i] for i in indices])


def relation_negatives(meta: dict) -> list[str]:
    """The hard negatives of a scene's phrase that change only its relation (none for a phrase
    without one).

    >>> meta = {"objects": [
    ...     {"colour": "red", "shape": "circle", "size": "small", "box": [1, 1, 9, 9]},
    ...     {"colour": "red", "shape": "circle", "size": "small", "box": [20, 1, 28, 9]}],
    ...     "target": 0, "relation": ("left of", 1), "attributes": [], "anchor_attributes": []}
    >>> relation_negatives(meta)
    ['the circle right of the circle', 'the circle above the circle', 'the circle below the circle']
    """
    if meta["relation"] is None:
        return []
    name, anchor = meta["relation"]
    phrases = [describe(meta, meta["target"], (other, anchor), meta["attributes"],
                        meta["anchor_attributes"]) for other in RELATIONS if other != name]
    return [phrase for phrase in phrases if not referents(meta, phrase)]


def _negative(pool: ScenePool, index: int, rng: np.random.Generator,
              relation_share: float = 0.0) -> str:
    if rng.random() < OTHER_SCENE_SHARE:
        for _ in range(10):
            other = pool.phrases[int(rng.integers(len(pool)))]
            if not referents(pool.metas[index], other):
                return other
    options = pool.negatives[index]
    # Only drawn when the share is set, so recipes without it draw the batches they always drew.
    if relation_share > 0 and rng.random() < relation_share:
        options = pool.relation_negatives[index] or options
    return options[int(rng.integers(len(options)))]
