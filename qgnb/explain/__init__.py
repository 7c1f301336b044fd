"""qgnb.explain: explainers ``explainer(images, phrases) -> maps`` and ``evaluate``.

- `cross_attention_gradcam`: the cross-attention GradCAM core (LAVIS/ALBEF recipe; also
  differentiable, for losses on maps); `CrossAttentionExplainer` wraps it for any model that a
  `CrossAttentionRoute` describes.
- `BlipExplainer` (transformers' BLIP ITM) and `AlbefExplainer` (ALBEF/AMC layout): that
  explainer with their own preprocessing and route, drawn by a named `Recipe` (``"lavis"``,
  ``"amc"``, ``"zoo"``: layer, rows, first token, caption cleaning, input size).
- `AlbefITM` / `load_albef_checkpoint`: ALBEF's ITM model and its checkpoint files, without
  ALBEF or LAVIS (`AlbefExplainer.from_checkpoint`).
- `ClipExplainer`: CLIP maps by gScoreCAM (`GScoreCAM`, a pytorch-grad-cam BaseCAM) or GradCAM;
  ``ClipExplainer.from_open_clip`` for open_clip's ResNets and ViTs.
- `evaluate`: maps over a data set scored by `qgnb.metrics.score`, resumable via `MapStore`.
"""

from qgnb.explain.albef import ALBEF_ROUTE, AlbefExplainer
from qgnb.explain.albef_model import AlbefConfig, AlbefITM, load_albef_checkpoint
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
from qgnb.explain.recipes import RECIPES, Recipe, get_recipe
from qgnb.explain.store import MapStore

__all__ = [
    "ALBEF_ROUTE",
    "AlbefConfig",
    "AlbefExplainer",
    "AlbefITM",
    "BLIP_ROUTE",
    "BlipExplainer",
    "ClipExplainer",
    "CrossAttentionExplainer",
    "CrossAttentionRoute",
    "Explainer",
    "GScoreCAM",
    "MapStore",
    "RECIPES",
    "Recipe",
    "choose_device",
    "cross_attention_gradcam",
    "evaluate",
    "get_recipe",
    "load_albef_checkpoint",
    "token_weights",
    "upsample_to_images",
]
