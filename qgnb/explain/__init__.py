"""qgnb.explain: explainers ``explainer(images, phrases) -> maps`` and ``evaluate``.

- `BlipExplainer`: ITM GradCAM on a text cross-attention layer of transformers' BLIP.
- `cross_attention_gradcam`: the shared core (also differentiable, for losses on maps).
- `ClipExplainer`: CLIP maps by gScoreCAM (`GScoreCAM`, a pytorch-grad-cam BaseCAM) or GradCAM.
"""

from qgnb.explain.base import Explainer, choose_device, upsample_to_images
from qgnb.explain.blip import BlipExplainer
from qgnb.explain.clip import ClipExplainer, GScoreCAM
from qgnb.explain.cross_attention import (
    BLIP_ROUTE,
    CrossAttentionRoute,
    cross_attention_gradcam,
    token_weights,
)

__all__ = [
    "BLIP_ROUTE",
    "BlipExplainer",
    "ClipExplainer",
    "CrossAttentionRoute",
    "Explainer",
    "GScoreCAM",
    "choose_device",
    "cross_attention_gradcam",
    "token_weights",
    "upsample_to_images",
]
