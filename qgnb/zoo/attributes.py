"""The auxiliary object-attribute loss: ask the vision tower what each object is, and where.

The analogue of the pretrained vision encoder a real BLIP or CLIP starts from (PROBES.md,
"Towers that see shape"): the matching and contrastive losses alone give a small tower too
little signal to learn shape. For each object of a scene, the tower's last hidden states are
averaged over the patches whose centres fall in the object's box; linear heads classify the
object's shape and size, and (for every ordered pair of objects) which of the four relations
hold between them. The labels come from the scene generator (``meta["objects"]``). The heads
exist only during training: checkpoints hold the model alone.

For CLIP, a layout readout asks the same of the *image embedding* (the vector its phrases are
scored against): each object's centre, read linearly from it by a readout of the object's own
kind (colour, shape and size). A relational phrase can only outrank its relation negatives if
that vector says where things are, in a form a phrase embedding can take a dot product with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qgnb.data.shapes import COLOURS, RELATIONS, SHAPE_NAMES, SIZES


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


def object_kind(obj: dict[str, Any]) -> int:
    """Index of an object's (colour, shape, size) among all 60 kinds.

    >>> object_kind({"colour": "red", "shape": "circle", "size": "small"})
    0
    >>> object_kind({"colour": "cyan", "shape": "cross", "size": "large"})
    59
    """
    colour = list(COLOURS).index(obj["colour"])
    return (colour * len(SHAPE_NAMES) + SHAPE_NAMES.index(obj["shape"])) * len(SIZES) \
        + SIZES.index(obj["size"])


def object_centres(metas: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor,
                                                             torch.Tensor]:
    """``(scene, kind, centre)`` of every object whose kind is unique in its scene: scene
    index, `object_kind`, and box centre scaled to [-1, 1] (x, y). An object with a twin of its
    kind is left out: which centre its readout should give is undefined.

    >>> meta = {"image_size": (64, 64), "objects": [
    ...     {"colour": "red", "shape": "circle", "size": "small", "box": [0, 0, 16, 32]},
    ...     {"colour": "red", "shape": "circle", "size": "small", "box": [40, 0, 48, 8]},
    ...     {"colour": "blue", "shape": "square", "size": "large", "box": [32, 32, 64, 64]}]}
    >>> scene, kind, centre = object_centres([meta])
    >>> scene.tolist(), kind.tolist(), centre.tolist()
    ([0], [23], [[0.5, 0.5]])
    """
    scenes, kinds, centres = [], [], []
    for b, meta in enumerate(metas):
        height, width = meta["image_size"]
        own = [object_kind(obj) for obj in meta["objects"]]
        for obj, kind in zip(meta["objects"], own, strict=True):
            if own.count(kind) > 1:
                continue
            x0, y0, x1, y1 = obj["box"]
            scenes.append(b)
            kinds.append(kind)
            centres.append([(x0 + x1) / width - 1, (y0 + y1) / height - 1])
    return (torch.tensor(scenes, dtype=torch.long), torch.tensor(kinds, dtype=torch.long),
            torch.tensor(centres, dtype=torch.float32).reshape(-1, 2))


class AttributeHeads(nn.Module):
    """Linear heads on pooled object features: shape (5 classes), size (2), and the four
    relations of an ordered pair (multi-label, on the two objects' features side by side).
    With ``embed_dim``, also the layout readout of the image embedding (`layout_loss`).

    >>> heads = AttributeHeads(8)
    >>> [tuple(p.shape) for p in heads.parameters()][::2]
    [(5, 8), (2, 8), (4, 16)]
    """

    def __init__(self, hidden: int, embed_dim: int | None = None) -> None:
        super().__init__()
        self.shape = nn.Linear(hidden, len(SHAPE_NAMES))
        self.size = nn.Linear(hidden, len(SIZES))
        self.relation = nn.Linear(2 * hidden, len(RELATIONS))
        self.layout = None
        if embed_dim is not None:
            # One (x, y) pair of readout directions per object kind; created last, so the
            # other heads start from the weights they had before the readout existed.
            kinds = len(COLOURS) * len(SHAPE_NAMES) * len(SIZES)
            self.layout = nn.Embedding(kinds, 2 * embed_dim)
            nn.init.normal_(self.layout.weight, std=embed_dim ** -0.5)

    def layout_loss(self, image_features: torch.Tensor,
                    metas: Sequence[dict[str, Any]]) -> torch.Tensor:
        """Mean squared error of each object's centre (in [-1, 1]) read from its scene's
        ``image_features`` (B, embed_dim) by the readout of its kind: ``x = u_kind . f``, a
        linear readout, so that a phrase embedding can use the same directions.

        >>> heads = AttributeHeads(8, embed_dim=4)
        >>> meta = {"image_size": (64, 64), "objects": [
        ...     {"colour": "red", "shape": "circle", "size": "small", "box": [0, 0, 64, 64]}]}
        >>> _ = heads.layout.weight.data.zero_()
        >>> heads.layout_loss(torch.ones(1, 4), [meta]).item()
        0.0
        """
        if self.layout is None:
            raise ValueError("layout_loss needs heads built with embed_dim")
        scene, kind, centre = object_centres(metas)
        readout = self.layout(kind).view(len(kind), 2, -1)
        predicted = (readout * image_features[scene][:, None, :]).sum(dim=2)
        return F.mse_loss(predicted, centre)

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
