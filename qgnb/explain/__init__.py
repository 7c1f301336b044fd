"""qgnb.explain: explainers ``explainer(images, phrases) -> maps`` and ``evaluate``.

- `cross_attention_gradcam`: the cross-attention GradCAM core (LAVIS/ALBEF recipe; also
  differentiable, for losses on maps); `CrossAttentionExplainer` wraps it for any model that a
  `CrossAttentionRoute` describes.
- `BlipExplainer` (transformers' BLIP ITM) and `AlbefExplainer` (ALBEF/AMC layout): that
  explainer with their own preprocessing and route.
- `ClipExplainer`: CLIP maps by gScoreCAM (`GScoreCAM`, a pytorch-grad-cam BaseCAM) or GradCAM.
- `evaluate`: maps over a data set scored by `qgnb.metrics.score`, resumable via `MapStore`.
"""

from qgnb.explain.albef import ALBEF_ROUTE, AlbefExplainer
from qgnb.explain.base import Explainer, choose_device, upsample_to_images
from qgnb.explain.blip import BlipExplainer
from qgnb.explain.clip import ClipExplainer, GScoreCAM
from qgnb.explain.cross_attention import (
    BLIP_ROUTE,
    CrossAttentionExplainer,
    CrossAttentionRoute,
    cross_attention_gradcam,
    token_weights,
)
from qgnb.explain.evaluate import evaluate
from qgnb.explain.store import MapStore

__all__ = [
    "ALBEF_ROUTE",
    "AlbefExplainer",
    "BLIP_ROUTE",
    "BlipExplainer",
    "ClipExplainer",
    "CrossAttentionExplainer",
    "CrossAttentionRoute",
    "Explainer",
    "GScoreCAM",
    "MapStore",
    "choose_device",
    "cross_attention_gradcam",
    "evaluate",
    "token_weights",
    "upsample_to_images",
]
