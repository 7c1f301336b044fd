"""The explainer that draws each zoo model's maps, read where the reading rule chose."""

from __future__ import annotations

import torch

from qgnb.zoo.reading import explainer_at, stored_reading


def explainer_for(name: str, model, processor, device: str | torch.device | None = "cpu"):
    """The explainer of zoo model ``name`` around an already loaded ``model`` and ``processor``:
    BLIP models by cross-attention GradCAM, CLIP by gScoreCAM, each at the layer (and token
    rows) that `qgnb.zoo.reading`'s rule chose for it on the validation stream.

    >>> from qgnb.zoo.models import load_model
    >>> explainer_for("shapes-blip-base", *load_model("shapes-blip-base")).layer  # doctest: +SKIP
    0
    """
    return explainer_at(name, model, processor, stored_reading(name), device=device)
