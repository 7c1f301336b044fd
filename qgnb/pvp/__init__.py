"""qgnb.pvp: pixel value prediction (Gou et al., 2024) at laptop scale.

Query generation (``queries``), answer parsing (``parse``), a whole-number tokenizer
(``tokenizer``), the tiny VLM (``model.WiredVLM``) on PVP's pinned vision tower (``tower``),
the three tuning regimes (``regimes``), full-grid reconstruction (``reconstruct``), referring
segmentation and cIoU (``segmentation``), training recipes and the training entry point
(``recipes``, ``train``: ``python -m qgnb.pvp.train NAME``), shipped checkpoints and their
cards (``cards``), the linear read-out probe of the patch tokens (``probe``), and the
notebook's tables over training seeds (``report``). ``load(name)`` (long name ``load_model``)
returns a shipped checkpoint as ``(model, tokenizer, processor)``, as ``qgnb.zoo.load_model``
returns a zoo model with its processor (``qgnb.zoo.load`` instead returns an explainer). The
lookup probe that led to the wired design lives in ``experiments/pvp_lookup``.
"""

from qgnb.pvp.cards import card, load
from qgnb.pvp.model import WiredVLM
from qgnb.pvp.parse import parse_mask_bit, parse_rgb
from qgnb.pvp.queries import (
    mask_grid,
    reconstruct_prompt,
    reconstruct_queries,
    segmentation_prompt,
    segmentation_queries,
    target_grid,
)
from qgnb.pvp.reconstruct import reconstruct, reconstruction_error
from qgnb.pvp.regimes import REGIMES, apply_regime, trainable_parameters
from qgnb.pvp.segmentation import ciou, ciou_gain, mean_iou, predict_masks
from qgnb.pvp.tokenizer import build_tokenizer

# The name that says what comes back, alike in both layers: a model with its input processing.
load_model = load

__all__ = [
    "REGIMES", "apply_regime", "build_tokenizer", "card", "ciou", "ciou_gain",
    "load", "load_model", "mask_grid", "mean_iou", "parse_mask_bit", "parse_rgb", "predict_masks",
    "reconstruct", "reconstruct_prompt", "reconstruct_queries", "reconstruction_error",
    "segmentation_prompt", "segmentation_queries", "target_grid", "trainable_parameters",
    "WiredVLM",
]
