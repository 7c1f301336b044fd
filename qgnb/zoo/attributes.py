"""The auxiliary object-attribute loss: ask the vision tower what each object is, and where.

The analogue of the pretrained vision encoder a real BLIP or CLIP starts from (PROBES.md,
"Towers that see shape"): the matching and contrastive losses alone give a small tower too
little signal to learn shape. For each object of a scene, the tower's last hidden states are
averaged over the patches whose centres fall in the object's box; linear heads classify the
object's shape and size, and (for every ordered pair of objects) which of the four relations
hold between them. The labels come from the scene generator (``meta["objects"]``). The heads
exist only during training: checkpoints hold the model alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qgnb.data.shapes import RELATIONS, SHAPE_NAMES, SIZES


def patch_masks(boxes: torch.Tensor, image_size: int, patch_size: int) -> torch.Tensor:
    """``(objects, patches)`` bool: the patches (row-major) whose centres fall in each
    ``(x0, y0, x1, y1)`` box of ``boxes`` (objects, 4).

    A box that holds no patch centre (possible only for boxes narrower than a patch) gets the
    patch under its own centre, so every object is pooled from at least one patch.

    >>> patch_masks(torch.tensor([[0, 0, 9, 9], [40, 5, 43, 8]]), 64, 8).nonzero().tolist()
    [[0, 0], [1, 5]]
    """
    if image_size % patch_size:
        raise ValueError(f"image size {image_size} is not a multiple of patch size {patch_size}")
    grid = image_size // patch_size
    boxes = boxes.to(torch.float32)
    centres = (torch.arange(grid, dtype=torch.float32) + 0.5) * patch_size
    cols = (centres >= boxes[:, 0:1]) & (centres < boxes[:, 2:3])  # (objects, grid)
    rows = (centres >= boxes[:, 1:2]) & (centres < boxes[:, 3:4])
    masks = (rows[:, :, None] & cols[:, None, :]).flatten(1)
    row = ((boxes[:, 1] + boxes[:, 3]) / 2 // patch_size).long().clamp(max=grid - 1)
    col = ((boxes[:, 0] + boxes[:, 2]) / 2 // patch_size).long().clamp(max=grid - 1)
    fallback = torch.zeros_like(masks)
    fallback[torch.arange(len(boxes)), row * grid + col] = True
    return torch.where(masks.any(dim=1, keepdim=True), masks, fallback)


def relation_labels(boxes: torch.Tensor, first: torch.Tensor,
                    second: torch.Tensor) -> torch.Tensor:
    """``(pairs, 4)`` labels of the ordered pairs ``(first[k], second[k])`` of ``boxes``, in
    the order of `qgnb.data.shapes.RELATIONS`: 1 where "object i <relation> object j" holds,
    by the generator's test (strict separation of the boxes along one axis).

    >>> boxes = torch.tensor([[0, 0, 8, 8], [20, 30, 28, 38]])
    >>> relation_labels(boxes, torch.tensor([0, 1]), torch.tensor([1, 0])).tolist()
    [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
    """
    i, j = boxes[first].to(torch.float32), boxes[second].to(torch.float32)
    # RELATIONS: "left of", "right of", "above", "below" (as `qgnb.data.shapes._related`).
    return torch.stack([i[:, 2] <= j[:, 0], i[:, 0] >= j[:, 2], i[:, 3] <= j[:, 1],
                        i[:, 1] >= j[:, 3]], dim=1).to(torch.float32)


class AttributeHeads(nn.Module):
    """Linear heads on pooled object features: shape (5 classes), size (2), and the four
    relations of an ordered pair (multi-label, on the two objects' features side by side).

    >>> heads = AttributeHeads(8)
    >>> [tuple(p.shape) for p in heads.parameters()][::2]
    [(5, 8), (2, 8), (4, 16)]
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.shape = nn.Linear(hidden, len(SHAPE_NAMES))
        self.size = nn.Linear(hidden, len(SIZES))
        self.relation = nn.Linear(2 * hidden, len(RELATIONS))

    def forward(self, patch_states: torch.Tensor, metas: Sequence[dict[str, Any]],
                image_size: int, patch_size: int) -> dict[str, torch.Tensor]:
        """Losses and accuracies on one batch: ``patch_states`` is (B, patches, hidden), the
        tower's last hidden states without [CLS]; ``metas`` the scenes' generator metadata.

        Returns ``attribute`` (shape + size cross-entropy, mean over objects), ``relation``
        (binary cross-entropy, mean over ordered pairs and relations) and ``shape_accuracy``.
        """
        objects = [(b, obj) for b, meta in enumerate(metas) for obj in meta["objects"]]
        scene = torch.tensor([b for b, _ in objects])
        boxes = torch.tensor([obj["box"] for _, obj in objects])
        masks = patch_masks(boxes, image_size, patch_size).to(patch_states.dtype)
        if masks.shape[1] != patch_states.shape[1]:
            raise ValueError(f"{masks.shape[1]} patches at image size {image_size}, patch "
                             f"{patch_size}, but the tower gave {patch_states.shape[1]} tokens")
        # Mean over each object's patches, all objects of the batch at once.
        features = torch.bmm(masks[:, None, :], patch_states[scene])[:, 0]
        features = features / masks.sum(dim=1, keepdim=True)
        shape_targets = torch.tensor([SHAPE_NAMES.index(obj["shape"]) for _, obj in objects])
        size_targets = torch.tensor([SIZES.index(obj["size"]) for _, obj in objects])
        shape_logits = self.shape(features)
        losses = {
            "attribute": F.cross_entropy(shape_logits, shape_targets)
            + F.cross_entropy(self.size(features), size_targets),
            "shape_accuracy": (shape_logits.argmax(1) == shape_targets).float().mean(),
        }
        same_scene = (scene[:, None] == scene[None, :]) & ~torch.eye(len(scene), dtype=torch.bool)
        first, second = same_scene.nonzero(as_tuple=True)
        if len(first):
            pairs = torch.cat([features[first], features[second]], dim=1)
            losses["relation"] = F.binary_cross_entropy_with_logits(
                self.relation(pairs), relation_labels(boxes, first, second))
        return losses
