"""Training losses of the zoo: image-text contrastive (ITC), matching (ITM) and AMC.

AMC (attention mask consistency, Yang et al., CVPR 2023) scores a GradCAM map against the
ground-truth region: a margin loss that wants the map's maximum inside the region above its
maximum outside by ``margin``, and a share loss that wants the map's mass inside the region.
Maps are ReLU'd and divided by their maximum first (the preparation of METRICS.md), so both
terms are invariant to the map's scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8


def itc_loss(image_features: torch.Tensor, text_features: torch.Tensor,
             same_text: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE over a batch; pairs whose texts are identical all count as positives.

    ``image_features`` and ``text_features`` are (B, D), L2-normalised; ``same_text`` is a
    (B, B) bool matrix, True where text i equals text j (the diagonal must be True).

    >>> f = torch.eye(2)
    >>> round(itc_loss(f, f, torch.eye(2, dtype=torch.bool), temperature=1.0).item(), 4)
    0.3133
    """
    if not bool(same_text.diagonal().all()):
        raise ValueError("same_text must be True on its diagonal (each text matches itself)")
    logits = image_features @ text_features.t() / temperature
    targets = same_text.float() / same_text.float().sum(dim=1, keepdim=True)
    image_to_text = F.cross_entropy(logits, targets)
    text_to_image = F.cross_entropy(logits.t(), targets.t() / targets.t().sum(1, keepdim=True))
    return (image_to_text + text_to_image) / 2


def itm_loss(logits: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the ITM head's (N, 2) logits; class 1 means "text matches image".

    >>> round(itm_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([True])).item(), 4)
    0.6931
    """
    return F.cross_entropy(logits, matches.long())


def _prepare(maps: torch.Tensor) -> torch.Tensor:
    maps = maps.relu()
    return maps / (maps.flatten(1).amax(dim=1).view(-1, 1, 1) + EPS)


def amc_margin_loss(maps: torch.Tensor, masks: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Per-sample ``relu(margin - (max inside - max outside))`` on prepared (N, H, W) maps.

    ``masks`` is (N, H, W), 1 inside the region. A region covering the whole map has no
    outside: its outside maximum counts as 0.

    >>> a = torch.tensor([[[0.0, 1.0], [0.2, 0.0]]])
    >>> m = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    >>> amc_margin_loss(a, m, margin=0.5).tolist()
    [0.0]
    """
    _check(maps, masks)
    prepared = _prepare(maps)
    inside = masks > 0.5
    if not bool(inside.flatten(1).any(dim=1).all()):
        raise ValueError("amc_margin_loss: a mask has no pixel inside its region")
    max_in = prepared.masked_fill(~inside, 0.0).flatten(1).amax(dim=1)
    max_out = prepared.masked_fill(inside, 0.0).flatten(1).amax(dim=1)
    return (margin - (max_in - max_out)).relu()


def inside_share_loss(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-sample ``1 - (map mass inside the region) / (total map mass)``; 1 for a flat map.

    >>> a = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
    >>> m = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    >>> inside_share_loss(a, m).tolist()
    [0.25]
    """
    _check(maps, masks)
    prepared = _prepare(maps)
    inside = (prepared * masks).flatten(1).sum(dim=1)
    total = prepared.flatten(1).sum(dim=1)
    return 1.0 - inside / (total + EPS)


def amc_loss(maps: torch.Tensor, masks: torch.Tensor, margin: float = 0.5,
             share_weight: float = 1.0) -> torch.Tensor:
    """Batch mean of the margin loss plus ``share_weight`` times the inside-share loss.

    >>> a = torch.tensor([[[1.0, 3.0], [0.0, 0.0]]])
    >>> m = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    >>> amc_loss(a, m, margin=0.5).item()
    0.25
    """
    margin_term = amc_margin_loss(maps, masks, margin)
    return (margin_term + share_weight * inside_share_loss(maps, masks)).mean()


def _check(maps: torch.Tensor, masks: torch.Tensor) -> None:
    if maps.dim() != 3 or maps.shape != masks.shape:
        raise ValueError(
            f"maps and masks must both be (N, H, W); got {tuple(maps.shape)} and "
            f"{tuple(masks.shape)}"
        )
