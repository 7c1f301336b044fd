"""The explainer that draws each zoo model's maps (the same recipe for every BLIP model)."""

from __future__ import annotations

import torch

from qgnb.explain.blip import BlipExplainer
from qgnb.explain.clip import ClipExplainer
from qgnb.zoo.configs import GRADCAM_LAYER, GRADCAM_TOKENS, spec

# gScoreCAM scores the top channels by gradient: a quarter of the small CLIP's 96 channels
# (the paper's 300 of 2,048 is about a seventh of a ResNet's; this model has far fewer).
CLIP_TOPK = 24


def explainer_for(name: str, model, processor, device: str | torch.device | None = "cpu"):
    """The explainer of zoo model ``name`` around an already loaded ``model`` and ``processor``.

    BLIP models: cross-attention GradCAM on the last text layer, all token rows (the map AMC
    trains). CLIP: gScoreCAM on the last vision layer.

    >>> from qgnb.zoo.models import load_model
    >>> explainer_for("shapes-blip-base", *load_model("shapes-blip-base")).layer  # doctest: +SKIP
    -1
    """
    if spec(name).architecture.family == "clip":
        return ClipExplainer(model, processor, method="gscorecam", topk=CLIP_TOPK, layer=-1,
                             device=device, name=name)
    return BlipExplainer(model, processor, layer=GRADCAM_LAYER, tokens=GRADCAM_TOKENS,
                         device=device, name=name)
