"""Referring segmentation posed as text queries, and its scores: cIoU and mean IoU.

cIoU (cumulative IoU) is the summed intersection over the summed union across a split, so
large objects weigh more; mean IoU averages the per-sample IoU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from qgnb.data.sample import Sample
from qgnb.pvp.batch import pixel_values, prompt_tensor
from qgnb.pvp.model import WiredVLM
from qgnb.pvp.parse import parse_mask_bit
from qgnb.pvp.queries import all_cells, segmentation_prompt
from qgnb.pvp.tokenizer import PVPTokenizer

ANSWER_TOKENS = 2  # "0" or "1", then <eos>


def intersections_unions(predicted: Sequence[np.ndarray], targets: Sequence[np.ndarray]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample intersection and union pixel counts of boolean masks.

    >>> a = [np.array([[1, 1], [0, 0]], bool)]; b = [np.array([[1, 0], [1, 0]], bool)]
    >>> intersections_unions(a, b)
    (array([1]), array([3]))
    """
    if len(predicted) != len(targets):
        raise ValueError(f"{len(predicted)} predicted masks but {len(targets)} targets")
    inter, union = [], []
    for k, (p, t) in enumerate(zip(predicted, targets, strict=True)):
        p, t = np.asarray(p, bool), np.asarray(t, bool)
        if p.shape != t.shape:
            raise ValueError(f"sample {k}: predicted mask {p.shape} vs target {t.shape}")
        inter.append(int((p & t).sum()))
        union.append(int((p | t).sum()))
    return np.array(inter), np.array(union)


def ciou(predicted: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Cumulative IoU: summed intersection / summed union over all samples (1.0 if both empty).

    >>> a = [np.array([[1, 1]], bool), np.array([[0, 1]], bool)]
    >>> b = [np.array([[1, 0]], bool), np.array([[0, 1]], bool)]
    >>> ciou(a, b)  # (1 + 1) / (2 + 1)
    0.6666666666666666
    """
    inter, union = intersections_unions(predicted, targets)
    return float(inter.sum() / union.sum()) if union.sum() else 1.0


def mean_iou(predicted: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Mean of per-sample IoU; a sample whose masks are both empty counts as IoU 1.

    >>> a = [np.array([[1, 1]], bool), np.array([[0, 1]], bool)]
    >>> b = [np.array([[1, 0]], bool), np.array([[0, 1]], bool)]
    >>> mean_iou(a, b)  # (1/2 + 1) / 2
    0.75
    """
    inter, union = intersections_unions(predicted, targets)
    per_sample = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return float(per_sample.mean())


def ciou_gain(inter_a: np.ndarray, union_a: np.ndarray, inter_b: np.ndarray,
              union_b: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000,
              seed: int = 0) -> dict[str, float]:
    """cIoU of B minus cIoU of A on the same samples, with a paired bootstrap interval
    (samples resampled together, cIoU recomputed as a ratio of sums each time; BCa by
    ``scipy.stats.bootstrap``).

    >>> ia, ua = np.array([1, 1, 2, 0]), np.array([2, 2, 2, 2])
    >>> ib, ub = np.array([2, 2, 2, 1]), np.array([2, 2, 2, 2])
    >>> ciou_gain(ia, ua, ib, ub)["gain"]
    0.375
    """
    def gain(ia, ua, ib, ub, axis=-1):
        return ib.sum(axis) / ub.sum(axis) - ia.sum(axis) / ua.sum(axis)

    arrays = tuple(np.asarray(v, float) for v in (inter_a, union_a, inter_b, union_b))
    result = stats.bootstrap(arrays, gain, paired=True, vectorized=True,
                             confidence_level=confidence, n_resamples=n_resamples,
                             rng=np.random.default_rng(seed))
    interval = result.confidence_interval
    return {"gain": float(gain(*arrays)), "low": float(interval.low),
            "high": float(interval.high)}


def predict_masks(model: WiredVLM, tokenizer: PVPTokenizer, processor,
                  samples: Sequence[Sample], progress: bool = False
                  ) -> tuple[list[np.ndarray], float]:
    """The masks (on the model's grid) the model answers for each sample's phrase (every cell asked
    ``[segmentation] {phrase} loc: [y,x] mask:``), and the share of unparseable answers
    (counted as 0, background).

    >>> from qgnb.data import shapes
    >>> from qgnb.pvp.model import build_vlm, random_vision_tower
    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> tok = build_tokenizer(["the", "circle"], locations=8)
    >>> tower, processor = random_vision_tower()
    >>> masks, _ = predict_masks(build_vlm(tower, tok, 8), tok, processor, shapes("id", 1))
    >>> masks[0].shape
    (8, 8)
    """
    size = model.grid
    cells = all_cells(size)
    masks, bad = [], 0
    model.eval()
    for sample in tqdm(samples, desc="segment", disable=not progress):
        prompts = prompt_tensor(tokenizer, [segmentation_prompt(sample.phrase, y, x)
                                            for y, x in cells])
        answers = model.greedy_answers(pixel_values(processor, [sample.image]), prompts[None],
                                       tokenizer.eos_id, ANSWER_TOKENS)[0]
        bits = [parse_mask_bit(tokenizer.decode(ids)) for ids in answers.tolist()]
        bad += sum(b is None for b in bits)
        masks.append(np.array([b == 1 for b in bits]).reshape(size, size))
    return masks, bad / max(len(samples) * len(cells), 1)
